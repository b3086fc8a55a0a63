import AMQPClient
import CRMConfig
import CRMCore
import CRMSourceRabbitMQ
import CRMSourceSupport
import CRMStoreSQLite
import Foundation
import Testing

/// `shards: N` against the real broker: the topology a source declares, per-contact order over the shards, a
/// standby daemon taking over, and dead letters finding their way back to their shard.
extension RabbitMQSourceTests {
    static func shardedTopology(_ name: String) -> String { "crm.test.\(name).\(UUID().uuidString.prefix(6))" }

    /// A source with `shards: 4` declares the consistent-hash exchange and four durable shard queues with
    /// single-active-consumer and the declared arguments, each bound with weight 1, and declares them the same way
    /// again at its next start. 200 contacts published to the exchange spread over the shards, and every event
    /// lands in the store once, in its contact's order.
    @Test func shardedSourceDeclaresItsTopologyAndKeepsEachContactsOrder() async throws {
        let node = try RabbitMQTestNode.shared()
        let topology = Self.shardedTopology("shards")
        let shards = (0..<4).map { RabbitMQSourceConfig.Sharding.queueName(topology, shard: $0) }
        let deadLetters = topology + ".dead"
        try node.freshQueue(deadLetters)
        let declare = RabbitMQSourceConfig.QueueDeclaration(arguments: [
            "x-dead-letter-exchange": .string(""), "x-dead-letter-routing-key": .string(deadLetters),
        ])
        let sharding = RabbitMQSourceConfig.Sharding(count: 4, exchange: topology)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-rmq-test-\(UUID().uuidString)")

        // First start: declares the topology and subscribes to every shard.
        let first = try RunningSource(queue: topology, node: node, folder: folder, sharding: sharding, declare: declare)
        #expect(try await first.wait(timeout: .seconds(30)) { try node.consumerCounts(of: shards) == [1, 1, 1, 1] })
        try await first.stop()
        #expect(try node.exchangeType(topology) == "x-consistent-hash")
        #expect(try node.bindings(from: topology).sorted { $0.queue < $1.queue }.map { "\($0.queue) \($0.key)" } == shards.map { "\($0) 1" })
        for shard in shards {
            let arguments = try node.queueArguments(shard)
            #expect(arguments.contains(#"{"x-single-active-consumer",true}"#), "\(shard): \(arguments)")
            #expect(arguments.contains(#"{"x-dead-letter-routing-key","\#(deadLetters)"}"#), "\(shard): \(arguments)")
            #expect(try node.isDurable(shard), "\(shard)")
        }

        // Published to the exchange while no daemon runs: the broker spreads the contacts over the shards.
        let workload = Workload(contacts: 200, perContact: 12)
        let publisher = try node.publisher()
        try publisher.publishAll(workload.shardedMessages(exchange: topology))
        publisher.close()
        let ready = try node.queueCounts(shards).map(\.ready)
        #expect(ready.reduce(0, +) == workload.total)
        #expect(ready.filter { $0 > 0 }.count > 1, "spread: \(ready)")
        #expect(ready.allSatisfy { $0 % workload.perContact == 0 }, "a contact's events all take one shard: \(ready)")

        // Second start on the same store: the same declarations again (any other arguments would be refused), then
        // every event applied once, in order.
        let second = try RunningSource(queue: topology, node: node, folder: folder, sharding: sharding, declare: declare, sharedStore: first.store)
        defer { second.remove() }
        #expect(try await second.wait { try await second.count("ledger") == workload.total && node.settled(shards) })
        try await second.stop()
        #expect(try await second.count("ledger") == workload.total)
        #expect(try await workload.problems(in: second.store) == [])
        #expect(try await second.count("purchases") == workload.contacts * workload.depositSteps.count)
        #expect(try node.counts(deadLetters).ready == 0)
    }

