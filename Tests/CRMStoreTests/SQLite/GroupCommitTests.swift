import CRMCore
@testable import CRMStoreSQLite
import Foundation
import Synchronization
import Testing

/// The commit interval of group commit, on a clock the test moves by hand: no test here waits for real time.
@Suite("SQLite group commit: commit interval")
struct GroupCommitTests {
    /// A clock that moves only when the test says so; `sleep(until:)` blocks the group-commit thread until then (or
    /// for 60 s of real time at most).
    final class ManualClock: @unchecked Sendable {
        private let condition = NSCondition()
        private var current = ContinuousClock.now
        private var deadlines: [ContinuousClock.Instant] = []
        private var sleeping = 0

        var now: ContinuousClock.Instant { condition.withLock { current } }
        /// Every deadline a sleep was asked for, in order.
        var sleeps: [ContinuousClock.Instant] { condition.withLock { deadlines } }
        var sleepers: Int { condition.withLock { sleeping } }

        func advance(by duration: Duration) {
            condition.withLock {
                current += duration
                condition.broadcast()
            }
        }

        func sleep(until deadline: ContinuousClock.Instant) {
            condition.withLock {
                deadlines.append(deadline)
                sleeping += 1
                // Real time bounds the wait only so that a failing test ends instead of hanging.
                let giveUp = Date().addingTimeInterval(60)
                while current < deadline, condition.wait(until: giveUp) {}
                sleeping -= 1
            }
        }

        func schedule(_ interval: Duration) -> CommitSchedule {
            CommitSchedule(interval: interval, now: { self.now }, sleepUntil: { self.sleep(until: $0) })
        }
    }

    /// Records the number of events of each batch of each transaction.
    final class TransactionLog: Sendable {
        let transactions = Mutex<[[Int]]>([])
        func record(_ batches: [KeyedBatch]) -> [[EventOutcome]] {
            transactions.withLock { $0.append(batches.map(\.events.count)) }
            return batches.map { Array(repeating: EventOutcome.applied(notes: []), count: $0.events.count) }
        }
    }

    let processor = EventProcessor(
        mapping: Mapping(attributes: StoreHarness.attributes, actions: StoreHarness.standardActions), redeliveryWindowSeconds: 3600
    )
    let keyedHash = KeyedHash(key: Array(repeating: 7, count: 32))

