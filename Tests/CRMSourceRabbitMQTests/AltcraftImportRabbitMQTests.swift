import AMQPClient
import CRMTestSupport
import CRMConfig
import CRMCore
import CRMStoreSQLite
import Foundation
import Testing

/// Altcraft's `database_import` flow on a real broker: requests in, one reply per request read back from the reply
/// queue, invalid requests answered and dead-lettered, a redelivered request answered again without being applied
/// twice. An extension of the source's suite, so it is serialized with the tests that cut the shared broker's
/// connections or pause it (a cut would end the test's own connections and its exclusive reply queue).
extension RabbitMQSourceTests {
    static let altcraftProcessor = EventProcessor(
        mapping: Mapping(
            attributes: [AttributeDefinition(name: "email", headers: ["email"]), AttributeDefinition(name: "_fname", headers: ["_fname"])],
            actions: [AltcraftImportFormat.importType: [.enterJourney(journey: 7)]]
        ),
        format: .altcraftImport(AltcraftImportFormat(accountId: 1))
    )

    static func altcraftRequest(_ body: String, id: String, queue: String) -> AMQPPublisher.Message {
        AMQPPublisher.Message(body: Array(body.utf8), routingKey: queue, properties: AMQPProperties(messageId: id, deliveryMode: 2))
    }

    @Test func everyRequestIsAnsweredOnTheReplyQueueAfterItsEffectsCommit() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = "crm.test.database_import.\(UUID().uuidString.prefix(6))"
        let replyQueue = queue + "_result"
        let deadLetters = queue + ".dead"
        try node.freshQueue(queue)
        try node.freshQueue(deadLetters)
        // The reply queue is left for the daemon to declare (with the TTL as x-message-ttl).
        let admin = try AMQPConnection(endpoint: node.endpoint, connectionName: "crm-ingest tests admin")
        try admin.openChannel(1)
        try? admin.deleteQueue(replyQueue, channel: 1)
        admin.close()

