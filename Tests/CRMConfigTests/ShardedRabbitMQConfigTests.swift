import AMQPClient
import CRMConfig
import Testing

/// `shards: N`: the consistent-hash topology a RabbitMQ source declares and consumes, and what the loader refuses.
@Suite("Sharded RabbitMQ sources")
struct ShardedRabbitMQConfigTests {
    let loader = ConfigLoader(environment: ["SHARDS": "8"])

    func rabbitmq(_ fragment: String) throws -> RabbitMQSourceConfig {
        let config = try loader.load(yaml: "sources:\n  - name: s\n    rabbitmq:\n      url: \"amqp://h\"\n      queue: crm.events\n      \(fragment)\n")
        guard case let .rabbitmq(rabbitmq)? = config.sources.first?.transport else {
            Issue.record("no RabbitMQ source")
            return RabbitMQSourceConfig(endpoint: AMQPEndpoint(host: "h", port: 5672), queue: "")
        }
        return rabbitmq
    }

    func problems(_ fragment: String) -> [String] {
        do {
            _ = try loader.load(yaml: "sources:\n  - name: s\n    rabbitmq:\n      url: \"amqp://h\"\n      queue: crm.events\n      \(fragment)\n")
            return []
        } catch {
            return error.problems.map(\.description)
        }
    }

    @Test func withoutShardsTheSourceConsumesItsQueueAsBefore() throws {
        let config = try rabbitmq("prefetch: 300")
        #expect(config.sharding == nil)
        #expect(config.consumedQueues == ["crm.events"])
        #expect(config.prefetchPerConsumer == 300)
    }

    @Test func shardsNameTheExchangeAndTheShardQueuesAfterTheQueue() throws {
        let config = try rabbitmq("shards: 4\n      prefetch: 1000\n      declare: { arguments: { x-queue-type: quorum, x-dead-letter-exchange: crm.dlx } }")
        #expect(config.sharding == .init(count: 4, exchange: "crm.events", hashHeader: nil))
        #expect(config.consumedQueues == ["crm.events.shard.0", "crm.events.shard.1", "crm.events.shard.2", "crm.events.shard.3"])
        #expect(config.shardQueueArguments == [
            "x-queue-type": .string("quorum"), "x-dead-letter-exchange": .string("crm.dlx"), "x-single-active-consumer": .bool(true),
        ])
        #expect(config.sharding?.exchangeArguments == AMQPTable())
        #expect(config.prefetchPerConsumer == 250)
    }

    @Test func theExchangeAndTheHashHeaderCanBeNamed() throws {
        let config = try rabbitmq("shards: ${SHARDS}\n      shard_exchange: crm.by-contact\n      shard_by_header: contact_id\n      prefetch: 10")
        #expect(config.sharding == .init(count: 8, exchange: "crm.by-contact", hashHeader: "contact_id"))
        #expect(config.sharding?.exchangeArguments == ["hash-header": .string("contact_id")])
        #expect(config.shardQueueArguments == ["x-single-active-consumer": .bool(true)])
        #expect(config.consumedQueues.last == "crm.events.shard.7")
        #expect(config.prefetchPerConsumer == 2, "10 over 8 shards, rounded up")
    }

    @Test func aDeclaredSingleActiveConsumerTrueIsAccepted() throws {
        let config = try rabbitmq("shards: 2\n      declare: { durable: true, arguments: { x-single-active-consumer: true } }")
        #expect(config.shardQueueArguments == ["x-single-active-consumer": .bool(true)])
    }

    @Test(arguments: [
        ("shards: 0", "sources[0].rabbitmq.shards: must be greater than 0, got 0"),
        ("shards: 1025", "sources[0].rabbitmq.shards: at most 1024, got 1025"),
        ("shards: four", "sources[0].rabbitmq.shards: expected a whole number, got \"four\""),
        ("shard_exchange: x", "sources[0].rabbitmq.shard_exchange: goes with shards"),
        ("shard_by_header: contact_id", "sources[0].rabbitmq.shard_by_header: goes with shards"),
        ("shards: 2\n      shard_exchange: \"\"", "sources[0].rabbitmq.shard_exchange: must not be empty (the default exchange cannot hash)"),
        ("shards: 2\n      shard_exchange: amq.topic",
         "sources[0].rabbitmq.shard_exchange: names the shard exchange \"amq.topic\"; names starting with amq. are reserved by the broker"),
        ("shards: 2\n      shard_by_header: \"\"", "sources[0].rabbitmq.shard_by_header: must not be empty"),
        ("shards: 2\n      declare: { durable: false }", "sources[0].rabbitmq.declare.durable: shard queues are durable; drop durable: false"),
        ("shards: 2\n      declare: { arguments: { x-single-active-consumer: false } }",
         "sources[0].rabbitmq.declare.arguments.x-single-active-consumer: shard queues need single-active-consumer (the daemon sets it to true)"),
        ("shards: 2\n      bindings: [ { exchange: app, routing_key: \"#\" } ]",
         "sources[0].rabbitmq.bindings: with shards, publishers publish to the shard exchange crm.events; bind it to other exchanges yourself if needed"),
        ("shards: 2\n      dead_letter: { queue: crm.events.shard.1 }", "sources[0].rabbitmq.dead_letter.queue: crm.events.shard.1 is a shard queue of this source"),
    ])
    func refusesBadShardSettings(fragment: String, expected: String) {
        #expect(problems(fragment) == [expected])
    }

    @Test func aTopologyNamedAfterAReservedQueueNameIsRefusedAtTheQueue() {
        let yaml = "sources:\n  - name: s\n    rabbitmq: { url: \"amqp://h\", queue: amq.events, shards: 2 }\n"
        do {
            _ = try loader.load(yaml: yaml)
            Issue.record("accepted a topology named amq.events")
        } catch {
            #expect(error.problems.map(\.description) == [
                "sources[0].rabbitmq.queue: names the shard exchange \"amq.events\"; names starting with amq. are reserved by the broker",
            ])
        }
    }

    @Test func altcraftRepliesCannotGoToAShardQueue() {
        let yaml = """
            sources:
              - name: imports
                format: { altcraft_import: { reply_queue: imports.shard.0 } }
                rabbitmq: { url: "amqp://h", queue: imports, shards: 2 }
            """
        do {
            _ = try loader.load(yaml: yaml)
            Issue.record("accepted replies to a shard queue")
        } catch {
            #expect(error.problems.map(\.description) == [
                "sources[0].format.altcraft_import.reply_queue: replies cannot go to the queue the requests come from (imports.shard.0)",
            ])
        }
    }
}
