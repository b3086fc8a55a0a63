import AMQPClient

/// A RabbitMQ source: one queue consumed by one connection, events spread over lanes by contact.
public struct RabbitMQSourceConfig: Sendable, Equatable {
    public var endpoint: AMQPEndpoint
    public var queue: String
    /// Declare the queue at start-up with these settings; nil: the queue must exist.
    public var declare: QueueDeclaration?
    public var bindings: [Binding]
    /// Unacked deliveries the broker may have in flight to us.
    public var prefetch: Int
    /// Parallel store workers; events of one contact always take the same lane.
    public var lanes: Int
    /// A message the broker says it delivered more often than this is dead-lettered unprocessed.
    public var maxRedeliveries: Int
    public var heartbeatSeconds: Int
    public var deadLetter: DeadLetterTarget?
    /// What happens to a message the daemon refuses.
    public var onRefused: OnRefused = .deadLetter
    /// Where replies to requests go (Altcraft's `database_import_result`); set from the source's format.
    public var replies: ReplyTarget?

    /// A queue that receives one reply per request, published with confirms before the request is acked.
    public struct ReplyTarget: Sendable, Equatable {
        /// Declared durable with `x-message-ttl` if missing; replies go to it through the default exchange.
        public var queue: String
        /// Replies expire after this long unread (each carries it as its `expiration`).
        public var ttlSeconds: Int

        public init(queue: String = "database_import_result", ttlSeconds: Int = 86_400) {
            self.queue = queue
            self.ttlSeconds = ttlSeconds
        }
    }

    public enum OnRefused: String, Sendable, Equatable {
        /// To the `dead_letter` target (or, without one, rejected to the queue's dead-letter exchange).
        case deadLetter = "dead_letter"
        /// Rejected to the queue's own dead-letter exchange, whose retry topology brings it back later (Proca's
        /// fail/retry queues); once delivered more than `max_redeliveries` times it goes to the `dead_letter` target
        /// and leaves the loop.
        case retry
    }

    public struct QueueDeclaration: Sendable, Equatable {
        public var durable: Bool
        public var arguments: AMQPTable

        public init(durable: Bool = true, arguments: AMQPTable = AMQPTable()) {
            self.durable = durable
            self.arguments = arguments
        }
    }

    public struct Binding: Sendable, Equatable {
        public var exchange: String
        public var routingKey: String
        /// Declare the exchange with this type first (direct, topic, fanout, headers, x-consistent-hash); nil: it must exist.
        public var exchangeType: String?

        public init(exchange: String, routingKey: String, exchangeType: String? = nil) {
            self.exchange = exchange
            self.routingKey = routingKey
            self.exchangeType = exchangeType
        }
    }

    /// Where the daemon itself publishes messages it cannot process (with the reason in headers), before acking them.
    public enum DeadLetterTarget: Sendable, Equatable {
        /// A queue, declared durable if missing, published to through the default exchange.
        case queue(String)
        /// An exchange; the message keeps its routing key unless one is given.
        case exchange(String, routingKey: String?)
    }

    public init(
        endpoint: AMQPEndpoint, queue: String, declare: QueueDeclaration? = nil, bindings: [Binding] = [], prefetch: Int = 500,
        lanes: Int = 4, maxRedeliveries: Int = 5, heartbeatSeconds: Int = 30, deadLetter: DeadLetterTarget? = nil
    ) {
        self.endpoint = endpoint
        self.queue = queue
        self.declare = declare
        self.bindings = bindings
        self.prefetch = prefetch
        self.lanes = lanes
        self.maxRedeliveries = maxRedeliveries
        self.heartbeatSeconds = heartbeatSeconds
        self.deadLetter = deadLetter
    }
}
