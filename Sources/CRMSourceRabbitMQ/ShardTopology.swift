import AMQPClient
import CRMConfig

/// The ordered scale-out topology of a sharded source (`shards: N`): a durable `x-consistent-hash` exchange, N durable
/// shard queues with `x-single-active-consumer`, each bound with weight "1".
///
/// Every daemon of the group declares it at every connect with the same arguments, so whichever starts first creates
/// it and the others find it as it is. A queue or exchange that exists with other arguments makes the broker refuse
/// (406 PRECONDITION_FAILED), which the consumer treats like any connection error: logged and retried.
public enum ShardTopology {
    /// Declares the exchange, the shard queues and their bindings on `channel`. Does nothing for a source without
    /// shards. Blocking, like every `AMQPConnection` call.
    public static func declare(_ config: RabbitMQSourceConfig, on connection: AMQPConnection, channel: UInt16) throws(AMQPError) {
        guard let sharding = config.sharding else { return }
        try connection.declareExchange(sharding.exchange, type: "x-consistent-hash", channel: channel, arguments: sharding.exchangeArguments)
        let arguments = config.shardQueueArguments
        for queue in config.consumedQueues {
            try connection.declareQueue(queue, channel: channel, durable: true, arguments: arguments)
            // A consistent-hash binding key is the queue's weight, not a pattern: equal weights, equal shares.
            try connection.bindQueue(queue, exchange: sharding.exchange, routingKey: "1", channel: channel)
        }
    }
}