    func batch(_ count: Int, _ name: String) throws -> KeyedBatch {
        let events = try (0..<count).map { index in
            let message = IncomingMessage(
                body: Array(#"{"type":"USER_REGISTRATION","contactId":"\#(name)-\#(index)"}"#.utf8),
                identity: .messageId("\(name)-\(index)"), mayBeRedelivery: false, receivedAt: StoreHarness.t0, source: "test"
            )
            guard case let .event(event) = processor.prepare(message) else { throw StoreError(.schema, "not planned") }
            return event
        }
        return KeyedBatch(events, keyedHash: keyedHash)
    }

    /// Polls a condition the group-commit thread will make true; fails the test after 30 s of real time.
    func waitFor(_ what: String, _ condition: () -> Bool) async throws {
        for _ in 0..<3_000 {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("timed out waiting for \(what)")
        throw CancellationError()
    }

    @Test func batchesArrivingWithinTheIntervalShareTheNextTransaction() async throws {
        let clock = ManualClock()
        let log = TransactionLog()
        let groupCommit = GroupCommit(schedule: clock.schedule(.milliseconds(10))) { batches, _ in log.record(batches) }
        let start = clock.now
        // The first transaction starts at once: there was none before it.
        #expect(try await groupCommit.submit(batch(1, "a"), now: StoreHarness.t0, prompt: false).count == 1)
        #expect(clock.sleeps.isEmpty)
        // The next waits until 10 ms after the first started; what arrives meanwhile joins it.
        async let b = groupCommit.submit(batch(1, "b"), now: StoreHarness.t0, prompt: false)
        try await waitFor("the group-commit thread to wait for the interval") { clock.sleepers == 1 }
        #expect(clock.sleeps == [start + .milliseconds(10)])
        async let c = groupCommit.submit(batch(2, "c"), now: StoreHarness.t0, prompt: false)
        async let d = groupCommit.submit(batch(3, "d"), now: StoreHarness.t0, prompt: false)
        try await waitFor("three batches to queue") { groupCommit.pendingBatchCount == 3 }
        #expect(log.transactions.withLock { $0 } == [[1]])
        clock.advance(by: .milliseconds(10))
        let outcomes = try await [b, c, d]
        #expect(outcomes.map(\.count) == [1, 2, 3])
        let transactions = log.transactions.withLock { $0 }
        #expect(transactions.count == 2)
        #expect(transactions.last?.sorted() == [1, 2, 3])
    }

    @Test func aTransactionLongerThanTheIntervalIsFollowedAtOnce() async throws {
        let clock = ManualClock()
        let log = TransactionLog()
        let groupCommit = GroupCommit(schedule: clock.schedule(.milliseconds(10))) { batches, _ in
            // The work takes 25 ms of the clock, more than the interval.
            clock.advance(by: .milliseconds(25))
            return log.record(batches)
        }
        for name in ["a", "b", "c"] { _ = try await groupCommit.submit(batch(2, name), now: StoreHarness.t0, prompt: false) }
        #expect(clock.sleeps.isEmpty)
        #expect(log.transactions.withLock { $0 } == [[2], [2], [2]])
    }

    @Test func withoutAnIntervalNoTransactionWaits() async throws {
        let clock = ManualClock()
        let log = TransactionLog()
        let groupCommit = GroupCommit(schedule: clock.schedule(.zero)) { batches, _ in log.record(batches) }
        for name in ["a", "b", "c"] { _ = try await groupCommit.submit(batch(1, name), now: StoreHarness.t0, prompt: false) }
        #expect(clock.sleeps.isEmpty)
        #expect(log.transactions.withLock { $0 } == [[1], [1], [1]])
    }

    /// A client waiting on the line (`CommitTiming.prompt`) waits for no interval, and takes the batches pending with
    /// it into its transaction; a batched one after it waits as before.
    @Test func aPromptBatchStartsTheNextTransactionWithoutWaiting() async throws {
        let clock = ManualClock()
        let log = TransactionLog()
        // The third transaction holds until the test has queued two batches behind it.
        let hold = NSCondition()
        let state = Mutex((holding: false, released: false))
        let groupCommit = GroupCommit(schedule: clock.schedule(.milliseconds(10))) { batches, _ in
            if log.transactions.withLock({ $0.count }) == 2 {
                state.withLock { $0.holding = true }
                // Bounded, so that a failing test ends instead of hanging.
                let giveUp = Date().addingTimeInterval(60)
                hold.withLock { while !state.withLock({ $0.released }), hold.wait(until: giveUp) {} }
            }
            return log.record(batches)
        }
        let start = clock.now
        _ = try await groupCommit.submit(batch(1, "a"), now: StoreHarness.t0, prompt: false)
        // Prompt, right after a transaction started: no wait for the interval.
        #expect(try await groupCommit.submit(batch(1, "p"), now: StoreHarness.t0, prompt: true).count == 1)
        #expect(clock.sleeps.isEmpty)
        // While a third transaction runs (held), a batched and a prompt batch queue: the next transaction starts at
        // once with both.
        async let held = groupCommit.submit(batch(1, "h"), now: StoreHarness.t0, prompt: true)
        try await waitFor("the third transaction to run") { state.withLock { $0.holding } }
        async let batched = groupCommit.submit(batch(2, "b"), now: StoreHarness.t0, prompt: false)
        async let prompt = groupCommit.submit(batch(3, "q"), now: StoreHarness.t0, prompt: true)
        try await waitFor("two batches to queue") { groupCommit.pendingBatchCount == 2 }
        hold.withLock {
            state.withLock { $0.released = true }
            hold.broadcast()
        }
        #expect(try await [held, batched, prompt].map(\.count) == [1, 2, 3])
        #expect(clock.sleeps.isEmpty)
        #expect(log.transactions.withLock { $0 }.map { $0.sorted() } == [[1], [1], [1], [2, 3]])
        // Batched alone again: it waits out the interval from the last start.
        async let later = groupCommit.submit(batch(1, "c"), now: StoreHarness.t0, prompt: false)
        try await waitFor("the group-commit thread to wait for the interval") { clock.sleepers == 1 }
        #expect(clock.sleeps == [start + .milliseconds(10)])
        clock.advance(by: .milliseconds(10))
        #expect(try await later.count == 1)
    }

    /// The store passes the timing to group commit: with an interval of 800 ms, two batched applies in a row take
    /// the interval (the second waits it out), two prompt ones do not; all four are applied. Timed on an executor
    /// of its own: on the cooperative pool, other tests that block it delayed the prompt pair's resumptions past
    /// 700 ms once (CI rehearsal of 2026-12-06).
    @Test func theSQLiteStoreWaitsOutItsIntervalForBatchedEventsOnly() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-prompt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path, commitInterval: .milliseconds(800))
        let executor = ThreadExecutor()
        defer { executor.stop() }
        let (batchedTook, promptTook, outcomes) = try await withTaskExecutorPreference(executor) {
            let clock = ContinuousClock()
            var outcomes: [EventOutcome] = []
            let batchedStart = clock.now
            for name in ["a", "b"] { outcomes += try await store.apply(batch(1, name).events, now: StoreHarness.t0, timing: .batched) }
            let batchedTook = batchedStart.duration(to: clock.now)
            let promptStart = clock.now
            for name in ["c", "d"] { outcomes += try await store.apply(batch(1, name).events, now: StoreHarness.t0, timing: .prompt) }
            return (batchedTook, promptStart.duration(to: clock.now), outcomes)
        }
        #expect(batchedTook >= .milliseconds(700))
        #expect(promptTook < .milliseconds(700))
        #expect(outcomes == Array(repeating: .applied(notes: []), count: 4))
    }

