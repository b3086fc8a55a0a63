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
final class GroupCommit: @unchecked Sendable {
    // `pending` and `running` are guarded by `lock`; `transaction` and `schedule` are used on `queue` only.
    typealias Transaction = ([KeyedBatch], Timestamp) throws -> [[EventOutcome]]

    private struct Submission {
        var batch: KeyedBatch
        var now: Timestamp
        var prompt: Bool
        var continuation: CheckedContinuation<[EventOutcome], any Error>
    }

    private let lock = NSLock()
    private var pending: [Submission] = []
    private var running = false
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
        try await withCheckedThrowingContinuation { continuation in
            let start = lock.withLock {
                pending.append(Submission(batch: batch, now: now, prompt: prompt, continuation: continuation))
                defer { running = true }
                return !running
            }
            if start { queue.async { self.drain() } }
        }
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
                for (submission, result) in zip(group, outcomes) { submission.continuation.resume(returning: result) }
            } catch {
                for submission in group { submission.continuation.resume(throwing: error) }
            }
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
