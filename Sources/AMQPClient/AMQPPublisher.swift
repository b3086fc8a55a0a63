/// Publishes with publisher confirms, in windows: up to `window` messages go out before it waits for the broker's
/// acks, so a confirm costs a fraction of a round trip per message instead of one each.
///
/// Owns its own connection (one thread, like every `AMQPConnection`).
public final class AMQPPublisher {
    public let connection: AMQPConnection
    let channel: UInt16 = 1
    private var nextSequence: UInt64 = 1
    private var unconfirmed: Set<UInt64> = []
    /// Since the last `collectConfirms`: the sequence numbers the broker nacked, and the returns (reply text,
    /// exchange, routing key).
    private var nacked: Set<UInt64> = []
    private var returned: [(replyText: String, exchange: String, routingKey: String)] = []

    public init(endpoint: AMQPEndpoint, heartbeatSeconds: Int = 30, connectionName: String = "crm-ingest publisher") throws(AMQPError) {
        connection = try AMQPConnection(endpoint: endpoint, heartbeatSeconds: heartbeatSeconds, connectionName: connectionName)
        try connection.openChannel(channel)
        try connection.enableConfirms(channel: channel)
    }

    public struct Message: Sendable {
        public var body: [UInt8]
        public var exchange: String
        public var routingKey: String
        public var properties: AMQPProperties
        public var mandatory: Bool

        public init(body: [UInt8], exchange: String = "", routingKey: String, properties: AMQPProperties = AMQPProperties(deliveryMode: 2), mandatory: Bool = true) {
            self.body = body
            self.exchange = exchange
            self.routingKey = routingKey
            self.properties = properties
            self.mandatory = mandatory
        }
    }

    /// Publishes without waiting; `waitForConfirms` collects the broker's answers.
    public func publish(_ message: Message) throws(AMQPError) {
        try connection.publish(
            message.body, exchange: message.exchange, routingKey: message.routingKey, properties: message.properties,
            channel: channel, mandatory: message.mandatory
        )
        unconfirmed.insert(nextSequence)
        nextSequence += 1
    }

    /// Waits until the broker confirmed every message published so far. Throws `publishRejected` if any was nacked
    /// or returned unroutable (the caller decides whether to publish again), `timeout` if the broker is silent.
    public func waitForConfirms(timeout: Duration = .seconds(30)) throws(AMQPError) {
        let (nacked, returned) = try collectConfirms(timeout: timeout)
        if !nacked.isEmpty || !returned.isEmpty {
            var reasons: [String] = []
            if !nacked.isEmpty { reasons.append("\(nacked.count) nacked by the broker") }
            if let first = returned.first { reasons.append("\(returned.count) returned unroutable (\(first.replyText))") }
            throw AMQPError(.publishRejected, reasons.joined(separator: ", "))
        }
    }

    /// Publishes all messages, waiting for confirms after every `window` of them and at the end.
    public func publishAll(_ messages: some Sequence<Message>, window: Int = 500, confirmTimeout: Duration = .seconds(30)) throws(AMQPError) {
        var inWindow = 0
        for message in messages {
            try publish(message)
            inWindow += 1
            if inWindow >= window {
                try waitForConfirms(timeout: confirmTimeout)
                inWindow = 0
            }
        }
        try waitForConfirms(timeout: confirmTimeout)
    }

    /// Publishes all messages in windows and says, for each, whether the broker took it: false for one it nacked
    /// or returned unroutable. A return names only the exchange and routing key, so it counts against every message
    /// of its window published with both (they route alike, but for a headers exchange). Throws only when publishing
    /// or the confirms fail as a whole (a closed connection, no confirm within `confirmTimeout`).
    public func publishEach(_ messages: [Message], window: Int = 500, confirmTimeout: Duration = .seconds(30)) throws(AMQPError) -> [Bool] {
        var taken: [Bool] = []
        taken.reserveCapacity(messages.count)
        var start = messages.startIndex
        while start < messages.endIndex {
            let end = min(start + window, messages.endIndex)
            let first = nextSequence
            for message in messages[start..<end] { try publish(message) }
            let (nacked, returned) = try collectConfirms(timeout: confirmTimeout)
            for (offset, message) in messages[start..<end].enumerated() {
                let unroutable = returned.contains { $0.exchange == message.exchange && $0.routingKey == message.routingKey }
                taken.append(!nacked.contains(first + UInt64(offset)) && !unroutable)
            }
            start = end
        }
        return taken
    }

    /// Waits until every message published so far is confirmed; returns what was nacked or returned meanwhile.
    private func collectConfirms(timeout: Duration) throws(AMQPError) -> (nacked: Set<UInt64>, returned: [(replyText: String, exchange: String, routingKey: String)]) {
        defer {
            nacked = []
            returned = []
        }
        let deadline = ContinuousClock.now + timeout
        while !unconfirmed.isEmpty {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw AMQPError(.timeout, "\(unconfirmed.count) publishes not confirmed within \(timeout)") }
            guard let event = try connection.nextEvent(timeout: min(left, .seconds(1))) else { continue }
            switch event {
            case let .confirmed(_, tag, multiple):
                settle(tag, multiple: multiple)
            case let .rejected(_, tag, multiple):
                if multiple { nacked.formUnion(unconfirmed.filter { $0 <= tag }) } else { nacked.insert(tag) }
                settle(tag, multiple: multiple)
            case let .returned(_, replyText, exchange, routingKey):
                returned.append((replyText, exchange, routingKey))
            case .delivery, .consumerCancelled, .consumerCancelOk:
                break
            }
        }
        return (nacked, returned)
    }

    private func settle(_ tag: UInt64, multiple: Bool) {
        if multiple {
            unconfirmed = unconfirmed.filter { $0 > tag }
        } else {
            unconfirmed.remove(tag)
        }
    }

    /// Declares a durable queue unless it exists. A queue that exists with other arguments makes the broker answer
    /// 406 and close the side channel used here: the queue exists, which is all a publisher needs.
    public func declareQueueIfMissing(_ name: String, arguments: AMQPTable = AMQPTable()) throws(AMQPError) {
        let side: UInt16 = 2
        try connection.openChannel(side)
        do {
            try connection.declareQueue(name, channel: side, durable: true, arguments: arguments)
            connection.closeChannel(side)
        } catch where error.replyCode == 406 {}
    }

    public func close() {
        connection.close()
    }
}
