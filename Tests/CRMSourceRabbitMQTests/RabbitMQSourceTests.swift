import AMQPClient
import CRMCore
import CRMSourceRabbitMQ
import Foundation
import Testing

/// The RabbitMQ source against a real broker (scripts/rabbitmq-node.sh).
@Suite("RabbitMQ source", .serialized)
struct RabbitMQSourceTests {
    static func uniqueQueue(_ name: String) -> String { "crm.test.\(name).\(UUID().uuidString.prefix(6))" }

    @Test func appliesTenThousandEventsInOrderAndAcksThemAll() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("all")
        try node.freshQueue(queue)
        let workload = Workload(contacts: 500, perContact: 20)
        let publisher = try node.publisher()
        try publisher.publishAll(workload.messages(queue: queue, withIds: true))
        publisher.close()
        #expect(try node.counts(queue).ready == workload.total)

        let source = try RunningSource(queue: queue, node: node, lanes: 4)
        defer { source.remove() }
        let done = try await source.wait { try await source.count("ledger") >= workload.total }
        #expect(done)
        try await source.stop()
        #expect(try await source.count("ledger") == workload.total)
        let counts = try node.counts(queue)
        #expect(counts.ready == 0 && counts.unacked == 0)
        #expect(try await workload.problems(in: source.store) == [])
        #expect(try await source.count("purchases") == workload.contacts * workload.depositSteps.count)
    }
}
