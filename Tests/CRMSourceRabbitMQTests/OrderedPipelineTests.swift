import AMQPClient
import CRMCore
import CRMSourceSupport
@testable import CRMSourceRabbitMQ
import CRMStoreSQLite
import CRMTestSupport
import Foundation
import GRDB
import Synchronization
import Testing

/// The RabbitMQ pipeline's ordered submissions to SQLite (`LanePipeline.runOrdered`), without a broker: delivery
/// batches go in, completions come out of the inbox. Another connection holds SQLite's write lock for a while, so
/// transactions fail (busy) mid-stream: the pipeline must hold new batches, retry the failed ones, and still apply
/// every event once, in each contact's order, and settle every delivery once.
@Suite("RabbitMQ pipeline: ordered submissions")
struct OrderedPipelineTests {
    /// Holds SQLite's write lock (`BEGIN IMMEDIATE`) on a thread of its own until released.
    final class WriteLock: Sendable {
        private let locked = DispatchSemaphore(value: 0)
        private let released = DispatchSemaphore(value: 0)

        init(_ path: String) {
            Thread { [self] in
                var configuration = Configuration()
                // The store may be committing when the lock is asked for: wait for it.
                configuration.busyMode = .timeout(10)
                let connection = try? DatabaseQueue(path: path, configuration: configuration)
                do {
                    try connection?.writeWithoutTransaction { db in
                        try db.execute(sql: "BEGIN IMMEDIATE")
                        locked.signal()
                        released.wait()
                        try db.execute(sql: "COMMIT")
                    }
                } catch {
                    Issue.record("could not hold the write lock: \(error)")
                    locked.signal()
                }
                try? connection?.close()
            }.start()
            locked.wait()
        }

        func release() { released.signal() }
    }

    func deliveries(_ workload: Workload) -> [AMQPDelivery] {
        workload.messages(queue: "q", withIds: true).enumerated().map { index, message in
            AMQPDelivery(channel: 1, deliveryTag: UInt64(index + 1), redelivered: false, exchange: "", routingKey: "q",
                         properties: message.properties, body: message.body)
        }
    }

    /// The pipeline under test: the workload's mapping, a fixed clock, completions into `inbox`, the log into `logs`.
    func makePipeline(_ store: SQLiteCRMStore, _ inbox: CompletionInbox, _ logs: CapturedLogs) -> LanePipeline {
        LanePipeline(
            sourceName: "ordered", laneCount: 4, maxRedeliveries: 5, processor: { Workload.processor }, store: store, inbox: inbox,
            stopping: StopFlag(), logger: logs.logger, now: { Timestamp(secondsSinceEpoch: 1_700_000_000) },
            metrics: SourceMetrics(source: "ordered"), retryBudget: .seconds(60)
        )
    }

    /// Runs the pipeline over `batches` of deliveries. `during(i)` runs before batch i is sent; the stream ends after
    /// the last batch, then `afterEnd` runs. Returns the completions and the log.
    func run(
        _ store: SQLiteCRMStore, _ batches: [[AMQPDelivery]], during: @escaping @Sendable (Int) async -> Void = { _ in },
        afterEnd: @escaping @Sendable () async -> Void = {}
    ) async -> (completions: [Completion], logs: CapturedLogs) {
        let logs = CapturedLogs()
        let inbox = CompletionInbox()
        let pipeline = makePipeline(store, inbox, logs)
        let (stream, continuation) = AsyncStream.makeStream(of: DeliveryBatch.self)
        async let ran: Void = pipeline.run(stream)
        for (index, batch) in batches.enumerated() {
            await during(index)
            continuation.yield(DeliveryBatch(generation: 1, deliveries: batch))
            try? await Task.sleep(for: .milliseconds(2))
        }
        continuation.finish()
        await afterEnd()
        await ran
        return (inbox.take(), logs)
    }

