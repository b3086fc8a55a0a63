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

    /// `dlq list` reads times and counts from headers anyone who publishes to the queue can set: a timestamp past
    /// 2^63 seconds (which once trapped) lists as unknown, a count at the limit as the most a count says.
    @Test func listingDeadLettersWithHeadersAtTheLimit() throws {
        let node = try RabbitMQTestNode.shared()
        let queue = "crm.test.dead.limits.\(UUID().uuidString.prefix(6))"
        try node.freshQueue(queue)
        var properties = AMQPProperties(contentType: "application/json", deliveryMode: 2)
        properties.messageId = "limits-1"
        properties.headers["x-crm-ingest-dead-lettered-at"] = .timestamp(.max)
        properties.headers["x-death"] = .array([.table(["count": .int(.max), "time": .timestamp(.max)])])
        let publisher = try node.publisher()
        try publisher.publishAll([AMQPPublisher.Message(body: Array(#"{"type":"X","contactId":"c"}"#.utf8), routingKey: queue, properties: properties)])
        publisher.close()
        let source = SourceConfig(name: "l", transport: .rabbitmq(RabbitMQSourceConfig(endpoint: node.endpoint, queue: "src", deadLetter: .queue(queue))))
        guard case let .rabbitmq(config) = source.transport else { return }
        let deadLetters = try RabbitMQDeadLetters(source: source, config: config, processor: EventProcessor(mapping: Mapping(attributes: [], actions: [:])))
        let listed = try deadLetters.list(limit: 10)
        #expect(listed.map(\.messageId) == ["limits-1"])
        #expect(listed.first?.deadLetteredAt == nil)
        #expect(listed.first?.deliveries == AMQPProperties.maxDeliveryCount + 1)
        #expect(try node.counts(queue).ready == 1)
    }

    /// A replay into a source queue with room for three of five (`reject-publish`): the three it took leave the
    /// dead-letter queue, the two it refused stay, and the summary says so. Before, the whole batch counted as
    /// failed and stayed dead-lettered while three copies were already in the source queue: the next replay sent
    /// them again.
    @Test func aReplayTheSourceQueueTakesInPartLeavesOnlyTheRefusedDeadLettered() throws {
        let node = try RabbitMQTestNode.shared()
        let sourceQueue = "crm.test.replay.full.\(UUID().uuidString.prefix(6))"
        let deadQueue = sourceQueue + ".dead"
        try node.freshQueue(sourceQueue, arguments: ["x-max-length": .int(3), "x-overflow": .string("reject-publish")])
        try node.freshQueue(deadQueue)
        let publisher = try node.publisher()
        try publisher.publishAll((1...5).map { index in
            var properties = AMQPProperties(contentType: "application/json", deliveryMode: 2)
            properties.messageId = "full-\(index)"
            properties.headers["x-crm-ingest-reason"] = .string("store unavailable")
            return AMQPPublisher.Message(body: Array(#"{"type":"USER_UPDATE","contactId":"c\#(index)"}"#.utf8), routingKey: deadQueue, properties: properties)
        })
        publisher.close()
        let source = SourceConfig(name: "full", transport: .rabbitmq(RabbitMQSourceConfig(endpoint: node.endpoint, queue: sourceQueue, deadLetter: .queue(deadQueue))))
        guard case let .rabbitmq(config) = source.transport else { return }
        let deadLetters = try RabbitMQDeadLetters(source: source, config: config, processor: EventProcessor(mapping: Mapping(attributes: [], actions: [:])))
        let summary = try deadLetters.replay(limit: nil, eventType: nil)
        #expect(summary.replayed == 3 && summary.failed == 2)
        #expect(summary.failure?.contains("nacked or returned unroutable") == true)
        #expect(try node.counts(sourceQueue) == (3, 0))
        let left = try node.drain(deadQueue, expected: 2).compactMap(\.properties.messageId)
        let replayed = try node.drain(sourceQueue, expected: 3).compactMap(\.properties.messageId)
        #expect(Set(left + replayed) == Set((1...5).map { "full-\($0)" }))
    }

    /// `dlq replay --limit 1` three times on a quorum dead-letter queue allowing two deliveries: three replayed,
    /// seven left. With a prefetch of 500 the broker sent all ten each time and took nine back, counting a delivery
    /// each: the third replay found them dropped.
    @Test func replaysWithALimitLeaveTheOthersOfAQuorumQueueInPlace() throws {
        let node = try RabbitMQTestNode.shared()
        let sourceQueue = "crm.test.replay.limit.\(UUID().uuidString.prefix(6))"
        let deadQueue = sourceQueue + ".dead"
        try node.freshQueue(sourceQueue)
        try node.freshQueue(deadQueue, arguments: ["x-queue-type": .string("quorum"), "x-delivery-limit": .int(2)])
        let publisher = try node.publisher()
        try publisher.publishAll((1...10).map { index in
            var properties = AMQPProperties(contentType: "application/json", deliveryMode: 2)
            properties.messageId = "limit-\(index)"
            return AMQPPublisher.Message(body: Array(#"{"type":"USER_UPDATE","contactId":"c\#(index)"}"#.utf8), routingKey: deadQueue, properties: properties)
        })
        publisher.close()
        let source = SourceConfig(name: "limit", transport: .rabbitmq(RabbitMQSourceConfig(endpoint: node.endpoint, queue: sourceQueue, deadLetter: .queue(deadQueue))))
        guard case let .rabbitmq(config) = source.transport else { return }
        let deadLetters = try RabbitMQDeadLetters(source: source, config: config, processor: EventProcessor(mapping: Mapping(attributes: [], actions: [:])))
        for _ in 1...3 {
            let summary = try deadLetters.replay(limit: 1, eventType: nil)
            #expect(summary.replayed == 1 && summary.failure == nil)
        }
        #expect(try node.counts(sourceQueue) == (3, 0))
        // A quorum queue's counts settle a moment after the channel closed.
        var left = try node.counts(deadQueue)
        for _ in 0..<50 where left != (7, 0) {
            Thread.sleep(forTimeInterval: 0.1)
            left = try node.counts(deadQueue)
        }
        #expect(left == (7, 0), "\(left)")
    }
}
