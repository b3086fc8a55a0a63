import CRMCore
import Dispatch
import Foundation

/// Group commit: batches submitted while a transaction is running wait for it, then all go into the next one
/// together. Several lanes (or sources) then share one transaction and one fsync instead of paying one each.
///
/// With a commit interval, a transaction starts no sooner than that interval after the previous one started: at a
/// moderate rate, events then wait a few milliseconds for each other instead of paying a commit (an fsync and
/// whole WAL pages) for a handful each. Under a full load transactions take longer than the interval, and
/// nothing waits. (PostgreSQL's `commit_delay` does the same for its WAL flushes.) A prompt batch (an HTTP request,
/// whose client waits for the answer: `CommitTiming.prompt`) waits for no interval: while one is pending, the next
/// transaction starts as soon as the last one ended, and takes the batches pending (up to `maxEvents`). One that
/// arrives while the thread already waits out an interval waits for the rest of it (at most the interval).
///
/// The transactions run on a serial dispatch queue of their own, never on Swift's cooperative pool; so does the
/// wait for the interval.
///
/// Batches run in the order they were submitted. A batch may belong to a chain (an `OrderedSubmitter`'s batches):
/// when a transaction fails, its chains break, their batches still pending fail with the same error without running,
/// and so does every batch submitted to a broken chain, until `mend`.
final class GroupCommit: @unchecked Sendable {
    // `pending`, `running` and `broken` are guarded by `lock`; `transaction` and `schedule` are used on `queue` only.
    typealias Transaction = ([KeyedBatch], Timestamp) throws -> [[EventOutcome]]

    private struct Submission {
        var batch: KeyedBatch
        var now: Timestamp
        var prompt: Bool
        var outcomes: OutcomePromise
        var chain: ObjectIdentifier?
    }

    private let lock = NSLock()
    private var pending: [Submission] = []
    private var running = false
    /// Chains whose last transaction failed, with its error.
    private var broken: [ObjectIdentifier: any Error] = [:]
    private let queue = DispatchQueue(label: "crm-ingest.sqlite.group-commit")
    private let transaction: Transaction
    /// Most events one transaction takes; the rest wait for the next.
    private let maxEvents: Int
    private let schedule: CommitSchedule
    /// When the last transaction started (read and written on `queue` only).
    private var lastStart: ContinuousClock.Instant?

    init(maxEvents: Int = 20_000, schedule: CommitSchedule = CommitSchedule(), transaction: @escaping Transaction) {
        self.maxEvents = maxEvents
        self.schedule = schedule
        self.transaction = transaction
    }

    /// Batches waiting for a transaction (for tests).
    var pendingBatchCount: Int { lock.withLock { pending.count } }

    func submit(_ batch: KeyedBatch, now: Timestamp, prompt: Bool) async throws -> [EventOutcome] {
        try await enqueue(batch, now: now, prompt: prompt, chain: nil).value()
    }

    /// Takes a batch behind every batch taken before; the promise is kept once its transaction ended. A batch of a
    /// broken chain fails at once with the chain's error.
    func enqueue(_ batch: KeyedBatch, now: Timestamp, prompt: Bool, chain: ObjectIdentifier?) -> OutcomePromise {
        let outcomes = OutcomePromise()
        let (start, refusal): (Bool, (any Error)?) = lock.withLock {
            if let chain, let error = broken[chain] { return (false, error) }
            pending.append(Submission(batch: batch, now: now, prompt: prompt, outcomes: outcomes, chain: chain))
            defer { running = true }
            return (!running, nil)
        }
        if let refusal { outcomes.keep(.failure(refusal)) }
        if start { queue.async { self.drain() } }
        return outcomes
    }

    /// The chain takes batches again.
    func mend(_ chain: ObjectIdentifier) {
        _ = lock.withLock { broken.removeValue(forKey: chain) }
    }

