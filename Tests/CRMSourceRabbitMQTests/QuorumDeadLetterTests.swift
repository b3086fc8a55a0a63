import AMQPClient
import CRMConfig
import CRMCore
import CRMSourceRabbitMQ
import CRMSourceSupport
import Foundation
import Testing

extension RabbitMQSourceTests {
    /// A quorum dead-letter queue with `x-delivery-limit`: returning a listed message counts as a delivery, so
    /// five listings of a queue that allows two would have dropped it (seen here before the put-back). Every
    /// listing and a replay of another type must leave the message there.
    @Test func listingAQuorumDeadLetterQueueNeverUsesUpItsDeliveryLimit() throws {
        let node = try RabbitMQTestNode.shared()
        let queue = "crm.test.quorum.\(UUID().uuidString.prefix(6))"
        try node.freshQueue(queue, arguments: ["x-queue-type": .string("quorum"), "x-delivery-limit": .int(2)])
        let publisher = try node.publisher()
        var properties = AMQPProperties(contentType: "application/json", deliveryMode: 2)
        properties.messageId = "q-1"
        properties.headers["x-crm-ingest-reason"] = .string("type: unknown event type \"X\"")
        try publisher.publishAll([AMQPPublisher.Message(body: Array(#"{"type":"X","contactId":"c"}"#.utf8), routingKey: queue, properties: properties)])
        publisher.close()
        let source = SourceConfig(name: "q", transport: .rabbitmq(RabbitMQSourceConfig(endpoint: node.endpoint, queue: "src", deadLetter: .queue(queue))))
        guard case let .rabbitmq(config) = source.transport else { return }
        let deadLetters = try RabbitMQDeadLetters(source: source, config: config, processor: EventProcessor(mapping: Mapping(attributes: [], actions: [:])))
        for round in 1...5 {
            let listed = try deadLetters.list(limit: 10)
            #expect(listed.map(\.messageId) == ["q-1"], "round \(round)")
            #expect(listed.first?.reason == "type: unknown event type \"X\"")
        }
        let summary = try deadLetters.replay(limit: nil, eventType: "USER_UPDATE")
        #expect(summary.replayed == 0 && summary.leftOtherType == 1 && summary.failure == nil)
        for _ in 1...3 { #expect(try deadLetters.list(limit: 10).map(\.messageId) == ["q-1"]) }
    }
}