    /// Runs `body` with a store in a fresh folder (and the database's path, for a second connection), then closes the
    /// store and removes the folder. The store has a short busy timeout, so a held lock fails transactions quickly.
    func withStore(_ body: (_ store: SQLiteCRMStore, _ path: String) async throws -> Void) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-ordered-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("crm.sqlite").path
        let store = try SQLiteCRMStore(path: path, busyTimeoutMilliseconds: 20)
        defer { try? store.close() }
        try await body(store, path)
    }

    /// Every delivery tag once, acked.
    func expectAllAckedOnce(_ completions: [Completion], total: Int) {
        let tags = completions.map(\.deliveryTag)
        #expect(tags.count == total, "\(tags.count) completions for \(total) deliveries")
        let missing = Set(1...UInt64(total)).subtracting(tags)
        #expect(missing.isEmpty, "\(missing.count) deliveries never settled, e.g. \(missing.sorted().prefix(5))")
        #expect(completions.allSatisfy { $0.disposition == .ack })
    }

    @Test func withoutFailuresEveryEventCommitsInOrder() async throws {
        try await withStore { (store: SQLiteCRMStore, _: String) async throws in
            let workload = Workload(contacts: 40, perContact: 12)
            let batches = deliveries(workload).chunked(25)
            let (completions, logs) = await run(store, batches)
            expectAllAckedOnce(completions, total: workload.total)
            #expect(try await workload.problems(in: store) == [])
            #expect(try await store.count("ledger") == workload.total)
            #expect(!logs.contains("store failed"))
        }
    }

    /// The write lock is held from the 6th batch to 300 ms after the 14th: the batches submitted meanwhile fail, the
    /// pipeline holds the later ones, retries, and goes on.
    @Test func aFailedTransactionHoldsLaterBatchesUntilItsRetryCommits() async throws {
        try await withStore { (store: SQLiteCRMStore, path: String) async throws in
            let workload = Workload(contacts: 40, perContact: 12)
            let batches = deliveries(workload).chunked(25)
            let lock = Mutex<WriteLock?>(nil)
            let (completions, logs) = await run(store, batches, during: { index in
                if index == 5 { lock.withLock { $0 = WriteLock(path) } }
                if index == 14 {
                    try? await Task.sleep(for: .milliseconds(300))
                    lock.withLock { $0?.release() }
                }
            })
            expectAllAckedOnce(completions, total: workload.total)
            #expect(try await workload.problems(in: store) == [])
            #expect(try await store.count("ledger") == workload.total)
            #expect(logs.contains("store failed, holding new batches to retry the failed ones first"))
        }
    }

    /// The stream ends while the lock is held and the pipeline holds batches: it still settles every delivery once
    /// the lock is gone, and then returns.
    @Test func theStreamEndingWhileBatchesAreHeldStillSettlesThemAll() async throws {
        try await withStore { (store: SQLiteCRMStore, path: String) async throws in
            let workload = Workload(contacts: 30, perContact: 9)
            let batches = deliveries(workload).chunked(30)
            let lock = Mutex<WriteLock?>(nil)
            let (completions, logs) = await run(store, batches, during: { index in
                if index == 2 { lock.withLock { $0 = WriteLock(path) } }
            }, afterEnd: {
                try? await Task.sleep(for: .milliseconds(400))
                lock.withLock { $0?.release() }
            })
            expectAllAckedOnce(completions, total: workload.total)
            #expect(try await workload.problems(in: store) == [])
            #expect(logs.contains("store failed, holding new batches to retry the failed ones first"))
        }
    }

    /// The consumer thread hands its batches to the intake on its own thread: each batch is planned and submitted
    /// before `accept` returns, so the store commits it with no task of the pipeline running yet; the settling task,
    /// started afterwards, acks every delivery once.
    @Test func theIntakeSubmitsOnTheCallersThreadBeforeAnyTaskRuns() async throws {
        try await withStore { (store: SQLiteCRMStore, _: String) async throws in
            let workload = Workload(contacts: 20, perContact: 6)
            let batches = deliveries(workload).chunked(20)
            let inbox = CompletionInbox()
            let pipeline = makePipeline(store, inbox, CapturedLogs())
            let submitter = try #require(store.makeOrderedSubmitter())
            let intake = pipeline.orderedIntake(submitter)
            let handed = DispatchSemaphore(value: 0)
            Thread {
                for batch in batches { intake.handoff.deliver(DeliveryBatch(generation: 1, deliveries: batch)) }
                handed.signal()
            }.start()
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async { handed.wait(); done.resume() }
            }
            // Nothing awaits the outcomes yet, and still every event commits.
            var committed = 0
            for _ in 0..<500 {
                committed = try await store.count("ledger")
                if committed == workload.total { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(committed == workload.total)
            #expect(inbox.take().isEmpty)
            intake.handoff.finish()
            await pipeline.settleOrdered(intake)
            expectAllAckedOnce(inbox.take(), total: workload.total)
            #expect(try await workload.problems(in: store) == [])
        }
    }
}

/// The consumer thread's inbox: one byte in the pipe however many posts arrive before the thread takes them.
@Suite("RabbitMQ completion inbox")
struct CompletionInboxTests {
    /// Bytes waiting in the inbox's pipe.
    func bytesInPipe(_ inbox: CompletionInbox) -> Int32 {
        var available: Int32 = 0
        return ioctl(inbox.eventDescriptor, UInt(FIONREAD), &available) == 0 ? available : -1
    }

    func completion(_ tag: UInt64) -> Completion { Completion(generation: 1, deliveryTag: tag, disposition: .ack) }

    @Test func aBurstOfPostsWritesOneByteAndTakingClearsIt() throws {
        let inbox = CompletionInbox()
        #expect(bytesInPipe(inbox) == 0)
        for tag in 1...50 { inbox.post([completion(UInt64(tag))]) }
        inbox.wake()
        #expect(bytesInPipe(inbox) == 1, "one byte after 50 posts and a wake")
        #expect(inbox.take().map(\.deliveryTag) == (1...50).map(UInt64.init))
        #expect(bytesInPipe(inbox) == 0)
        #expect(inbox.take().isEmpty)
        inbox.wake()
        #expect(bytesInPipe(inbox) == 1)
        #expect(inbox.take().isEmpty)
        #expect(bytesInPipe(inbox) == 0)
    }

    /// Posts from other threads while the taker takes: every completion is taken once, and whatever was posted and
    /// not yet taken has its byte in the pipe (no lost wake-up: the taker's poll never times out).
    @Test func postsRacingTakesLoseNothingAndNoWakeUp() throws {
        let inbox = CompletionInbox()
        let threads = 4, perThread = 2_000
        for thread in 0..<threads {
            Thread {
                for index in 0..<perThread {
                    inbox.post([Completion(generation: 1, deliveryTag: UInt64(thread * perThread + index + 1), disposition: .ack)])
                }
            }.start()
        }
        var taken: [UInt64] = []
        var timedOut = false
        while taken.count < threads * perThread {
            var fds = [pollfd(fd: inbox.eventDescriptor, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 1, 5_000) != 1 {
                timedOut = true
                break
            }
            taken += inbox.take().map(\.deliveryTag)
        }
        #expect(!timedOut, "the taker waited 5 s with \(taken.count) of \(threads * perThread) taken")
        #expect(taken.count == threads * perThread)
        #expect(Set(taken).count == threads * perThread)
        #expect(bytesInPipe(inbox) == 0)
    }
}

extension Array {
    func chunked(_ size: Int) -> [[Element]] {
        stride(from: 0, to: count, by: size).map { Array(self[$0..<Swift.min($0 + size, count)]) }
    }
}
