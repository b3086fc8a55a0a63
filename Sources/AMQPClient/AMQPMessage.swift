import CRabbitMQ
#if canImport(Glibc)
import Glibc
#endif

/// The basic properties of a message that crm-ingest reads or sets.
public struct AMQPProperties: Sendable, Hashable {
    public var contentType: String?
    public var messageId: String?
    public var correlationId: String?
    public var replyTo: String?
    public var type: String?
    public var appId: String?
    /// Seconds since 1970, as AMQP carries it.
    public var timestamp: UInt64?
    /// 2 is persistent.
    public var deliveryMode: UInt8?
    /// Milliseconds, as text: the broker drops the message from a queue once it waited this long.
    public var expiration: String?
    public var headers: AMQPTable

    public init(
        contentType: String? = nil, messageId: String? = nil, correlationId: String? = nil, replyTo: String? = nil,
        type: String? = nil, appId: String? = nil, timestamp: UInt64? = nil, deliveryMode: UInt8? = nil, expiration: String? = nil,
        headers: AMQPTable = AMQPTable()
    ) {
        self.contentType = contentType
        self.messageId = messageId
        self.correlationId = correlationId
        self.replyTo = replyTo
        self.type = type
        self.appId = appId
        self.timestamp = timestamp
        self.deliveryMode = deliveryMode
        self.expiration = expiration
        self.headers = headers
    }

    /// How many times the broker says this message was delivered before: quorum queues' `x-delivery-count`, or the
    /// sum of `x-death` counts for messages that went round a dead-letter loop. Nil when the broker does not say.
    ///
    /// A classic queue passes these headers through as the publisher set them, so any value can arrive: a count
    /// below zero reads as 0, and counts (or a sum) above `maxDeliveryCount` read as `maxDeliveryCount`, so that
    /// adding this delivery cannot overflow (a header of 2^63 - 1 trapped there, and the message came back after
    /// every restart).
    public var previousDeliveries: Int? {
        func clamped(_ count: Int64) -> Int64 { min(max(count, 0), Int64(Self.maxDeliveryCount)) }
        if let count = headers["x-delivery-count"]?.intValue { return Int(clamped(count)) }
        if case let .array(deaths)? = headers["x-death"] {
            var total: Int64 = 0
            for case let .table(death) in deaths { total = clamped(total + clamped(death["count"]?.intValue ?? 0)) }
            return Int(total)
        }
        return nil
    }

    /// The most `previousDeliveries` says (2^31 - 1).
    public static let maxDeliveryCount = Int(Int32.max)
}

extension AMQPProperties {
    /// `strings`: decodes the properties that repeat from message to message (content type, type, app id) once.
    init(_ properties: amqp_basic_properties_t, strings: inout RepeatedStrings) {
        let flags = properties._flags
        func has(_ flag: Int32) -> Bool { flags & amqp_flags_t(flag) != 0 }
        func text(_ flag: Int32, _ bytes: amqp_bytes_t) -> String? { has(flag) ? String(amqpBytes: bytes) : nil }
        func repeated(_ flag: Int32, _ bytes: amqp_bytes_t) -> String? { has(flag) ? strings.string(bytes) : nil }
        self.init(
            contentType: repeated(AMQP_BASIC_CONTENT_TYPE_FLAG, properties.content_type),
            messageId: text(AMQP_BASIC_MESSAGE_ID_FLAG, properties.message_id),
            correlationId: text(AMQP_BASIC_CORRELATION_ID_FLAG, properties.correlation_id),
            replyTo: repeated(AMQP_BASIC_REPLY_TO_FLAG, properties.reply_to),
            type: repeated(AMQP_BASIC_TYPE_FLAG, properties.type),
            appId: repeated(AMQP_BASIC_APP_ID_FLAG, properties.app_id),
            timestamp: has(AMQP_BASIC_TIMESTAMP_FLAG) ? properties.timestamp : nil,
            deliveryMode: has(AMQP_BASIC_DELIVERY_MODE_FLAG) ? properties.delivery_mode : nil,
            expiration: text(AMQP_BASIC_EXPIRATION_FLAG, properties.expiration),
            headers: has(AMQP_BASIC_HEADERS_FLAG) ? AMQPTable(properties.headers) : AMQPTable()
        )
    }

