import AMQPClient

/// A RabbitMQ source: one queue (or, with `sharding`, the shard queues of one topology) consumed by one connection,
/// events kept in each contact's order (spread over lanes by contact with a store that commits in parallel).
public struct RabbitMQSourceConfig: Sendable, Equatable {
    public var endpoint: AMQPEndpoint
    /// The queue to consume; with `sharding`, the topology's name, from which the shard queues are named.
    public var queue: String
    /// Declare the queue at start-up with these settings; nil: the queue must exist. With `sharding` the shard queues
    /// are always declared (durable), with these arguments added to `x-single-active-consumer`.
    public var declare: QueueDeclaration?
    /// The ordered scale-out topology (`shards: N`); nil: the single queue `queue`.
    public var sharding: Sharding?
    public var bindings: [Binding]
    /// Unacked deliveries the broker may have in flight to us.
    public var prefetch: Int
    /// Parallel store workers for a store that commits in parallel (PostgreSQL); events of one contact always take
    /// the same lane. The SQLite store takes batches in order instead, without lanes.
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

    /// A consistent-hash exchange in front of `count` durable shard queues, each declared with
    /// `x-single-active-consumer`: the broker hashes each message's contact id (its routing key, or `hashHeader`) to
    /// one shard, and each shard delivers to one consumer at a time, so a contact's events keep their order even with
    /// several daemons on the topology.
    public struct Sharding: Sendable, Equatable {
        /// How many shard queues: 1...1024.
        public var count: Int
        /// The `x-consistent-hash` exchange publishers publish to.
        public var exchange: String
        /// Hash on this message header instead of the routing key (the exchange's `hash-header` argument).
        public var hashHeader: String?

        /// The highest `shards` accepted: more queues cost a declaration and a consumer each at every connect.
        public static let maximumCount = 1024

        public init(count: Int, exchange: String, hashHeader: String? = nil) {
            self.count = count
            self.exchange = exchange
            self.hashHeader = hashHeader
        }

        /// The name of shard `index` of the topology named `topology`: `NAME.shard.INDEX`.
        public static func queueName(_ topology: String, shard index: Int) -> String { "\(topology).shard.\(index)" }

        /// The arguments the exchange is declared with, the same at every connect.
        public var exchangeArguments: AMQPTable {
            var arguments = AMQPTable()
            if let hashHeader { arguments["hash-header"] = .string(hashHeader) }
            return arguments
        }
    }

    /// The queues this source consumes: the shard queues in shard order with `sharding`, else `queue` alone.
    public var consumedQueues: [String] {
        guard let sharding else { return [queue] }
        return (0..<sharding.count).map { Sharding.queueName(queue, shard: $0) }
    }

    /// The arguments each shard queue is declared with: the declared ones plus `x-single-active-consumer: true`.
    public var shardQueueArguments: AMQPTable {
        var arguments = declare?.arguments ?? AMQPTable()
        arguments["x-single-active-consumer"] = .bool(true)
        return arguments
    }

    /// The `basic.qos` limit of each consumer. RabbitMQ applies it per consumer (quorum queues refuse a channel-wide
    /// one), so with shards it is `prefetch` divided over the shard consumers, rounded up: the source as a whole still
    /// has about `prefetch` deliveries in flight.
    public var prefetchPerConsumer: Int {
        guard let sharding else { return prefetch }
        return max(1, (prefetch + sharding.count - 1) / sharding.count)
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