    /// An ordered submitter's chain: when a transaction with one of its batches fails, its later batches fail with
    /// it without running, and so does every batch it submits until mended; batches of no chain run as before.
    @Test func aFailedTransactionBreaksItsChainUntilMended() async throws {
        let clock = ManualClock()
        let log = TransactionLog()
        struct DiskFull: Error {}
        // At most 3 events a transaction, so the 3-event batch runs alone; it fails.
        let groupCommit = GroupCommit(maxEvents: 3, schedule: clock.schedule(.milliseconds(10))) { batches, now in
            let outcomes = log.record(batches)
            if batches.contains(where: { $0.events.count == 3 }) { throw DiskFull() }
            return outcomes
        }
        let chain = ObjectIdentifier(log)
        // A first transaction, so the next ones wait for the interval while the test queues behind them.
        _ = try await groupCommit.submit(batch(1, "a"), now: StoreHarness.t0, prompt: false)
        let failing = try groupCommit.enqueue(batch(3, "bad"), now: StoreHarness.t0, prompt: false, chain: chain)
        try await waitFor("the group-commit thread to wait for the interval") { clock.sleepers == 1 }
        let later = try groupCommit.enqueue(batch(2, "later"), now: StoreHarness.t0, prompt: false, chain: chain)
        let other = try groupCommit.enqueue(batch(1, "other"), now: StoreHarness.t0, prompt: false, chain: nil)
        #expect(groupCommit.pendingBatchCount == 3)
        clock.advance(by: .milliseconds(10))
        await #expect(throws: DiskFull.self) { try await failing.value() }
        await #expect(throws: DiskFull.self) { try await later.value() }
        clock.advance(by: .milliseconds(10))
        #expect(try await other.value() == [.applied(notes: [])])
        // The later batch never ran: only the failed one and the other one did.
        #expect(log.transactions.withLock { $0 } == [[1], [3], [1]])
        // Broken: a new batch of the chain fails at once, unrun.
        let refused = try groupCommit.enqueue(batch(1, "refused"), now: StoreHarness.t0, prompt: false, chain: chain)
        await #expect(throws: DiskFull.self) { try await refused.value() }
        #expect(log.transactions.withLock { $0.count } == 3)
        // Mended: it runs again.
        groupCommit.mend(chain)
        let mended = try groupCommit.enqueue(batch(2, "mended"), now: StoreHarness.t0, prompt: false, chain: chain)
        clock.advance(by: .milliseconds(10))
        #expect(try await mended.value().count == 2)
        #expect(log.transactions.withLock { $0 } == [[1], [3], [1], [2]])
    }

    /// The SQLite store's ordered submitter commits batches in the order submitted, without waiting for each.
    @Test func theOrderedSubmitterCommitsInSubmissionOrder() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-ordered-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        let submitter = try #require(store.makeOrderedSubmitter())
        // The same contact's attribute set 50 times, each batch submitted before the last committed: the last wins.
        let pending = try (0..<50).map { index in
            let message = IncomingMessage(
                body: Array(#"{"type":"USER_REGISTRATION","contactId":"same","properties":{"firstName":"v\#(index)"}}"#.utf8),
                identity: .messageId("m-\(index)"), mayBeRedelivery: false, receivedAt: StoreHarness.t0, source: "test"
            )
            guard case let .event(event) = processor.prepare(message) else { throw StoreError(.schema, "not planned") }
            return submitter.submit([event], now: StoreHarness.t0)
        }
        for batch in pending { #expect(try await batch.outcomes() == [.applied(notes: [])]) }
        guard case let .found(contact) = try await store.contact("same", list: nil) else {
            Issue.record("no contact")
            return
        }
        #expect(contact.attribute("firstName") == .string("v49"))
    }
}