    /// `shard_by_header`: the exchange hashes a header instead of the routing key.
    @Test func shardedSourceCanHashAHeaderInsteadOfTheRoutingKey() async throws {
        let node = try RabbitMQTestNode.shared()
        let topology = Self.shardedTopology("shards-header")
        let shards = (0..<4).map { RabbitMQSourceConfig.Sharding.queueName(topology, shard: $0) }
        let sharding = RabbitMQSourceConfig.Sharding(count: 4, exchange: topology + ".by-contact", hashHeader: "contact_id")
        let first = try RunningSource(queue: topology, node: node, sharding: sharding)
        #expect(try await first.wait(timeout: .seconds(30)) { try node.consumerCounts(of: shards) == [1, 1, 1, 1] })
        try await first.stop()
        #expect(try node.exchangeType(topology + ".by-contact") == "x-consistent-hash")

        let workload = Workload(contacts: 100, perContact: 6)
        let publisher = try node.publisher()
        try publisher.publishAll(workload.shardedMessages(exchange: topology + ".by-contact", hashHeader: "contact_id"))
        publisher.close()
        let ready = try node.queueCounts(shards).map(\.ready)
        #expect(ready.reduce(0, +) == workload.total)
        #expect(ready.filter { $0 > 0 }.count > 1, "one routing key for all, spread by the header: \(ready)")

        let second = try RunningSource(queue: topology, node: node, folder: first.folder, sharding: sharding, sharedStore: first.store)
        defer { second.remove() }
        #expect(try await second.wait { try await second.count("ledger") == workload.total && node.settled(shards) })
        try await second.stop()
        #expect(try await workload.problems(in: second.store) == [])
    }

