import AMQPClient
import CRMConfig
import CRMCore
import CRMSourceSupport
import Foundation

/// A RabbitMQ source's dead letters: listed without being consumed for good, and replayed to the source queue (or,
/// for a sharded source, to its shard exchange).
/// Blocking (librabbitmq): for the command line, not for the cooperative thread pool.
///
/// Listing consumes up to the limit without acking, then closes the channel: the broker puts every message back
/// where it was. Replaying publishes each chosen message to the source queue with publisher confirms and acks it in
/// the dead-letter queue only after its confirm arrived; a message of another type, or one whose republish failed,
/// goes back to the dead-letter queue when the channel closes.
public struct RabbitMQDeadLetters {
    public let sourceName: String
    public let endpoint: AMQPEndpoint
    /// The queue the dead letters are in.
    public let deadLetterQueue: String
    /// The source's queue, where replays go (without shards).
    public let sourceQueue: String
    /// A sharded source's consistent-hash exchange, where replays go instead, each with the routing key it was first
    /// published with, so it returns to the shard of its contact.
    public let shardExchange: String?
    /// The source's current processor: the event type and what the mapping would do now.
    public let processor: EventProcessor
    /// How long a silent queue is waited for before the listing or the replay ends.
    public var idleTimeout: Duration = .seconds(1)

    /// Why dead letters of a source cannot be reached.
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    /// The dead-letter queue of a source: its `dead_letter: { queue }`, or `queue` (the one bound to its
    /// dead-letter exchange, which the configuration does not name).
    public init(source: SourceConfig, config: RabbitMQSourceConfig, processor: EventProcessor, queue override: String? = nil) throws(Problem) {
        sourceName = source.name
        endpoint = config.endpoint
        sourceQueue = config.queue
        shardExchange = config.sharding?.exchange
        self.processor = processor
        if let override {
            deadLetterQueue = override
        } else if case let .queue(name)? = config.deadLetter {
            deadLetterQueue = name
        } else if case let .exchange(name, _)? = config.deadLetter {
            throw Problem(description: "source \(source.name) dead-letters to the exchange \(name): name the queue bound to it with --queue")
        } else {
            throw Problem(description: "source \(source.name) has no dead_letter queue; refused messages go to its queue's dead-letter exchange: name the queue bound to it with --queue")
        }
    }

    public func list(limit: Int) throws(AMQPError) -> [DeadLetterEntry] {
        let connection = try AMQPConnection(endpoint: endpoint, connectionName: "crm-ingest dlq list \(sourceName)")
        defer { connection.close() }
        try connection.openChannel(1)
        // Checks the queue exists. Its message count is not trusted: a message another listing just gave back may
        // not be counted yet, so the listing takes up to `limit` and ends when the queue stays silent.
        _ = try connection.declareQueue(deadLetterQueue, channel: 1, passive: true)
        let wanted = limit
        try connection.setPrefetch(UInt16(min(wanted, Int(UInt16.max))), channel: 1)
        _ = try connection.consume(queue: deadLetterQueue, channel: 1)
        var entries: [DeadLetterEntry] = []
        var held: [AMQPDelivery] = []
        try receive(connection, until: wanted) { delivery in
            entries.append(entry(delivery))
            held.append(delivery)
            return true
        }
        try putBack(held, connection)
        return entries
    }

    /// Gives unacked deliveries back without their being consumed for good. Closing the channel puts each message
    /// back in its place, but a quorum queue counts that as a delivery, and one with `x-delivery-limit` drops (or
    /// dead-letters further) a message returned too often: a few listings would lose it. A quorum queue shows
    /// itself by the `x-delivery-count` header on redeliveries; then each message is published again to the same
    /// queue as a new one (at its tail, with publisher confirms) and the delivered copy acked.
    private func putBack(_ held: [AMQPDelivery], _ connection: AMQPConnection) throws(AMQPError) {
        if held.contains(where: { $0.properties.headers["x-delivery-count"] != nil }) {
            let publisher = try AMQPPublisher(endpoint: endpoint, connectionName: "crm-ingest dlq \(sourceName) put back")
            defer { publisher.close() }
            let taken = try publisher.publishEach(held.map { delivery in
                var properties = delivery.properties
                properties.headers["x-delivery-count"] = nil // the broker's own count; the new message starts at 0
                properties.deliveryMode = 2
                return AMQPPublisher.Message(body: delivery.body, exchange: "", routingKey: deadLetterQueue, properties: properties, mandatory: true)
            })
            // Only a copy the broker took replaces its original; the others stay in place (a full queue).
            for (delivery, took) in zip(held, taken) where took { try connection.ack(delivery.deliveryTag, multiple: false, channel: 1) }
        }
        // Whatever is still unacked goes back in its place.
        connection.closeChannel(1)
    }

