import AMQPClient
import CRMCore
import CRMSourceSupport
@testable import CRMSourceRabbitMQ
import CRMStoreSQLite
import CRMTestSupport
import Foundation
import Synchronization
import Testing

/// The RabbitMQ pipeline's lanes with a store that takes a limited number of events per transaction
/// (`CRMStore.maxEventsPerTransaction`, PostgreSQL's 250): a lane's batch goes in parts, in order, and once a part is
/// given back the rest of the batch goes back with it, unapplied.
@Suite("RabbitMQ pipeline: transaction parts")
struct LanePartsTests {
    /// A pipeline with one lane on `store`, completions into `inbox`.
    func makePipeline(_ store: PartLimitedStore, _ inbox: CompletionInbox) -> LanePipeline {
        LanePipeline(
            sourceName: "parts", laneCount: 1, maxRedeliveries: 5, processor: { Workload.processor }, store: store, inbox: inbox,
            stopping: StopFlag(), logger: CapturedLogs().logger, now: { Timestamp(secondsSinceEpoch: 1_700_000_000) },
            metrics: SourceMetrics(source: "parts"), retryBudget: .seconds(60)
        )
    }

    func deliveries(_ workload: Workload) -> [AMQPDelivery] {
        workload.messages(queue: "q", withIds: true).enumerated().map { index, message in
            AMQPDelivery(channel: 1, deliveryTag: UInt64(index + 1), redelivered: false, exchange: "", routingKey: "q",
                         properties: message.properties, body: message.body)
        }
    }

    /// One lane, one batch of the workload's deliveries; the completions, sorted by delivery tag.
    func run(_ store: PartLimitedStore, _ workload: Workload) async -> [Completion] {
        let inbox = CompletionInbox()
        let pipeline = makePipeline(store, inbox)
        let (stream, continuation) = AsyncStream.makeStream(of: DeliveryBatch.self)
        continuation.yield(DeliveryBatch(generation: 1, deliveries: deliveries(workload)))
        continuation.finish()
        await pipeline.run(stream)
        return inbox.take().sorted { $0.deliveryTag < $1.deliveryTag }
    }

    /// A fresh SQLite store behind a `PartLimitedStore` of `limit`; a refused call fails as not transient, so the lane
    /// gives its part back at once instead of retrying it for its budget.
    func withStore(limit: Int, refusingCall: Int?, _ body: (PartLimitedStore, SQLiteCRMStore) async throws -> Void) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-parts-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let inner = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        defer { try? inner.close() }
        try await body(PartLimitedStore(inner: inner, limit: limit, failing: refusingCall.map { ($0, StoreError(.schema, "refused for the test")) }), inner)
    }

    @Test func aLanesBatchGoesInPartsInOrder() async throws {
        try await withStore(limit: 5, refusingCall: nil) { (store: PartLimitedStore, sqlite: SQLiteCRMStore) async throws in
            let workload = Workload(contacts: 3, perContact: 4)
            let completions = await run(store, workload)
            #expect(store.calls == [5, 5, 2])
            #expect(completions.count == 12 && completions.allSatisfy { $0.disposition == .ack })
            #expect(try await workload.problems(in: sqlite) == [])
            #expect(try await sqlite.count("ledger") == 12)
        }
    }

    /// A part's deliveries are settled as soon as it commits, while a later part still waits for the store.
    @Test func aCommittedPartIsSettledBeforeTheNextOneEnds() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-parts-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let sqlite = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        defer { try? sqlite.close() }
        let release = Atomic<Bool>(false)
        let store = PartLimitedStore(inner: sqlite, limit: 5) { call in
            while call == 2, !release.load(ordering: .acquiring) { try? await Task.sleep(for: .milliseconds(10)) }
        }
        let inbox = CompletionInbox()
        let (stream, continuation) = AsyncStream.makeStream(of: DeliveryBatch.self)
        continuation.yield(DeliveryBatch(generation: 1, deliveries: deliveries(Workload(contacts: 3, perContact: 4))))
        continuation.finish()
        let pipeline = makePipeline(store, inbox)
        let running = Task { await pipeline.run(stream) }
        var early: [Completion] = []
        // Generous: in the full run, other suites keep the two cores and Swift's pool busy (a first version with 10 s
        // timed out there while the part had not been applied yet).
        let deadline = ContinuousClock.now + .seconds(120)
        while early.count < 5, ContinuousClock.now < deadline {
            early += inbox.take()
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(early.map(\.deliveryTag).sorted() == [1, 2, 3, 4, 5])
        #expect(early.allSatisfy { $0.disposition == .ack })
        release.store(true, ordering: .releasing)
        await running.value
        #expect(inbox.take().count == 7)
    }

    @Test func afterAPartIsGivenBackTheRestGoesBackUnapplied() async throws {
        try await withStore(limit: 5, refusingCall: 2) { (store: PartLimitedStore, sqlite: SQLiteCRMStore) async throws in
            let completions = await run(store, Workload(contacts: 3, perContact: 4))
            // The third part never reached the store.
            #expect(store.calls == [5, 5])
            #expect(completions.map(\.deliveryTag) == Array(1...12))
            #expect(completions.prefix(5).allSatisfy { $0.disposition == .ack })
            #expect(completions.dropFirst(5).allSatisfy { $0.disposition == .requeue })
            #expect(try await sqlite.count("ledger") == 5)
        }
    }
}