    /// Two daemons (two sources, each with its own connection, sharing one store and one source name) on one
    /// topology: the first to subscribe is active on every shard and the other stands by, getting nothing. When the
    /// active one's connection is closed with deliveries in flight, the broker makes the standby active and
    /// redelivers what was unacked: every event applied once in all, in each contact's order.
    @Test func aStandbyTakesOverTheShardsWhenTheActiveDaemonsConnectionDies() async throws {
        let node = try RabbitMQTestNode.shared()
        let topology = Self.shardedTopology("standby")
        let shards = (0..<4).map { RabbitMQSourceConfig.Sharding.queueName(topology, shard: $0) }
        let sharding = RabbitMQSourceConfig.Sharding(count: 4, exchange: topology)
        let seenByA = AppliedCounter(), seenByB = AppliedCounter()

        // A subscribes first, slowed down (4 lanes x 10 in flight per 100 ms) so that deliveries are in flight when
        // its connection dies.
        let daemonA = try RunningSource(queue: topology, node: node, prefetch: 40, sharding: sharding, name: "sharded") { store in
            CountingStore(store, counter: seenByA, delay: .milliseconds(100))
        }
        defer { daemonA.remove() }
        #expect(try await daemonA.wait(timeout: .seconds(30)) { try node.consumerCounts(of: shards) == [1, 1, 1, 1] })
        let channelsOfA = Set(try node.consumers(of: shards).map(\.channel))
        #expect(channelsOfA.count == 1, "one channel consumes every shard")
        let connectionOfA = try node.connection(ofChannel: try #require(channelsOfA.first))
        let daemonB = try RunningSource(queue: topology, node: node, prefetch: 40, folder: daemonA.folder, sharding: sharding, name: "sharded",
                                        sharedStore: daemonA.store) { store in
            CountingStore(store, counter: seenByB)
        }
        #expect(try await daemonB.wait(timeout: .seconds(30)) { try node.consumerCounts(of: shards) == [2, 2, 2, 2] })
        let consumersOfBoth = try node.consumers(of: shards)
        let channelsOfB = Set(consumersOfBoth.map(\.channel)).subtracting(channelsOfA)
        #expect(channelsOfB.count == 1)
        let active = consumersOfBoth.filter(\.active)
        #expect(active.count == 4 && active.allSatisfy { channelsOfA.contains($0.channel) }, "A, first to subscribe, is active on every shard")

        // The first half goes to A alone.
        let workload = Workload(contacts: 200, perContact: 30)
        let messages = workload.shardedMessages(exchange: topology)
        let half = messages.count / 2
        let publisher = try node.publisher()
        try publisher.publishAll(messages[..<half])
        #expect(try await daemonA.wait { try await daemonA.count("ledger") == half && node.settled(shards) })
        #expect(seenByA.value == half && seenByB.value == 0, "A applied \(seenByA.value), B \(seenByB.value)")

        // The second half: A's connection is closed while it has deliveries unacked.
        try publisher.publishAll(messages[half...])
        publisher.close()
        #expect(try await daemonA.wait { seenByA.value >= half + 200 })
        let unackedAtClose = try node.queueCounts(shards).map(\.unacked).reduce(0, +)
        try node.closeConnection(connectionOfA)
        #expect(unackedAtClose > 0, "deliveries in flight when the connection died")
        #expect(seenByA.value < workload.total, "A had not finished")

        // B takes over every shard (A comes back as a standby), and the rest lands once.
        #expect(try await daemonB.wait { try await daemonB.count("ledger") == workload.total && node.settled(shards) })
        let activeAfter = try node.consumers(of: shards).filter(\.active)
        #expect(activeAfter.count == 4 && activeAfter.allSatisfy { channelsOfB.contains($0.channel) }, "B is active on every shard now")
        try await daemonA.stop()
        try await daemonB.stop()
        #expect(seenByB.value > 0, "B applied the rest")
        #expect(seenByA.value + seenByB.value == workload.total, "applied once in all: A \(seenByA.value) + B \(seenByB.value)")
        #expect(try await daemonB.count("ledger") == workload.total)
        #expect(try await daemonB.count("purchases") == workload.contacts * workload.depositSteps.count)
        #expect(try await workload.problems(in: daemonB.store) == [])
    }

    /// Dead letters of a sharded source go to its dead_letter queue, where `dlq list` finds them; `dlq replay` sends
    /// each back through the shard exchange with the routing key it was published with: to the shard it came from.
    @Test func shardedDeadLettersAreListedAndReplayedToTheirShard() async throws {
        let node = try RabbitMQTestNode.shared()
        let topology = Self.shardedTopology("shards-dlq")
        let shards = (0..<4).map { RabbitMQSourceConfig.Sharding.queueName(topology, shard: $0) }
        let deadLetterQueue = topology + ".dead"
        try node.freshQueue(deadLetterQueue)
        let sharding = RabbitMQSourceConfig.Sharding(count: 4, exchange: topology)
        let first = try RunningSource(queue: topology, node: node, deadLetter: .queue(deadLetterQueue), sharding: sharding)
        #expect(try await first.wait(timeout: .seconds(30)) { try node.consumerCounts(of: shards) == [1, 1, 1, 1] })
        try await first.stop()

        let publisher = try node.publisher()
        try publisher.publishAll((0..<40).map { index in
            AMQPPublisher.Message(body: Array(#"{"type":"USER_DELETE","contactId":"gone-\#(index)"}"#.utf8), exchange: topology,
                                  routingKey: "gone-\(index)", properties: AMQPProperties(messageId: "dead-\(index)", deliveryMode: 2))
        })
        publisher.close()
        let published = try node.queueCounts(shards).map(\.ready)
        #expect(published.reduce(0, +) == 40 && published.filter { $0 > 0 }.count > 1, "\(published)")

        let second = try RunningSource(queue: topology, node: node, deadLetter: .queue(deadLetterQueue), folder: first.folder,
                                       sharding: sharding, sharedStore: first.store)
        defer { second.remove() }
        #expect(try await second.wait { try node.counts(deadLetterQueue).ready == 40 && node.settled(shards) })
        try await second.stop()

        let source = SourceConfig(name: "test", transport: .rabbitmq(second.config))
        let deadLetters = try RabbitMQDeadLetters(source: source, config: second.config, processor: Workload.processor)
        let listed = try deadLetters.list(limit: 100)
        #expect(listed.count == 40)
        #expect(Set(listed.compactMap(\.messageId)) == Set((0..<40).map { "dead-\($0)" }))
        #expect(listed.allSatisfy { $0.reason == #"type: unknown event type "USER_DELETE""# })

        let summary = try deadLetters.replay(limit: nil, eventType: nil)
        #expect(summary.replayed == 40 && summary.failed == 0 && summary.failure == nil)
        #expect(try node.counts(deadLetterQueue).ready == 0)
        #expect(try node.queueCounts(shards).map(\.ready) == published, "each back in the shard it was published to")
    }
}

/// How many events one source's store applied (not duplicates): tells which daemon did the work.
final class AppliedCounter: @unchecked Sendable {
    // `count` is guarded by `lock`.
    private let lock = NSLock()
    private var count = 0

    var value: Int { lock.withLock { count } }

    func add(_ outcomes: [EventOutcome]) {
        let applied = outcomes.filter { if case .applied = $0 { true } else { false } }.count
        lock.withLock { count += applied }
    }
}

/// The shared store as one source sees it: counts what it applied, and can take longer per batch.
struct CountingStore: StoreDecorator {
    let inner: SQLiteCRMStore
    var base: any CRMStore { inner }
    let counter: AppliedCounter
    let delay: Duration

    init(_ inner: SQLiteCRMStore, counter: AppliedCounter, delay: Duration = .zero) {
        self.inner = inner
        self.counter = counter
        self.delay = delay
    }

    func apply(_ events: [PlannedEvent], now: Timestamp, timing: CommitTiming) async throws -> [EventOutcome] {
        if delay > .zero { try await Task.sleep(for: delay) }
        let outcomes = try await inner.apply(events, now: now, timing: timing)
        counter.add(outcomes)
        return outcomes
    }

    /// Batches submitted in order are counted when they settle; a slowed store takes each batch through `apply`.
    func makeOrderedSubmitter() -> (any OrderedSubmitter)? {
        delay > .zero ? nil : inner.makeOrderedSubmitter().map { DecoratedSubmitter(base: $0, decorator: self) }
    }

    func settled(_ events: [PlannedEvent], _ result: Result<[EventOutcome], any Error>) async {
        if case let .success(outcomes) = result { counter.add(outcomes) }
    }
}

/// What the broker says about a sharded topology, through rabbitmqctl.
extension RabbitMQTestNode {
    /// Tab-separated rows of a rabbitmqctl listing, without headers.
    func rows(_ arguments: String...) throws -> [[String]] {
        let output = try Self.run([Self.script, "ctl", directory, "-q", "--no-table-headers"] + arguments)
        guard output.status == 0 else { throw NodeError("rabbitmqctl \(arguments) failed: \(output.output)") }
        return output.output.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    /// Ready and unacked messages of each queue, in the order given, from one listing.
    func queueCounts(_ queues: [String]) throws -> [(ready: Int, unacked: Int)] {
        let counts = Dictionary(try rows("list_queues", "name", "messages_ready", "messages_unacknowledged").compactMap { row in
            row.count == 3 ? (row[0], (Int(row[1]) ?? -1, Int(row[2]) ?? -1)) : nil
        }, uniquingKeysWith: { first, _ in first })
        return try queues.map { queue in
            guard let count = counts[queue] else { throw NodeError("no queue \(queue)") }
            return count
        }
    }

    /// Whether these queues hold no message, ready or unacked.
    func settled(_ queues: [String]) throws -> Bool {
        try queueCounts(queues).allSatisfy { $0 == (0, 0) }
    }

    /// Consumers of each queue, in the order given (a missing queue counts -1).
    func consumerCounts(of queues: [String]) throws -> [Int] {
        let counts = Dictionary(try rows("list_queues", "name", "consumers").compactMap { row in
            row.count == 2 ? (row[0], Int(row[1]) ?? -1) : nil
        }, uniquingKeysWith: { first, _ in first })
        return queues.map { counts[$0] ?? -1 }
    }

    /// Every consumer of these queues: its channel (an Erlang pid) and whether single-active-consumer made it active.
    func consumers(of queues: [String]) throws -> [(queue: String, channel: String, active: Bool)] {
        try rows("list_consumers", "queue_name", "channel_pid", "active").compactMap { row in
            guard row.count == 3, queues.contains(row[0]) else { return nil }
            return (row[0], row[1], row[2] == "true")
        }
    }

    func connection(ofChannel channel: String) throws -> String {
        guard let row = try rows("list_channels", "pid", "connection").first(where: { $0.first == channel }), row.count == 2 else {
            throw NodeError("no channel \(channel)")
        }
        return row[1]
    }

    func closeConnection(_ pid: String) throws {
        _ = try ctl("close_connection", pid, "test: the active daemon dies")
    }

    func queueArguments(_ queue: String) throws -> String {
        guard let row = try rows("list_queues", "name", "arguments").first(where: { $0.first == queue }), row.count == 2 else {
            throw NodeError("no queue \(queue)")
        }
        return row[1]
    }

    func isDurable(_ queue: String) throws -> Bool {
        try rows("list_queues", "name", "durable").first(where: { $0.first == queue })?.last == "true"
    }

    func exchangeType(_ exchange: String) throws -> String? {
        try rows("list_exchanges", "name", "type", "durable").first(where: { $0.first == exchange && $0.last == "true" })?[1]
    }

    /// Bindings from an exchange: the queue and the binding key.
    func bindings(from exchange: String) throws -> [(queue: String, key: String)] {
        try rows("list_bindings", "source_name", "destination_name", "routing_key").compactMap { row in
            row.count == 3 && row[0] == exchange ? (row[1], row[2]) : nil
        }
    }
}