        // A contact created by another source before the imports: matched by email, case aside.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-altcraft-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let seeded = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        _ = try await seeded.apply([PlannedEvent(
            key: IdempotencyKey(value: "seed", check: .always), type: .userRegistration, contactId: "crm-7",
            operations: [.upsertContact(list: 1, contactId: "crm-7", attributes: [AttributeValue(name: "email", value: .string("Example@Example.com"))],
                                        consent: nil, createWith: NewContactDefaults(emailSubscribed: true, mobileSubscribed: true))]
        )], now: Timestamp(secondsSinceEpoch: 1_700_000_000))
        try seeded.close()

        var requests = [
            Self.altcraftRequest(#"{"account_id":1,"data":{"_fname":"John","_lname":"Doe"},"db_id":1,"email":"example@example.com","feedback_id":"seed-example","update_only":true}"#, id: "r1", queue: queue),
            Self.altcraftRequest(#"{"account_id":1,"db_id":1,"email":"new@example.com","data":{"_fname":"Ann"},"feedback_id":"create"}"#, id: "r2", queue: queue),
            Self.altcraftRequest(#"{"account_id":1,"db_id":1,"email":"quiet@example.com","data":{},"skip_triggers":true,"feedback_id":"quiet"}"#, id: "r3", queue: queue),
            Self.altcraftRequest(#"{"account_id":1,"db_id":1,"email":"nobody@example.com","data":{},"update_only":true,"feedback_id":"no-match"}"#, id: "r4", queue: queue),
            Self.altcraftRequest(#"{"account_id":1,"db_id":1,"matching":"fax","data":{},"feedback_id":"invalid"}"#, id: "r5", queue: queue),
            Self.altcraftRequest("not json", id: "r6", queue: queue),
            Self.altcraftRequest(#"{"account_id":2,"db_id":1,"email":"a@b.c","data":{},"feedback_id":"other-account"}"#, id: "r7", queue: queue),
        ]
        requests.append(requests[1]) // the same request again (same message id): applied once, answered twice
        let publisher = try node.publisher()
        try publisher.publishAll(requests)
        publisher.close()

        let logs = CapturedLogs()
        let source = try RunningSource(queue: queue, node: node, deadLetter: .queue(deadLetters), folder: folder, logger: logs.logger,
                                       processor: Self.altcraftProcessor, replies: .init(queue: replyQueue, ttlSeconds: 3600))
        defer { source.remove() }
        #expect(try await source.wait(timeout: .seconds(30)) { try node.counts(queue) == (0, 0) })
        try await source.stop()

        let replies = try node.drain(replyQueue, expected: requests.count, timeout: .seconds(10))
        #expect(replies.count == requests.count)
        var byFeedback: [String: [JSONValue]] = [:]
        for reply in replies {
            let json = try JSONParser().parse(reply.body)
            guard case let .string(feedback)? = json["feedback_id"] else {
                Issue.record("reply without feedback_id: \(String(decoding: reply.body, as: UTF8.self))")
                continue
            }
            byFeedback[feedback, default: []].append(json)
            #expect(reply.properties.expiration == "3600000")
            #expect(reply.properties.deliveryMode == 2)
            #expect(reply.properties.contentType == "application/json")
        }
        #expect(byFeedback["seed-example"]?.first?["profile_id"] == .string("crm-7"))
        #expect(byFeedback["seed-example"]?.first?["error"] == .number("0"))
        let created = byFeedback["create"] ?? []
        #expect(created.count == 2)
        #expect(created.first?["error"] == .number("0") && created.first?["profile_id"] == created.last?["profile_id"])
        #expect(byFeedback["quiet"]?.first?["error"] == .number("0"))
        #expect(byFeedback["no-match"]?.first?["error"] == .number("2"))
        #expect(byFeedback["invalid"]?.first?["error"] == .number("1"))
        #expect(byFeedback["invalid"]?.first?["error_text"] == .string(#"matching: expected email, phone, profile_id or custom, got "fax""#))
        #expect(byFeedback["other-account"]?.first?["error_text"] == .string("account_id: this source imports for account 1, got 2"))
        #expect(byFeedback[""]?.first?["error"] == .number("1")) // "not json": nothing to read a feedback_id from
        // Correlation: each reply carries its request's message id.
        #expect(Set(replies.compactMap(\.properties.correlationId)) == Set(["r1", "r2", "r3", "r4", "r5", "r6", "r7"]))

        // End state: the store, and the refused requests in the dead-letter queue with their reasons.
        guard case let .found(crm7) = try await source.store.contact("crm-7", list: 1) else {
            Issue.record("crm-7 missing")
            return
        }
        #expect(crm7.attribute("_fname") == .string("John"))
        #expect(try await source.count("contacts") == 3)
        #expect(try await source.count("journey_enrollments") == 2) // crm-7 and the new profile; "quiet" skipped triggers
        let dead = try node.drain(deadLetters, expected: 3, timeout: .seconds(5))
        #expect(Set(dead.compactMap(\.properties.messageId)) == Set(["r5", "r6", "r7"]))
    }

    /// While replies cannot be published (another connection holds the reply queue exclusively), requests are not
    /// acked: they stay in the queue. Once the queue is free, every request is answered, and none applied twice.
    @Test func requestsWaitForTheirRepliesAndAreNeverAppliedTwice() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = "crm.test.database_import.\(UUID().uuidString.prefix(6))"
        let replyQueue = queue + "_result"
        try node.freshQueue(queue)
        let holder = try AMQPConnection(endpoint: node.endpoint, connectionName: "crm-ingest tests holder")
        try holder.openChannel(1)
        try holder.declareQueue(replyQueue, channel: 1, durable: false, exclusive: true)

        let publisher = try node.publisher()
        try publisher.publishAll((1...3).map { (n: Int) in
            Self.altcraftRequest("{\"account_id\":1,\"db_id\":1,\"email\":\"p\(n)@example.com\",\"data\":{},\"feedback_id\":\"f\(n)\"}", id: "w\(n)", queue: queue)
        })
        publisher.close()
        let source = try RunningSource(queue: queue, node: node, processor: Self.altcraftProcessor, replies: .init(queue: replyQueue, ttlSeconds: 60))
        defer { source.remove() }
        // Applied, but not acked while no reply can be published.
        #expect(try await source.wait(timeout: .seconds(20)) { try await source.count("contacts") == 3 })
        try await Task.sleep(for: .seconds(2))
        let held = try node.counts(queue)
        #expect(held.ready + held.unacked == 3)

        holder.close() // the exclusive queue goes with its connection
        #expect(try await source.wait(timeout: .seconds(30)) { try node.counts(queue) == (0, 0) })
        try await source.stop()
        let replies = try node.drain(replyQueue, expected: 3, timeout: .seconds(10))
        let answered = Set(replies.compactMap { reply -> String? in
            if case let .string(feedback)? = (try? JSONParser().parse(reply.body))?["feedback_id"] { return feedback }
            return nil
        })
        #expect(answered == ["f1", "f2", "f3"])
        #expect(replies.allSatisfy { (try? JSONParser().parse($0.body)["error"]) == .number("0") })
        #expect(try await source.count("contacts") == 3)
        #expect(try await source.count("journey_enrollments") == 3)
        #expect(try await source.count("ledger") == 3)
    }

    /// A reply queue that takes only some replies of a batch (room for two, `reject-publish`): the requests whose
    /// replies it took are settled, and only the others are retried and given back. Settling the batch as a whole
    /// gave every request back, so the two already answered were answered again on their redelivery.
    @Test func repliesTakenInPartSettleTheirRequests() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = "crm.test.database_import.\(UUID().uuidString.prefix(6))"
        let replyQueue = queue + "_result"
        try node.freshQueue(queue)
        try node.freshQueue(replyQueue, arguments: ["x-max-length": .int(2), "x-overflow": .string("reject-publish")])
        let publisher = try node.publisher()
        try publisher.publishAll((1...5).map { (n: Int) in
            Self.altcraftRequest("{\"account_id\":1,\"db_id\":1,\"email\":\"part\(n)@example.com\",\"data\":{},\"feedback_id\":\"p\(n)\"}", id: "part-\(n)", queue: queue)
        })
        publisher.close()
        let logs = CapturedLogs()
        let source = try RunningSource(queue: queue, node: node, logger: logs.logger, processor: Self.altcraftProcessor,
                                       replies: .init(queue: replyQueue, ttlSeconds: 60))
        defer { source.remove() }
        #expect(try await source.wait(timeout: .seconds(30)) { logs.contains("giving the requests back to the queue") })
        try await source.stop()
        #expect(logs.contains("nacked or returned unroutable by the broker"))
        #expect(try node.counts(replyQueue) == (2, 0))
        #expect(try await source.wait(timeout: .seconds(10)) { try node.counts(queue) == (3, 0) })
        let back = try node.drain(queue, expected: 3).compactMap(\.properties.messageId)
        let answered = try node.drain(replyQueue, expected: 2).compactMap(\.properties.correlationId)
        #expect(Set(back + answered) == Set((1...5).map { "part-\($0)" }))
        #expect(try await source.count("contacts") == 5)
        #expect(try await source.count("ledger") == 5)
    }
}
