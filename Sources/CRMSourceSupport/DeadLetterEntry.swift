/// One dead-lettered message as `crm-ingest dlq list` shows it.
public struct DeadLetterEntry: Sendable, Equatable {
    /// The message's id (AMQP `message_id`, SQS `MessageId`); nil when it has none.
    public var messageId: String?
    /// The event type, read with the source's current format (or the body's top-level `type`); nil: unknown.
    public var eventType: String?
    /// Why it was dead-lettered, as recorded then.
    public var reason: String
    /// How many times it was delivered before it was dead-lettered; nil when the broker does not say.
    public var deliveries: Int?
    /// When it was first dead-lettered, in Unix seconds; nil when unknown.
    public var deadLetteredAt: Int64?
    /// What the source's current mapping would do with it now: `applies`, `skipped`, or `refused: <reason>`.
    public var now: String
    public var bodyBytes: Int

    public init(messageId: String?, eventType: String?, reason: String, deliveries: Int?, deadLetteredAt: Int64?, now: String, bodyBytes: Int) {
        self.messageId = messageId
        self.eventType = eventType
        self.reason = reason
        self.deliveries = deliveries
        self.deadLetteredAt = deadLetteredAt
        self.now = now
        self.bodyBytes = bodyBytes
    }
}

/// What `crm-ingest dlq replay` did.
public struct DeadLetterReplaySummary: Sendable, Equatable {
    /// Published again to the source queue (confirmed by the broker) and removed from the dead letters.
    public var replayed = 0
    /// Left in the dead letters: another event type than `--where` asked for.
    public var leftOtherType = 0
    /// Left in the dead letters: publishing them again failed (the error says why).
    public var failed = 0
    public var failure: String?

    public init() {}
}
