import AMQPClient
import CRMConfig
import CRMCore
import CRMStoreSQLite
import CRMSourceRabbitMQ
import CRMTestSupport
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// The RabbitMQ source against a real broker (scripts/rabbitmq-node.sh).
@Suite("RabbitMQ source", .serialized)
struct RabbitMQSourceTests {
    static func uniqueQueue(_ name: String) -> String { "crm.test.\(name).\(UUID().uuidString.prefix(6))" }

    @Test func appliesTenThousandEventsInOrderAndAcksThemAll() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("all")
        try node.freshQueue(queue)
        let workload = Workload(contacts: 500, perContact: 20)
        let publisher = try node.publisher()
        try publisher.publishAll(workload.messages(queue: queue, withIds: true))
        publisher.close()
        #expect(try node.counts(queue).ready == workload.total)

        let source = try RunningSource(queue: queue, node: node, lanes: 4)
        defer { source.remove() }
        let done = try await source.wait { try await source.count("ledger") >= workload.total }
        #expect(done)
        try await source.stop()
        #expect(try await source.count("ledger") == workload.total)
        let counts = try node.counts(queue)
        #expect(counts.ready == 0 && counts.unacked == 0)
        #expect(try await workload.problems(in: source.store) == [])
        #expect(try await source.count("purchases") == workload.contacts * workload.depositSteps.count)
    }

    static func poison(_ index: Int) -> (body: String, reason: String) {
        switch index % 3 {
        case 0: return (#"{"type":"USER_UPDATE","contactId":"#, "invalid JSON")
        case 1: return (#"{"type":"USER_DELETE","contactId":"p\#(index)"}"#, #"type: unknown event type "USER_DELETE""#)
        default: return (#"{"type":"DEPOSIT_APPROVED","contactId":"p","timestamp":"2024-01-01T00:00:00Z","amount":"abc"}"#,
                         #"DEPOSIT_APPROVED.amount: expected a number, got "abc""#)
        }
    }

    /// 9,900 valid events with 100 poison messages mixed in.
    static func mixedWithPoison(_ workload: Workload, queue: String) -> [AMQPPublisher.Message] {
        var messages: [AMQPPublisher.Message] = []
        for (index, message) in workload.messages(queue: queue, withIds: true).enumerated() {
            messages.append(message)
            if index % 99 == 98 {
                let poison = poison(messages.count)
                messages.append(.init(body: Array(poison.body.utf8), routingKey: queue,
                                      properties: AMQPProperties(messageId: "poison-\(index)", deliveryMode: 2)))
            }
        }
        return messages
    }

    @Test func sameMessageIdsTwiceApplyOnce() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("dup-ids")
        try node.freshQueue(queue)
        let workload = Workload(contacts: 500, perContact: 20)
        let publisher = try node.publisher()
        try publisher.publishAll(workload.messages(queue: queue, withIds: true))
        try publisher.publishAll(workload.messages(queue: queue, withIds: true))
        publisher.close()
        let logs = CapturedLogs()
        let source = try RunningSource(queue: queue, node: node, logger: logs.logger)
        defer { source.remove() }
        #expect(try await source.wait { try node.counts(queue) == (0, 0) })
        try await source.stop()
        #expect(try await source.count("ledger") == workload.total)
        #expect(try await workload.problems(in: source.store) == [])
        #expect(try await source.count("purchases") == workload.contacts * workload.depositSteps.count)
    }

    @Test func messagesWithoutIdsPublishedTwiceAllApply() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("dup-noid")
        try node.freshQueue(queue)
        // 500 contacts x 20 events, published twice without message ids: 20,000 new messages.
        let workload = Workload(contacts: 500, perContact: 20)
        let publisher = try node.publisher()
        try publisher.publishAll(workload.messages(queue: queue, withIds: false))
        try publisher.publishAll(workload.messages(queue: queue, withIds: false))
        // One contact toggles its consent on, off, on: byte-identical "on" messages, all three real.
        let toggles = [true, false, true].map { on in
            AMQPPublisher.Message(body: Array(#"{"type":"USER_CONSENT_UPDATE","contactId":"contact-0","channel":"SMS","consented":\#(on)}"#.utf8),
                                  routingKey: queue)
        }
        try publisher.publishAll(toggles)
        publisher.close()
        let source = try RunningSource(queue: queue, node: node, lanes: 4)
        defer { source.remove() }
        #expect(try await source.wait { try node.counts(queue) == (0, 0) })
        try await source.stop()
        // Every deposit applied twice: two rows per deposit (no transaction id, no message id: new messages).
        #expect(try await source.count("purchases") == 2 * workload.contacts * workload.depositSteps.count)
        #expect(try await workload.problems(in: source.store, depositCopies: 2) == [])
        guard case let .found(contact) = try await source.store.contact("contact-0", list: 1) else {
            Issue.record("contact-0 missing")
            return
        }
        #expect(contact.consents[.sms] == true)
    }

    /// A configured converter reads each message's type from an AMQP header (`type_from: header:event-name`) or
    /// the AMQP `type` property (`attribute:type`); messages it cannot convert are dead-lettered with the path.
    @Test func convertersReadTheMessageTypeFromAHeaderOrTheTypeProperty() async throws {
        let node = try RabbitMQTestNode.shared()
        for typeFrom in [CustomConverter.TypeSource.header("event-name"), .attribute("type")] {
            let queue = Self.uniqueQueue("converter")
            let deadLetters = queue + ".dead"
            try node.freshQueue(queue)
            try node.freshQueue(deadLetters)
            let converter = CustomConverter(typeFrom: typeFrom, rules: [
                "signup": .init(type: .userRegistration, fields: [.init(name: "contactId", path: try JSONPath("$.user.id"))],
                                properties: [.init(name: "firstName", path: try JSONPath("$.user.first"))]),
                "payment": .init(type: .depositApproved, fields: [
                    .init(name: "contactId", path: try JSONPath("$.uid")), .init(name: "amount", path: try JSONPath("$.payment.amount")),
                    .init(name: "timestamp", path: try JSONPath("$.at")),
                ]),
            ])
            func message(_ type: String, _ body: String) -> AMQPPublisher.Message {
                var properties = AMQPProperties(deliveryMode: 2)
                if case .header = typeFrom { properties.headers = ["event-name": .string(type)] } else { properties.type = type }
                return AMQPPublisher.Message(body: Array(body.utf8), routingKey: queue, properties: properties)
            }
            let publisher = try node.publisher()
            try publisher.publishAll([
                message("signup", #"{"user":{"id":"k-1","first":"Kim"}}"#),
                message("payment", #"{"uid":"k-1","at":"2026-01-02T03:04:05Z","payment":{"amount":19.90}}"#),
                message("payment", #"{"uid":"k-1","at":"2026-01-02T03:04:05Z","payment":{}}"#),
            ])
            publisher.close()
            let mapping = Workload.processor.planner.mapping
            let source = try RunningSource(queue: queue, node: node, deadLetter: .queue(deadLetters),
                                           processor: EventProcessor(mapping: mapping, format: .custom(converter)))
            defer { source.remove() }
            #expect(try await source.wait { try node.counts(queue) == (0, 0) && node.counts(deadLetters).ready == 1 })
            try await source.stop()
            guard case let .found(kim) = try await source.store.contact("k-1", list: 1) else {
                Issue.record("k-1 missing (\(typeFrom))")
                continue
            }
            #expect(kim.attribute("firstName") == .string("Kim"))
            #expect(kim.purchases.map(\.amount.text) == ["19.90"])
            let dead = try node.drain(deadLetters, expected: 1)
            #expect(dead.first?.properties.headers["x-crm-ingest-reason"]?.stringValue == "$.payment.amount: required by the payment rule's amount")
        }
    }

    /// Proca's topology: the queue dead-letters into a retry queue whose TTL sends messages back. With
    /// `on_refused: retry` a refused message goes round that loop, and once delivered more than `max_redeliveries`
    /// times it is parked in the dead_letter queue with its reason, leaving the loop; good messages are applied.
    @Test func refusedMessagesRetryThroughTheQueuesOwnLoopThenPark() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("proca")
        let retry = queue + ".retry", parked = queue + ".parked"
        try node.freshQueue(queue, arguments: ["x-dead-letter-exchange": .string(""), "x-dead-letter-routing-key": .string(retry)])
        try node.freshQueue(retry, arguments: ["x-message-ttl": .int(200), "x-dead-letter-exchange": .string(""), "x-dead-letter-routing-key": .string(queue)])
        try node.freshQueue(parked)
        let publisher = try node.publisher()
        try publisher.publishAll([
            AMQPPublisher.Message(body: Array(#"{"type":"USER_REGISTRATION","contactId":"r-1"}"#.utf8), routingKey: queue),
            AMQPPublisher.Message(body: Array(#"{"type":"USER_DELETE","contactId":"r-2"}"#.utf8), routingKey: queue),
        ])
        publisher.close()
        let logs = CapturedLogs()
        let source = try RunningSource(queue: queue, node: node, deadLetter: .queue(parked), maxRedeliveries: 2, logger: logs.logger, onRefused: .retry)
        defer { source.remove() }
        #expect(try await source.wait(timeout: .seconds(60)) { try node.counts(parked).ready == 1 && node.counts(queue) == (0, 0) && node.counts(retry).ready == 0 })
        try await source.stop()
        #expect(try await source.store.contact("r-1", list: 1) != .notFound)
        // Processed (and refused) on each pass until past the limit, then parked unprocessed.
        #expect(logs.count("dead-lettering") >= 2)
        let dead = try node.drain(parked, expected: 1)
        #expect(dead.first?.properties.headers["x-crm-ingest-reason"]?.stringValue?.hasPrefix("delivered ") == true)
        #expect(dead.first.map { String(decoding: $0.body, as: UTF8.self) } == #"{"type":"USER_DELETE","contactId":"r-2"}"#)
    }

    @Test func poisonMessagesGoToTheDeadLetterQueueWithTheirReason() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("poison")
        let deadLetters = queue + ".dead"
        try node.freshQueue(queue)
        try node.freshQueue(deadLetters)
        let workload = Workload(contacts: 495, perContact: 20)
        let messages = Self.mixedWithPoison(workload, queue: queue)
        #expect(messages.count == 10_000)
        let publisher = try node.publisher()
        try publisher.publishAll(messages)
        publisher.close()
        let logs = CapturedLogs()
        let source = try RunningSource(queue: queue, node: node, deadLetter: .queue(deadLetters), logger: logs.logger)
        defer { source.remove() }
        #expect(try await source.wait { try node.counts(queue) == (0, 0) })
        try await source.stop()
        #expect(try await source.count("ledger") == workload.total)
        #expect(try await workload.problems(in: source.store) == [])
        #expect(try node.counts(deadLetters).ready == 100)
        let dead = try node.drain(deadLetters, expected: 100)
        #expect(dead.count == 100)
        for delivery in dead {
            let reason = delivery.properties.headers["x-crm-ingest-reason"]?.stringValue ?? ""
            let expected = Self.poison(Int(delivery.properties.messageId?.split(separator: "-").last ?? "") ?? 0)
            #expect(!reason.isEmpty)
            #expect(delivery.properties.headers["x-crm-ingest-source"]?.stringValue == "test")
            #expect(delivery.properties.messageId?.hasPrefix("poison-") == true)
            #expect(reason.contains("invalid JSON") || reason.contains("USER_DELETE") || reason.contains("expected a number"))
            _ = expected
        }
        #expect(logs.count("dead-lettering") == 100)
    }

    @Test func withoutATargetPoisonIsRejectedToTheQueuesDeadLetterExchange() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("reject")
        let deadLetters = queue + ".dlx"
        try node.freshQueue(deadLetters)
        try node.freshQueue(queue, arguments: ["x-dead-letter-exchange": .string(""), "x-dead-letter-routing-key": .string(deadLetters)])
        let workload = Workload(contacts: 99, perContact: 10)
        let messages = Self.mixedWithPoison(workload, queue: queue)
        let publisher = try node.publisher()
        try publisher.publishAll(messages)
        publisher.close()
        let source = try RunningSource(queue: queue, node: node)
        defer { source.remove() }
        #expect(try await source.wait { try node.counts(queue) == (0, 0) })
        try await source.stop()
        #expect(try await source.count("ledger") == workload.total)
        let dead = try node.drain(deadLetters, expected: 10)
        #expect(dead.count == 10)
        #expect(dead.allSatisfy { $0.properties.headers["x-death"] != nil })
    }

    @Test func aMessageRedeliveredTooOftenIsDeadLetteredUnprocessed() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("redelivered")
        let deadLetters = queue + ".dead"
        try node.freshQueue(queue, arguments: ["x-queue-type": .string("quorum")])
        try node.freshQueue(deadLetters)
        let publisher = try node.publisher()
        try publisher.publishAll([.init(body: Array(#"{"type":"USER_REGISTRATION","contactId":"looping"}"#.utf8), routingKey: queue,
                                        properties: AMQPProperties(messageId: "loop-1", deliveryMode: 2))])
        publisher.close()
        // Another consumer takes the message and gives it back, again and again, as a crashing daemon would.
        let connection = try AMQPConnection(endpoint: node.endpoint)
        try connection.openChannel(1)
        try connection.setPrefetch(1, channel: 1)
        _ = try connection.consume(queue: queue, channel: 1)
        var returned = 0
        while returned < 4 {
            if case let .delivery(delivery)? = try connection.nextEvent(timeout: .seconds(5)) {
                try connection.reject(delivery.deliveryTag, requeue: true, channel: 1)
                returned += 1
            }
        }
        connection.close()
        let source = try RunningSource(queue: queue, node: node, deadLetter: .queue(deadLetters), maxRedeliveries: 2)
        defer { source.remove() }
        #expect(try await source.wait { try node.counts(deadLetters).ready == 1 })
        try await source.stop()
        #expect(try await source.count("contacts") == 0)
        let dead = try node.drain(deadLetters, expected: 1)
        #expect(dead.first?.properties.headers["x-crm-ingest-reason"]?.stringValue?.contains("max_redeliveries is 2") == true)
    }

    /// A classic queue passes `x-delivery-count` and `x-death` through as the publisher set them: counts at the
    /// 64-bit limit (alone or summed) once trapped when one was added to them, and the unacked message crashed the
    /// daemon again after every restart. They now read as the most a count says; the rest of the queue is applied.
    @Test func publisherSetDeliveryCountsAtTheLimitAreDeadLetteredNotACrash() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("hostile-counts")
        let deadLetters = queue + ".dead"
        try node.freshQueue(queue)
        try node.freshQueue(deadLetters)
        func registration(_ contact: String) -> [UInt8] { Array(#"{"type":"USER_REGISTRATION","contactId":"\#(contact)"}"#.utf8) }
        let death: AMQPFieldValue = .table(["count": .int(.max), "reason": .string("rejected"), "queue": .string(queue)])
        let messages: [AMQPPublisher.Message] = [
            .init(body: registration("huge-count"), routingKey: queue,
                  properties: AMQPProperties(messageId: "hostile-1", deliveryMode: 2, headers: ["x-delivery-count": .int(.max)])),
            .init(body: registration("huge-deaths"), routingKey: queue,
                  properties: AMQPProperties(messageId: "hostile-2", deliveryMode: 2, headers: ["x-death": .array([death, death])])),
            // Refused for its body: the dead letter's delivery count adds this delivery to the header's, read as 0.
            .init(body: Array("not json".utf8), routingKey: queue,
                  properties: AMQPProperties(messageId: "hostile-3", deliveryMode: 2, headers: ["x-delivery-count": .int(-1)])),
            .init(body: registration("negative-count"), routingKey: queue,
                  properties: AMQPProperties(messageId: "hostile-4", deliveryMode: 2, headers: ["x-delivery-count": .int(.min)])),
            .init(body: registration("plain"), routingKey: queue, properties: AMQPProperties(messageId: "hostile-5", deliveryMode: 2)),
        ]
        let publisher = try node.publisher()
        try publisher.publishAll(messages)
        publisher.close()
        let source = try RunningSource(queue: queue, node: node, deadLetter: .queue(deadLetters), maxRedeliveries: 2)
        defer { source.remove() }
        #expect(try await source.wait { try node.counts(deadLetters).ready == 3 && node.counts(queue) == (0, 0) })
        try await source.stop()
        #expect(try await source.count("contacts") == 2)
        let dead = try node.drain(deadLetters, expected: 3).sorted { ($0.properties.messageId ?? "") < ($1.properties.messageId ?? "") }
        #expect(dead.map(\.properties.messageId) == ["hostile-1", "hostile-2", "hostile-3"])
        let most = Int64(AMQPProperties.maxDeliveryCount) + 1
        #expect(dead.map { $0.properties.headers["x-crm-ingest-delivery-count"]?.intValue } == [most, most, 1])
        #expect(dead[0].properties.headers["x-crm-ingest-reason"]?.stringValue == "delivered \(most) times; max_redeliveries is 2")
        #expect(dead[2].properties.headers["x-crm-ingest-reason"]?.stringValue?.contains("invalid JSON") == true)
    }

    /// The queue deleted and declared again under a running source: the broker cancels the consumer and, since the
    /// client asks for it (`consumer_cancel_notify`), says so; the source reconnects and consumes the new queue.
    /// Without the capability the consumer vanished silently and the second half stayed in the queue.
    @Test func aQueueDeletedAndDeclaredAgainIsConsumedAgain() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("redeclared")
        try node.freshQueue(queue)
        let workload = Workload(contacts: 50, perContact: 4)
        let messages = workload.messages(queue: queue, withIds: true)
        let half = messages.count / 2
        let publisher = try node.publisher()
        try publisher.publishAll(Array(messages[..<half]))
        let logs = CapturedLogs()
        let source = try RunningSource(queue: queue, node: node, logger: logs.logger)
        defer { source.remove() }
        #expect(try await source.wait { try await source.count("ledger") == half })
        try node.freshQueue(queue)
        try publisher.publishAll(Array(messages[half...]))
        publisher.close()
        #expect(try await source.wait { try node.counts(queue) == (0, 0) })
        try await source.stop()
        #expect(try await source.count("ledger") == workload.total)
        #expect(logs.contains("the broker cancelled the consumer"))
    }

    /// Dead letters minutes apart: the dead-letter connection, idle for a heartbeat interval, is closed by the source
    /// and opened again for the next one. It used to stay open unserviced until the broker dropped it for missed
    /// heartbeats, and the next dead letter failed once on it ("cannot publish dead letters, will retry").
    @Test func deadLettersFarApartNeedNoRetry() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("far-apart")
        let deadLetters = queue + ".dead"
        try node.freshQueue(queue)
        try node.freshQueue(deadLetters)
        func poison(_ id: String) -> AMQPPublisher.Message {
            .init(body: Array("not json".utf8), routingKey: queue, properties: AMQPProperties(messageId: id, deliveryMode: 2))
        }
        let logs = CapturedLogs()
        let source = try RunningSource(queue: queue, node: node, heartbeat: 2, deadLetter: .queue(deadLetters), logger: logs.logger)
        defer { source.remove() }
        let publisher = try node.publisher()
        try publisher.publishAll([poison("far-1")])
        #expect(try await source.wait { try node.counts(deadLetters).ready == 1 })
        // Three heartbeat intervals: the broker drops a connection that missed two.
        try await Task.sleep(for: .seconds(6))
        try publisher.publishAll([poison("far-2")])
        publisher.close()
        #expect(try await source.wait { try node.counts(deadLetters).ready == 2 && node.counts(queue) == (0, 0) })
        try await source.stop()
        #expect(logs.count("cannot publish dead letters") == 0)
        #expect(try node.drain(deadLetters, expected: 2).compactMap(\.properties.messageId).sorted() == ["far-1", "far-2"])
    }

    /// A store that refuses whole batches in a way retrying cannot fix (here a schema error): the messages go back
    /// to the queue, but paced (100 ms growing to 5 s) instead of as fast as the broker redelivers them; once the
    /// store heals, every message is applied once.
    @Test func aStoreThatKeepsRefusingIsNotAHotLoop() async throws {
        final class RefusingStore: StoreInFront {
            let base: SQLiteCRMStore
            let refusing = Mutex(true)
            let calls = Atomic<Int>(0)
            init(base: SQLiteCRMStore) { self.base = base }
            func apply(_ events: [PlannedEvent], now: Timestamp, timing: CommitTiming) async throws -> [EventOutcome] {
                calls.add(1, ordering: .relaxed)
                if refusing.withLock({ $0 }) { throw StoreError(.schema, "no such table: contacts") }
                return try await base.apply(events, now: now, timing: timing)
            }
        }
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("refusing")
        try node.freshQueue(queue)
        let workload = Workload(contacts: 8, perContact: 5)
        let publisher = try node.publisher()
        try publisher.publishAll(workload.messages(queue: queue, withIds: true))
        publisher.close()
        let made = Captured<RefusingStore>()
        let source = try RunningSource(queue: queue, node: node, storeInFront: { store in
            let front = RefusingStore(base: store)
            made.value.withLock { $0 = front }
            return front
        })
        defer { source.remove() }
        let store = try #require(made.value.withLock { $0 })
        try await Task.sleep(for: .seconds(3))
        // Four lanes, each pausing 0.1, 0.2, 0.4, 0.8, 1.6 s…: a few dozen calls at most (thousands unpaced).
        let callsWhileRefusing = store.calls.load(ordering: .relaxed)
        #expect(callsWhileRefusing >= 4 && callsWhileRefusing <= 60, "calls in 3 s: \(callsWhileRefusing)")
        store.refusing.withLock { $0 = false }
        #expect(try await source.wait { try node.counts(queue) == (0, 0) })
        try await source.stop()
        #expect(try await source.count("ledger") == workload.total)
        let problems = try await workload.problems(in: source.store)
        #expect(problems.isEmpty, "\(problems)")
    }

    /// A store that refuses a batch whole, non-transiently, while later events of the same contacts are already in
    /// the daemon's hands, then recovers at once: the failed batch goes back to the queue with every later delivery
    /// (the channel is closed), so per-contact order holds. Giving back the failed batch alone let the later events
    /// commit first: registrations after the deposits that needed them, the last update overwritten by an older one.
    /// Both pipelines: lanes (any store) and submission order (a store with an ordered submitter, as SQLite).
    @Test(arguments: [false, true]) func aBatchGivenBackKeepsPerContactOrder(ordered: Bool) async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue(ordered ? "given-back-ordered" : "given-back-lanes")
        let deadLetters = queue + ".dead"
        try node.freshQueue(queue)
        try node.freshQueue(deadLetters)
        // Steps 0-3 of each contact first (registration, deposit, update, consent), steps 4-7 once the first batch
        // is stuck in the store, with a poison message among them: dead-lettered while the first batch is given
        // back, it must not come round again with the channel's other unacked messages.
        let workload = Workload(contacts: 10, perContact: 8)
        var messages = workload.messages(queue: queue, withIds: true)
        messages.insert(.init(body: Array("not json".utf8), routingKey: queue, properties: AMQPProperties(messageId: "poison", deliveryMode: 2)), at: 45)
        let publisher = try node.publisher()
        try publisher.publishAll(Array(messages[..<40]))
        let made = Captured<RecoveringStore>()
        let logs = CapturedLogs()
        let source = try RunningSource(queue: queue, node: node, lanes: 1, deadLetter: .queue(deadLetters), logger: logs.logger, storeInFront: { store in
            let front = RecoveringStore(base: store, ordered: ordered)
            made.value.withLock { $0 = front }
            return front
        })
        defer { source.remove() }
        let store = try #require(made.value.withLock { $0 })
        #expect(try await source.wait { store.applyStarted.load(ordering: .acquiring) })
        try publisher.publishAll(Array(messages[40...]))
        publisher.close()
        // The consumer reads the later half meanwhile: queued for the lane, or held by the paused submissions.
        #expect(try await source.wait { try node.counts(queue).ready == 0 })
        try await Task.sleep(for: .milliseconds(500))
        store.release.store(true, ordering: .releasing)
        #expect(try await source.wait { try await source.count("ledger") == workload.total && node.counts(queue) == (0, 0) })
        try await source.stop()
        let problems = try await workload.problems(in: source.store)
        #expect(problems.isEmpty, "\(problems)")
        #expect(logs.contains("gave a failed batch back to the queue with every later delivery"))
        #expect(try node.counts(deadLetters) == (1, 0))
    }

    /// The same refusal while the daemon is stopping: the failed batch goes back with every later delivery (the
    /// channel is closed), not by itself, so later events of its contacts are not committed first. A second run
    /// then drains the queue, and every contact ends in its last state.
    @Test(arguments: [false, true]) func aBatchFailingWhileStoppingKeepsPerContactOrder(ordered: Bool) async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue(ordered ? "stop-given-back-ordered" : "stop-given-back-lanes")
        try node.freshQueue(queue)
        let workload = Workload(contacts: 10, perContact: 8)
        let messages = workload.messages(queue: queue, withIds: true)
        let publisher = try node.publisher()
        try publisher.publishAll(Array(messages[..<40]))
        let made = Captured<RecoveringStore>()
        let logs = CapturedLogs()
        let first = try RunningSource(queue: queue, node: node, lanes: 1, logger: logs.logger, storeInFront: { store in
            let front = RecoveringStore(base: store, ordered: ordered)
            made.value.withLock { $0 = front }
            return front
        })
        let store = try #require(made.value.withLock { $0 })
        #expect(try await first.wait { store.applyStarted.load(ordering: .acquiring) })
        try publisher.publishAll(Array(messages[40...]))
        publisher.close()
        #expect(try await first.wait { try node.counts(queue).ready == 0 })
        // SIGTERM while the first batch is stuck in the store; it fails once the stop is under way.
        let stopping = Task { try await first.stop() }
        try await Task.sleep(for: .milliseconds(500))
        store.release.store(true, ordering: .releasing)
        try await stopping.value
        #expect(logs.contains("gave a failed batch back to the queue with every later delivery"))
        let second = try RunningSource(queue: queue, node: node, lanes: 1, folder: first.folder, sharedStore: first.store)
        defer { second.remove() }
        #expect(try await second.wait { try await second.count("ledger") == workload.total && node.counts(queue) == (0, 0) })
        try await second.stop()
        let problems = try await workload.problems(in: second.store)
        #expect(problems.isEmpty, "\(problems)")
    }

    @Test func survivesTheBrokerGoingAwayMidStream() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("outage")
        try node.freshQueue(queue)
        let workload = Workload(contacts: 500, perContact: 20)
        let publisher = try node.publisher()
        try publisher.publishAll(workload.messages(queue: queue, withIds: true))
        publisher.close()
        let logs = CapturedLogs()
        let source = try RunningSource(queue: queue, node: node, logger: logs.logger)
        defer { source.remove() }
        #expect(try await source.wait { try await source.count("ledger") >= 2_000 })
        try node.pause()
        try await Task.sleep(for: .seconds(3))
        try node.resume()
        #expect(try await source.wait { try await source.count("ledger") >= workload.total })
        #expect(try await source.wait { try node.counts(queue) == (0, 0) })
        try await source.stop()
        #expect(logs.contains("RabbitMQ connection lost"))
        #expect(try await source.count("ledger") == workload.total)
        #expect(try await workload.problems(in: source.store) == [])
        #expect(try await source.count("purchases") == workload.contacts * workload.depositSteps.count)
    }

    @Test func noticesAFrozenBrokerWithinTwoHeartbeats() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("heartbeat")
        try node.freshQueue(queue)
        let logs = CapturedLogs()
        let source = try RunningSource(queue: queue, node: node, heartbeat: 2, logger: logs.logger)
        defer { source.remove() }
        #expect(try await source.wait { logs.contains("consuming") })
        // Idle for three heartbeat intervals: heartbeats keep the connection alive.
        try await Task.sleep(for: .seconds(6))
        #expect(!logs.contains("RabbitMQ connection lost"))
        // The broker stops answering (frozen, connections open): only heartbeats can tell.
        let pid = try node.serverPid()
        kill(pid, SIGSTOP)
        // Two heartbeats of 2 s, and librabbitmq's check that follows: a source that relied on TCP alone would not
        // notice at all while the connections stay open.
        let noticed = try await source.wait(timeout: .seconds(8)) { logs.contains("RabbitMQ connection lost") }
        kill(pid, SIGCONT)
        #expect(noticed, "not noticed within 8 s of the freeze")
        #expect(try await source.wait(timeout: .seconds(30)) { logs.count("consuming") >= 2 })
        try await source.stop()
    }

    @Test func passwordsNeverReachTheLog() async throws {
        let logs = CapturedLogs()
        let endpoint = try AMQPEndpoint.parse("amqp://crm:s3cret-pw@127.0.0.1:1/").get()
        let processor = Workload.processor
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-pw-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        let source = RabbitMQSource(name: "pw", config: RabbitMQSourceConfig(endpoint: endpoint, queue: "q"),
                                    processor: { processor }, store: store, logger: logs.logger)
        let group = ServiceGroup(services: [source], logger: logs.logger)
        let task = Task { try await group.run() }
        let deadline = ContinuousClock.now + .seconds(10)
        while !logs.contains("reconnecting"), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        await group.triggerGracefulShutdown()
        try await task.value
        #expect(logs.contains("amqp://crm:***@127.0.0.1:1/"))
        #expect(!logs.contains("s3cret-pw"))
    }

    @Test func publisherConfirmsReportUnroutableMessages() throws {
        let node = try RabbitMQTestNode.shared()
        let publisher = try node.publisher()
        defer { publisher.close() }
        #expect(throws: AMQPError.self) {
            try publisher.publishAll([.init(body: Array("x".utf8), routingKey: "crm.test.no-such-queue-\(UUID().uuidString)")])
        }
        let queue = Self.uniqueQueue("confirms")
        try node.freshQueue(queue)
        try publisher.publishAll((0..<1_200).map { _ in .init(body: Array("x".utf8), routingKey: queue) }, window: 500)
        #expect(try node.counts(queue).ready == 1_200)
    }

    /// Two broken targets: an exchange that does not exist (the channel is closed), and a dead-letter queue that
    /// refuses publishes (full, `x-overflow: reject-publish`: the broker nacks the dead letter).
    @Test(arguments: ["missing exchange", "full queue"])
    func aBrokenDeadLetterTargetStallsNothingAndLosesNothing(_ broken: String) async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("broken-dlx")
        let full = queue + ".full"
        try node.freshQueue(queue)
        let target: RabbitMQSourceConfig.DeadLetterTarget
        if broken == "full queue" {
            try node.freshQueue(full, arguments: ["x-max-length": .int(0), "x-overflow": .string("reject-publish")])
            target = .queue(full)
        } else {
            target = .exchange("crm.test.no-such-exchange", routingKey: nil)
        }
        let workload = Workload(contacts: 50, perContact: 4)
        var messages = workload.messages(queue: queue, withIds: true)
        messages.insert(.init(body: Array("not json".utf8), routingKey: queue, properties: AMQPProperties(messageId: "poison", deliveryMode: 2)), at: 3)
        let publisher = try node.publisher()
        try publisher.publishAll(messages)
        publisher.close()
        let logs = CapturedLogs()
        let source = try RunningSource(queue: queue, node: node, deadLetter: target, logger: logs.logger)
        defer { source.remove() }
        #expect(try await source.wait(timeout: .seconds(60)) { try await source.count("ledger") >= workload.total })
        #expect(try await source.wait(timeout: .seconds(30)) { logs.contains("giving the messages back to the queue") })
        let stopped = ContinuousClock.now
        try await source.stop()
        #expect(ContinuousClock.now - stopped < .seconds(10))
        #expect(try await workload.problems(in: source.store) == [])
        // The refused message is not lost: it is back in the queue.
        #expect(try await source.wait(timeout: .seconds(10)) { try node.counts(queue) == (1, 0) })
        if broken == "full queue" {
            #expect(logs.contains("nacked or returned unroutable by the broker"))
            #expect(try node.counts(full) == (0, 0))
        }
    }

    /// A batch of dead letters the target takes only in part (a queue with room for two, `reject-publish`): the two
    /// it took are done, and only the three it nacked are retried and given back. Retrying the whole batch gave every
    /// original back, so the two already dead-lettered came round again as well (and, with room, twice over).
    @Test func deadLettersTakenInPartAreNotPublishedAgain() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = Self.uniqueQueue("partly-taken")
        let deadLetters = queue + ".two"
        try node.freshQueue(queue)
        try node.freshQueue(deadLetters, arguments: ["x-max-length": .int(2), "x-overflow": .string("reject-publish")])
        let publisher = try node.publisher()
        try publisher.publishAll((1...5).map { index in
            .init(body: Array("not json".utf8), routingKey: queue, properties: AMQPProperties(messageId: "partly-\(index)", deliveryMode: 2))
        })
        publisher.close()
        let logs = CapturedLogs()
        let source = try RunningSource(queue: queue, node: node, deadLetter: .queue(deadLetters), logger: logs.logger)
        defer { source.remove() }
        #expect(try await source.wait(timeout: .seconds(30)) { logs.contains("giving the messages back to the queue") })
        try await source.stop()
        #expect(try node.counts(deadLetters) == (2, 0))
        #expect(try await source.wait(timeout: .seconds(10)) { try node.counts(queue) == (3, 0) })
        let back = try node.drain(queue, expected: 3).compactMap(\.properties.messageId)
        let dead = try node.drain(deadLetters, expected: 2).compactMap(\.properties.messageId)
        #expect(Set(back + dead) == Set((1...5).map { "partly-\($0)" }))
    }

    @Test func twoSourcesInOneDaemonShareTheStore() async throws {
        let node = try RabbitMQTestNode.shared()
        let first = Self.uniqueQueue("two-a")
        let second = Self.uniqueQueue("two-b")
        try node.freshQueue(first)
        try node.freshQueue(second)
        let workload = Workload(contacts: 100, perContact: 10)
        let publisher = try node.publisher()
        try publisher.publishAll(workload.messages(queue: first, withIds: true, idPrefix: "a"))
        // The second queue carries the same events under other ids: each applies there once more (deposits twice).
        try publisher.publishAll(workload.messages(queue: second, withIds: true, idPrefix: "b"))
        publisher.close()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-two-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        let processor = Workload.processor
        let sources = [first, second].map { queue in
            RabbitMQSource(name: queue, config: RabbitMQSourceConfig(endpoint: node.endpoint, queue: queue),
                           processor: { processor }, store: store, logger: Logger(label: "test.two"))
        }
        let group = ServiceGroup(services: sources, logger: Logger(label: "test.two"))
        let task = Task { try await group.run() }
        let deadline = ContinuousClock.now + .seconds(60)
        while try await store.count("ledger") < 2 * workload.total, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        await group.triggerGracefulShutdown()
        try await task.value
        #expect(try await store.count("ledger") == 2 * workload.total)
        #expect(try node.counts(first) == (0, 0))
        #expect(try node.counts(second) == (0, 0))
        #expect(try await store.count("purchases") == 2 * workload.contacts * workload.depositSteps.count)
    }
}