    private func drain() {
        while true {
            let (idle, promptPending) = lock.withLock {
                if pending.isEmpty { running = false }
                return (pending.isEmpty, pending.contains { $0.prompt })
            }
            if idle { return }
            // Something waits: the interval since the last start passes first, and whatever arrives meanwhile joins;
            // unless a client waits on the line.
            if schedule.interval > .zero, !promptPending, let lastStart {
                let earliest = lastStart + schedule.interval
                if schedule.now() < earliest { schedule.sleepUntil(earliest) }
            }
            // Only this loop takes from `pending`, so it is not empty.
            let group: [Submission] = lock.withLock {
                var taken: [Submission] = []
                var count = 0
                while let first = pending.first, taken.isEmpty || count + first.batch.events.count <= maxEvents {
                    taken.append(pending.removeFirst())
                    count += first.batch.events.count
                }
                return taken
            }
            // One clock reading for the group: the latest any caller gave.
            let now = group.map(\.now).max()!
            if schedule.interval > .zero { lastStart = schedule.now() }
            do {
                let outcomes = try transaction(group.map(\.batch), now)
                for (submission, result) in zip(group, outcomes) { submission.outcomes.keep(.success(result)) }
            } catch {
                // The failed batches' chains break: what they still have pending fails with them, unrun.
                let dropped: [Submission] = lock.withLock {
                    let chains = Set(group.compactMap(\.chain))
                    guard !chains.isEmpty else { return [] }
                    for chain in chains { broken[chain] = error }
                    let dropped = pending.filter { $0.chain.map(chains.contains) ?? false }
                    pending.removeAll { $0.chain.map(chains.contains) ?? false }
                    return dropped
                }
                for submission in group + dropped { submission.outcomes.keep(.failure(error)) }
            }
        }
    }
}

/// The outcomes of one submitted batch, kept once by the group-commit thread and awaited once by the submitter.
final class OutcomePromise: @unchecked Sendable {
    // `result` and `waiter` are guarded by `lock`.
    private let lock = NSLock()
    private var result: Result<[EventOutcome], any Error>?
    private var waiter: CheckedContinuation<[EventOutcome], any Error>?

    /// Keeps the first result given; later ones are ignored.
    func keep(_ result: Result<[EventOutcome], any Error>) {
        let waiter: CheckedContinuation<[EventOutcome], any Error>?? = lock.withLock {
            guard self.result == nil else { return .none }
            self.result = result
            defer { self.waiter = nil }
            return .some(self.waiter)
        }
        if case let .some(.some(waiter)) = waiter { waiter.resume(with: result) }
    }

    func value() async throws -> [EventOutcome] {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<[EventOutcome], any Error>? = lock.withLock {
                if result == nil { waiter = continuation }
                return result
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

/// When group commit may start a transaction: `interval` after the start of the previous one. The clock is
/// injected so tests decide when an interval has passed; `sleepUntil` blocks the group-commit thread.
struct CommitSchedule: Sendable {
    var interval: Duration
    var now: @Sendable () -> ContinuousClock.Instant
    var sleepUntil: @Sendable (ContinuousClock.Instant) -> Void

    /// The system's monotonic clock; no interval by default (a transaction starts as soon as the last one ended).
    init(interval: Duration = .zero) {
        self.init(interval: interval, now: { ContinuousClock.now }, sleepUntil: { deadline in
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { return }
            Thread.sleep(forTimeInterval: left.totalSeconds)
        })
    }

    init(
        interval: Duration, now: @escaping @Sendable () -> ContinuousClock.Instant,
        sleepUntil: @escaping @Sendable (ContinuousClock.Instant) -> Void
    ) {
        self.interval = interval
        self.now = now
        self.sleepUntil = sleepUntil
    }
}

/// A batch of events with the ledger key of each (`KeyedHash.ledgerKey` of its idempotency key), computed by the
/// caller before the batch joins a group: the HMACs then run on the sources' threads, in parallel, and not on the
/// one thread that writes (6% of its time in `crm-ingest ingest`).
struct KeyedBatch: Sendable {
    var events: [PlannedEvent]
    var ledgerKeys: [LedgerKey]

    init(_ events: [PlannedEvent], keyedHash: KeyedHash) {
        self.events = events
        ledgerKeys = events.map { keyedHash.withLedgerKey($0.key.value) { LedgerKey(digest: $0) } }
    }
}