    func cProperties(in arena: AMQPArena) -> amqp_basic_properties_t {
        var properties = amqp_basic_properties_t()
        var flags: Int32 = 0
        if let contentType { properties.content_type = arena.bytes(contentType); flags |= AMQP_BASIC_CONTENT_TYPE_FLAG }
        if let messageId { properties.message_id = arena.bytes(messageId); flags |= AMQP_BASIC_MESSAGE_ID_FLAG }
        if let correlationId { properties.correlation_id = arena.bytes(correlationId); flags |= AMQP_BASIC_CORRELATION_ID_FLAG }
        if let replyTo { properties.reply_to = arena.bytes(replyTo); flags |= AMQP_BASIC_REPLY_TO_FLAG }
        if let type { properties.type = arena.bytes(type); flags |= AMQP_BASIC_TYPE_FLAG }
        if let appId { properties.app_id = arena.bytes(appId); flags |= AMQP_BASIC_APP_ID_FLAG }
        if let timestamp { properties.timestamp = timestamp; flags |= AMQP_BASIC_TIMESTAMP_FLAG }
        if let deliveryMode { properties.delivery_mode = deliveryMode; flags |= AMQP_BASIC_DELIVERY_MODE_FLAG }
        if let expiration { properties.expiration = arena.bytes(expiration); flags |= AMQP_BASIC_EXPIRATION_FLAG }
        if !headers.isEmpty { properties.headers = arena.table(headers); flags |= AMQP_BASIC_HEADERS_FLAG }
        properties._flags = amqp_flags_t(flags)
        return properties
    }
}

/// The strings a consumer receives with every delivery and that rarely change (consumer tag, exchange, content
/// type): each is decoded once and shared after that, which saves an allocation per string per delivery for the
/// ones too long to be stored inline (more than 15 bytes, like `application/json`).
struct RepeatedStrings {
    /// The most recently decoded distinct strings, at most `capacity`; the oldest makes room.
    private var known: [String] = []
    private var next = 0
    private let capacity = 16

    mutating func string(_ bytes: amqp_bytes_t) -> String {
        guard let pointer = bytes.bytes, bytes.len > 0 else { return "" }
        let received = UnsafeRawBufferPointer(start: pointer, count: bytes.len)
        for index in known.indices where known[index].utf8.count == bytes.len {
            let same = known[index].withUTF8 { memcmp($0.baseAddress!, pointer, bytes.len) == 0 }
            if same { return known[index] }
        }
        let decoded = String(decoding: received, as: UTF8.self)
        if known.count < capacity {
            known.append(decoded)
        } else {
            known[next] = decoded
            next = (next + 1) % capacity
        }
        return decoded
    }
}

/// A message the broker delivered to a consumer.
public struct AMQPDelivery: Sendable {
    public var channel: UInt16
    /// Belongs to `channel` of the connection that received it; meaningless on any other.
    public var deliveryTag: UInt64
    public var redelivered: Bool
    public var exchange: String
    public var routingKey: String
    /// The consumer it was delivered to: tells which queue it came from when a channel consumes several.
    public var consumerTag: String
    public var properties: AMQPProperties
    public var body: [UInt8]

    public init(
        channel: UInt16, deliveryTag: UInt64, redelivered: Bool, exchange: String, routingKey: String, consumerTag: String = "",
        properties: AMQPProperties, body: [UInt8]
    ) {
        self.channel = channel
        self.deliveryTag = deliveryTag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routingKey = routingKey
        self.consumerTag = consumerTag
        self.properties = properties
        self.body = body
    }
}

/// What waiting on a connection can bring besides a delivery.
public enum AMQPEvent: Sendable {
    case delivery(AMQPDelivery)
    /// A publisher confirm: the broker took responsibility for every publish up to `deliveryTag` (or just it).
    case confirmed(channel: UInt16, deliveryTag: UInt64, multiple: Bool)
    /// A publisher nack: the broker could not take these messages.
    case rejected(channel: UInt16, deliveryTag: UInt64, multiple: Bool)
    /// A mandatory publish that no queue took.
    /// A mandatory publish nothing took; `exchange` and `routingKey` are the ones it was published with.
    case returned(channel: UInt16, replyText: String, exchange: String, routingKey: String)
    /// The broker cancelled our consumer (the queue was deleted, or a failover).
    case consumerCancelled(channel: UInt16, consumerTag: String)
    /// The broker confirmed our own cancel: no more deliveries for that consumer.
    case consumerCancelOk(channel: UInt16, consumerTag: String)
}