/// A store whose first whole-batch call waits for `release`, then refuses (a schema error), and which then
/// recovers; with `ordered`, SQLite's ordered submitter in front of the same failure.
final class RecoveringStore: StoreInFront {
    let base: SQLiteCRMStore
    let ordered: Bool
    let refusing = Mutex(true)
    let applyStarted = Atomic<Bool>(false)
    let release = Atomic<Bool>(false)
    init(base: SQLiteCRMStore, ordered: Bool) { self.base = base; self.ordered = ordered }
    /// The first whole-batch call waits for `release`, then refuses (a schema error) and the store recovers.
    func apply(_ events: [PlannedEvent], now: Timestamp, timing: CommitTiming) async throws -> [EventOutcome] {
        if refusing.withLock({ $0 }) {
            applyStarted.store(true, ordering: .releasing)
            while !release.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(20)) }
            refusing.withLock { $0 = false }
            throw StoreError(.schema, "no such table: contacts")
        }
        return try await base.apply(events, now: now, timing: timing)
    }
    func makeOrderedSubmitter() -> (any OrderedSubmitter)? {
        guard ordered, let base = base.makeOrderedSubmitter() else { return nil }
        return Submitter(store: self, base: base)
    }
    /// While refusing, a submitted batch fails (and so, like SQLite's chain, does each one after it), which
    /// sends the pipeline to `apply` above with the failed batches.
    struct Submitter: OrderedSubmitter {
        let store: RecoveringStore
        let base: any OrderedSubmitter
        func submit(_ events: [PlannedEvent], now: Timestamp) -> PendingBatch {
            if store.refusing.withLock({ $0 }) { return PendingBatch { throw StoreError(.schema, "no such table: contacts") } }
            return base.submit(events, now: now)
        }
        func resume() { base.resume() }
    }
}