    /// Replays up to `limit` dead letters (of `eventType` only, when given) to the source queue.
    public func replay(limit: Int?, eventType: String?, progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws(AMQPError) -> DeadLetterReplaySummary {
        let connection = try AMQPConnection(endpoint: endpoint, connectionName: "crm-ingest dlq replay \(sourceName)")
        defer { connection.close() }
        try connection.openChannel(1)
        // The count bounds a replay without `limit` (a message another listing just gave back may not be counted
        // yet: it waits for the next replay); the replay also ends when the queue stays silent (as `list` does).
        let waiting = try connection.declareQueue(deadLetterQueue, channel: 1, passive: true).messages
        var summary = DeadLetterReplaySummary()
        guard limit != 0 else { return summary }
        let publisher = try AMQPPublisher(endpoint: endpoint, connectionName: "crm-ingest dlq replay \(sourceName) publisher")
        defer { publisher.close() }
        // Without a limit, what the queue held at the start: dead letters that come back while the replay runs
        // (the daemon still refuses them) wait for the next replay instead of going round for ever.
        let wanted = limit ?? waiting
        guard wanted > 0 else { return summary }
        // No more than the replay takes: a message the broker sent but the replay never handled goes back when the
        // channel closes, which a quorum queue counts as a delivery (`--limit 1` used up `x-delivery-limit` of
        // hundreds). Messages of other types stay unacked until the end, so with `--where` they must not hold the
        // window shut: no limit then (and the quorum put-back republishes them).
        try connection.setPrefetch(eventType == nil ? UInt16(min(wanted, 500)) : 0, channel: 1)
        let consumerTag = try connection.consume(queue: deadLetterQueue, channel: 1)
        let total = max(min(wanted, waiting), 1)
        var batch: [AMQPDelivery] = []
        var otherTypes: [AMQPDelivery] = []
        func flush() throws(AMQPError) {
            guard !batch.isEmpty else { return }
            let taken: [Bool]
            do {
                taken = try publisher.publishEach(batch.map(replayMessage))
            } catch {
                // Not acked: back to the dead-letter queue when the channel closes.
                summary.failed += batch.count
                summary.failure = "\(error)"
                batch.removeAll()
                throw error
            }
            // Each dead letter whose copy the source queue took is done; the others stay dead-lettered (unacked, back
            // when the channel closes), so a second replay does not send the taken ones again.
            for (delivery, took) in zip(batch, taken) where took { try connection.ack(delivery.deliveryTag, multiple: false, channel: 1) }
            let refused = taken.count { !$0 }
            summary.replayed += taken.count - refused
            batch.removeAll()
            progress(summary.replayed, max(total, summary.replayed))
            if refused > 0 {
                summary.failed += refused
                let error = AMQPError(.publishRejected, "\(refused) of \(taken.count) replayed messages nacked or returned unroutable by the broker (is the queue full?)")
                summary.failure = "\(error)"
                throw error
            }
        }
        do {
            try receive(connection, until: wanted) { (delivery: AMQPDelivery) throws(AMQPError) -> Bool in
                if let eventType, entry(delivery).eventType != eventType {
                    summary.leftOtherType += 1
                    otherTypes.append(delivery)
                } else {
                    batch.append(delivery)
                    if batch.count == 200 { try flush() }
                }
                return summary.replayed + batch.count < wanted
            }
            // No more deliveries: the last acks would otherwise open the window to messages only sent back.
            try connection.requestCancel(consumerTag: consumerTag, channel: 1)
            try flush()
            try putBack(otherTypes, connection)
        } catch {
            if summary.failure == nil { summary.failure = "\(error)" }
            // Other types go back as a listing's do (a quorum queue would count a return by the channel's close).
            try? putBack(otherTypes, connection)
            connection.closeChannel(1)
        }
        return summary
    }

    /// Takes deliveries until `count` arrived, `handle` says stop, or the queue stays silent for `idleTimeout`.
    private func receive(_ connection: AMQPConnection, until count: Int, _ handle: (AMQPDelivery) throws(AMQPError) -> Bool) throws(AMQPError) {
        var received = 0
        while received < count {
            guard let event = try connection.nextEvent(timeout: idleTimeout) else { return }
            guard case let .delivery(delivery) = event else { continue }
            received += 1
            guard try handle(delivery) else { return }
        }
    }

    func entry(_ delivery: AMQPDelivery) -> DeadLetterEntry {
        let headers = delivery.properties.headers
        let (metadataHeaders, attributes) = LanePipeline.metadata(of: delivery.properties)
        let message = IncomingMessage(
            body: delivery.body, identity: delivery.properties.messageId.map { .messageId($0) } ?? .content, mayBeRedelivery: false,
            receivedAt: .now(), source: sourceName, headers: metadataHeaders, attributes: attributes
        )
        let (type, verdict) = processor.assess(message)
        var reason = headers["x-crm-ingest-reason"]?.stringValue
        var at: Int64?
        if case let .timestamp(seconds)? = headers["x-crm-ingest-dead-lettered-at"] { at = Int64(exactly: seconds) }
        // Dead-lettered by the broker (the queue's dead-letter exchange): x-death says why and when.
        if case let .array(deaths)? = headers["x-death"] {
            var times: [Int64] = []
            for case let .table(death) in deaths {
                if case let .timestamp(seconds)? = death["time"], let time = Int64(exactly: seconds) { times.append(time) }
            }
            at = at ?? times.min()
            if reason == nil {
                let first = headers["x-first-death-reason"]?.stringValue ?? "unknown"
                reason = "broker dead-lettered it (\(first)) from \(headers["x-first-death-queue"]?.stringValue ?? "its queue")"
            }
        }
        let deliveries = headers["x-crm-ingest-delivery-count"]?.intValue.map(Int.init) ?? delivery.properties.previousDeliveries.map { $0 + 1 }
        return DeadLetterEntry(
            messageId: delivery.properties.messageId, eventType: type, reason: reason ?? "unknown", deliveries: deliveries,
            deadLetteredAt: at, now: verdict, bodyBytes: delivery.body.count
        )
    }

    /// The message as first published: the dead-letter headers and the broker's delivery history removed (the
    /// history would count against `max_redeliveries`), a header saying when it was replayed. To the source queue
    /// through the default exchange, or to the shard exchange with the original routing key.
    func replayMessage(_ delivery: AMQPDelivery) -> AMQPPublisher.Message {
        let routingKey = Self.originalRoutingKey(of: delivery)
        var properties = delivery.properties
        properties.headers = AMQPTable(properties.headers.entries.filter { entry in
            !entry.key.hasPrefix("x-crm-ingest-") && !["x-death", "x-first-death-reason", "x-first-death-queue", "x-first-death-exchange",
                "x-last-death-reason", "x-last-death-queue", "x-last-death-exchange", "x-delivery-count"].contains(entry.key)
        })
        properties.headers["x-crm-ingest-replayed-at"] = .timestamp(UInt64(Date().timeIntervalSince1970))
        properties.deliveryMode = 2
        if let shardExchange {
            return AMQPPublisher.Message(body: delivery.body, exchange: shardExchange, routingKey: routingKey, properties: properties, mandatory: true)
        }
        return AMQPPublisher.Message(body: delivery.body, exchange: "", routingKey: sourceQueue, properties: properties, mandatory: true)
    }

    /// The routing key a dead letter was published with before it was dead-lettered: the daemon's
    /// `x-crm-ingest-routing-key`, else the broker's oldest `x-death` entry (its `routing-keys`), else the one it
    /// arrived with.
    static func originalRoutingKey(of delivery: AMQPDelivery) -> String {
        let headers = delivery.properties.headers
        if let key = headers["x-crm-ingest-routing-key"]?.stringValue { return key }
        if case let .array(deaths)? = headers["x-death"], case let .table(oldest)? = deaths.last,
           case let .array(keys)? = oldest["routing-keys"], let key = keys.first?.stringValue {
            return key
        }
        return delivery.routingKey
    }
}
