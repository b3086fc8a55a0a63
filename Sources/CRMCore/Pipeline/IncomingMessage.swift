/// A message as a source hands it to the pipeline: the bytes and what the source knows about its delivery.
public struct IncomingMessage: Sendable {
    public enum Identity: Sendable, Hashable {
        /// The source's message id (AMQP `message_id`, SQS or SNS `MessageId`, HTTP dedup hash): always checked.
        case messageId(String)
        /// A key the source built itself and wants always checked (a file line's hash and occurrence).
        case sourceKey(String)
        /// No id: keyed by the SHA-256 of the canonical JSON, checked only when `mayBeRedelivery`.
        case content
    }

    public var body: [UInt8]
    public var identity: Identity
    /// The source says this message may have been delivered before (AMQP `redelivered`, SQS receive count > 1).
    public var mayBeRedelivery: Bool
    public var receivedAt: Timestamp
    /// The source's name, so ids of two sources never collide.
    public var source: String
    /// AMQP headers or SQS message attributes (string values): converters may read the message's type there.
    public var headers: [String: String]
    /// AMQP message properties (`type`, `app_id`, `content_type`, `correlation_id`) or SQS message attributes.
    public var attributes: [String: String]

    public init(
        body: [UInt8], identity: Identity, mayBeRedelivery: Bool, receivedAt: Timestamp, source: String,
        headers: [String: String] = [:], attributes: [String: String] = [:]
    ) {
        self.headers = headers
        self.attributes = attributes
        self.body = body
        self.identity = identity
        self.mayBeRedelivery = mayBeRedelivery
        self.receivedAt = receivedAt
        self.source = source
    }
}

/// The ledger key of an event and how the store checks it.
public struct IdempotencyKey: Sendable, Hashable {
    public enum Check: Sendable, Hashable {
        /// A key already in the ledger makes the event a duplicate.
        case always
        /// Only a ledger entry written at or after this instant makes the event a duplicate.
        case since(Timestamp)
        /// First delivery of a message without id: never a duplicate, but recorded so a redelivery can be recognised.
        case recordOnly
        /// A ledger entry written at or after this instant makes the event a duplicate, and a duplicate moves the
        /// entry's time to now: the window runs from the last request carrying the key (HTTP deduplication).
        case slidingWindow(since: Timestamp)
    }

    public var value: String
    public var check: Check

    public init(value: String, check: Check) {
        self.value = value
        self.check = check
    }
}

/// An event ready for the store: its key and the operations to apply atomically.
public struct PlannedEvent: Sendable, Hashable {
    public var key: IdempotencyKey
    public var type: EventType
    public var contactId: String
    public var operations: [StoreOperation]
    public var unmatchedProperties: Int
    /// The sender wants a reply per request (Altcraft's import results): the source sends it once the outcome is
    /// committed.
    public var reply: ImportReplyRequest?

    public init(
        key: IdempotencyKey, type: EventType, contactId: String, operations: [StoreOperation], unmatchedProperties: Int = 0,
        reply: ImportReplyRequest? = nil
    ) {
        self.key = key
        self.type = type
        self.contactId = contactId
        self.operations = operations
        self.unmatchedProperties = unmatchedProperties
        self.reply = reply
    }
}

/// What preparing a message produced.
public enum PreparedMessage: Sendable {
    case event(PlannedEvent)
    /// Valid, but nothing is mapped to its type.
    case skipped(EventType)
    /// Invalid: goes to the dead-letter path with this reason.
    case rejected(EventError)
}
