import AWSSigV4
import CRMConfig
import CRMCore
import CRMSourceSQS
import CRMSourceSupport
import CRMStoreSQLite
import CRMTestSupport
import Foundation
import Logging
import SNSSupport
import Synchronization
import SQSClient
import ServiceLifecycle
import Testing

/// The SQS source against moto_server (SigV4 enforced).
@Suite("SQS source", .serialized)
struct SQSSourceTests {
    static let mapping = Mapping(
        attributes: [AttributeDefinition(name: "seq", headers: ["seq"])],
        actions: [
            .userRegistration: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true)],
            .userUpdate: [.updateContact(list: 1)],
            .depositApproved: [.createPurchaseRow(list: 1)],
        ]
    )

    static func createQueue(_ server: MotoTestServer, _ name: String, attributes: [String: String] = [:]) throws -> String {
        try server.createQueue(name, attributes: attributes)
    }

    static func send(_ server: MotoTestServer, _ queue: String, _ messages: [SQSClient.OutgoingMessage]) throws {
        let client = SQSClient(queueURL: queue, region: server.region, credentials: server.credentials, endpoint: server.url)
        for chunk in stride(from: 0, to: messages.count, by: 10).map({ Array(messages[$0..<min($0 + 10, messages.count)]) }) {
            let result = try client.sendMessages(chunk)
            #expect(result.failed.isEmpty)
        }
    }

    /// Publishes `messages` in batches of 10 while at most `backlog` of them are published but not yet `applied`.
    /// moto checks every sent and every received message against the queue's attributes, which it computes by
    /// scanning all the queue's messages: its cost per message grows with the queue's depth (about 30 messages/s at
    /// a depth of 200 on this machine). A small bounded backlog keeps the test's speed independent of its size.
    static func sendKeepingBacklog(
        _ server: MotoTestServer, _ queue: String, _ messages: [SQSClient.OutgoingMessage], backlog: Int,
        applied: @Sendable () async throws -> Int
    ) async throws {
        let client = SQSClient(queueURL: queue, region: server.region, credentials: server.credentials, endpoint: server.url)
        var sent = 0
        while sent < messages.count {
            if sent - (try await applied()) >= backlog {
                try await Task.sleep(for: .milliseconds(50))
                continue
            }
            let chunk = Array(messages[sent..<min(sent + 10, messages.count)])
            let result = try client.sendMessages(chunk)
            #expect(result.failed.isEmpty)
            sent += chunk.count
        }
    }

    /// A contact's sequence: registration, then deposits of increasing amounts and seq updates.
    static func event(contact: Int, step: Int) -> String {
        if step == 0 { return #"{"type":"USER_REGISTRATION","contactId":"c\#(contact)"}"# }
        if step % 2 == 1 { return #"{"type":"DEPOSIT_APPROVED","contactId":"c\#(contact)","timestamp":"2024-01-01T00:00:00Z","amount":\#(step)}"# }
        return #"{"type":"USER_UPDATE","contactId":"c\#(contact)","properties":{"seq":\#(step)}}"#
    }

    static func snsEnvelope(_ payload: String, id: String, resourceType: String) -> String {
        var escaped: [UInt8] = []
        JSONWriter.writeString(payload, into: &escaped)
        return #"{"Type":"Notification","MessageId":"\#(id)","TopicArn":"arn:aws:sns:us-east-1:123456789012:jomablue","Message":\#(String(decoding: escaped, as: UTF8.self)),"Timestamp":"2024-01-01T00:00:00.000Z","MessageAttributes":{"resource_type":{"Type":"String","Value":"\#(resourceType)"}}}"#
    }

    /// Runs a source until `done` holds (or 90 s), then stops it gracefully; returns its totals.
    static func run(
        _ config: SQSSourceConfig, store: any CRMStore, logger: Logger = Logger(label: "test.sqs"),
        whileRunning: @Sendable () async throws -> Void = {},
        progress: (@Sendable () async throws -> Int)? = nil,
        processor: EventProcessor = EventProcessor(mapping: mapping), statusBoard: SourceStatusBoard? = nil,
        retryBudget: Duration = .seconds(120), until done: @escaping @Sendable () async throws -> Bool
    ) async throws -> SQSSource.Totals {
        let source = SQSSource(
            name: "sqs-test", config: config, processor: { processor }, store: store, logger: logger, retryBudget: retryBudget, statusBoard: statusBoard
        )
        let box = ResultBox()
        let service = TotalsService(source: source, box: box)
        let group = ServiceGroup(services: [service], logger: logger)
        let task = Task { try await group.run() }
        // moto slows down as a queue grows (it scans it per message): publishing while the source drains keeps it short.
        try await whileRunning()
        // Gives up after 90 s without progress (moto's speed varies a lot with the machine's load), or 20 minutes.
        var deadline = ContinuousClock.now + .seconds(90)
        let hardDeadline = ContinuousClock.now + .seconds(1_200)
        var seen = try await progress?() ?? 0
        while ContinuousClock.now < deadline, ContinuousClock.now < hardDeadline, !(try await done()) {
            try await Task.sleep(for: .milliseconds(200))
            if let progress, case let now = try await progress(), now > seen {
                seen = now
                deadline = ContinuousClock.now + .seconds(90)
            }
        }
        await group.triggerGracefulShutdown()
        try await task.value
        return try #require(box.totals)
    }

    /// A source named `sqs-test` on `Self.mapping`, running in a service group of its own: stop it with
    /// `group.triggerGracefulShutdown()`, then await `task`.
    static func started(
        _ settings: SQSSourceConfig, store: any CRMStore, logs: CapturedLogs, environment: [String: String] = ProcessInfo.processInfo.environment,
        statusBoard: SourceStatusBoard? = nil
    ) -> (group: ServiceGroup, task: Task<Void, any Error>) {
        let source = SQSSource(
            name: "sqs-test", config: settings, processor: { EventProcessor(mapping: Self.mapping) }, store: store, logger: logs.logger,
            environment: environment, statusBoard: statusBoard
        )
        let group = ServiceGroup(services: [source], logger: logs.logger)
        return (group, Task { try await group.run() })
    }

    /// Whether `queue` holds no message, visible or in flight.
    static func queueIsEmpty(_ server: MotoTestServer, _ queue: String) throws -> Bool {
        let client = SQSClient(queueURL: queue, region: server.region, credentials: server.credentials, endpoint: server.url)
        let left = try client.queueAttributes(["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        return left["ApproximateNumberOfMessages"] == "0" && left["ApproximateNumberOfMessagesNotVisible"] == "0"
    }

    static func store() throws -> (SQLiteCRMStore, URL) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-sqs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return (try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path), folder)
    }

    func config(_ server: MotoTestServer, _ queue: String, folder: URL) -> SQSSourceConfig {
        SQSSourceConfig(queueURL: queue, region: server.region, endpoint: server.url, credentials: server.credentials,
                        pollers: 2, waitTimeSeconds: 1, deadLetterFile: folder.appendingPathComponent("dead-letters.jsonl").path)
    }

    /// The issue's acceptance run: 5,000 events, half of them SNS-wrapped with a message attribute.
    @Test func fiveThousandPlainAndSNSWrappedEventsApplyOnce() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "events-\(UUID().uuidString.prefix(6))")
        // 500 contacts x 10 steps; even contacts arrive plain, odd ones wrapped by SNS with a message attribute.
        let contacts = 500, steps = 10, total = contacts * steps
        var messages: [SQSClient.OutgoingMessage] = []
        for step in 0..<steps {
            for contact in 0..<contacts {
                let payload = Self.event(contact: contact, step: step)
                let body = contact % 2 == 0 ? payload : Self.snsEnvelope(payload, id: "sns-\(contact)-\(step)", resourceType: "person")
                messages.append(.init(id: "m\(messages.count % 10)", body: body))
            }
        }
        let (store, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        let publish = messages
        // One poller: moto (unlike SQS) can hand the same message to two concurrent long polls, and the second copy
        // then stays "not visible" after the first is deleted, which would blur the "queue empty" check below.
        var settings = config(server, queue, folder: folder)
        settings.pollers = 1
        let started = ContinuousClock.now
        let totals = try await Self.run(settings, store: store, whileRunning: {
            try await Self.sendKeepingBacklog(server, queue, publish, backlog: 50) { try await store.count("ledger") }
        }, progress: { try await store.count("ledger") }) { try await store.count("ledger") >= total }
        #expect(try await store.count("ledger") == total)
        #expect(try await store.count("contacts") == contacts)
        #expect(try await store.count("purchases") == contacts * steps / 2)
        // Exactly 5,000 applied; SQS may deliver a message twice: the ledger turns those into duplicates.
        #expect(totals.applied == total && totals.refused == 0)
        #expect(totals.received == total + totals.duplicates)
        #expect(try Self.queueIsEmpty(server, queue))
        let perMessage = Double(totals.requests) / Double(totals.received)
        print("SQS requests per message: \(totals.requests) / \(totals.received) = \(perMessage) (duplicates: \(totals.duplicates), \(ContinuousClock.now - started))")
        // One receive and one batch delete per 10 messages is the floor (0.2); a few empty polls come on top.
        #expect(perMessage >= 0.2 && perMessage < 0.3)
    }

    /// A store that takes 3 events per transaction (`maxEventsPerTransaction`, PostgreSQL's 250 in small) gets each
    /// lane's batch of up to 10 received messages in parts, and every message is applied once and deleted.
    @Test func batchesGoToAStoreInItsTransactionParts() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "parts-\(UUID().uuidString.prefix(6))")
        var messages: [SQSClient.OutgoingMessage] = []
        for step in 0..<10 { for contact in 0..<4 { messages.append(.init(id: "m\(messages.count % 10)", body: Self.event(contact: contact, step: step))) } }
        try Self.send(server, queue, messages)
        let (sqlite, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = PartLimitedStore(inner: sqlite, limit: 3)
        var settings = config(server, queue, folder: folder)
        settings.lanes = 1
        let totals = try await Self.run(settings, store: store) { try await sqlite.count("ledger") >= 40 }
        #expect(try await sqlite.count("ledger") == 40)
        #expect(totals.applied == 40 && totals.refused == 0)
        let largest = store.calls.max() ?? 0
        #expect(largest <= 3 && largest > 0, "a transaction of \(largest) events")
        #expect(try Self.queueIsEmpty(server, queue))
    }

    /// SNS retries a notification it could not confirm: the same envelope (one SNS MessageId) arrives as two SQS
    /// messages with SQS ids of their own. The idempotency key is the SNS MessageId, so a deposit without a
    /// transaction id is recorded once; the same payload in another notification (another SNS id) is a second one.
    @Test func snsRetriesOfOneNotificationApplyOnce() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "sns-retry-\(UUID().uuidString.prefix(6))")
        let (store, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        try Self.send(server, queue, [.init(id: "r", body: Self.event(contact: 7, step: 0))])
        _ = try await Self.run(config(server, queue, folder: folder), store: store) { try await store.count("ledger") >= 1 }
        let deposit = Self.event(contact: 7, step: 1)
        try Self.send(server, queue, [
            .init(id: "a", body: Self.snsEnvelope(deposit, id: "sns-retry-1", resourceType: "person")),
            .init(id: "b", body: Self.snsEnvelope(deposit, id: "sns-retry-1", resourceType: "person")),
            .init(id: "c", body: Self.snsEnvelope(deposit, id: "sns-retry-2", resourceType: "person")),
        ])
        let totals = try await Self.run(config(server, queue, folder: folder), store: store) {
            let client = SQSClient(queueURL: queue, region: server.region, credentials: server.credentials, endpoint: server.url)
            let left = try client.queueAttributes(["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
            return try await store.count("ledger") >= 3 && left["ApproximateNumberOfMessages"] == "0" && left["ApproximateNumberOfMessagesNotVisible"] == "0"
        }
        #expect(try await store.count("purchases") == 2)
        #expect(try await store.count("ledger") == 3)
        #expect(totals.received == 3 && totals.applied == 2 && totals.duplicates == 1)
    }

    /// Jomablue publishes to SNS, SNS delivers to SQS (not raw): the envelope is unwrapped, the person becomes a
    /// contact, and the republished identical person (a new SNS MessageId) is counted as unchanged.
    @Test func jomabluePayloadsArriveSNSWrapped() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "jomablue-\(UUID().uuidString.prefix(6))")
        let person = #"{"resource_type":"person","generated_at":"2026-05-13T00:02:10.118Z","context":{"event_id":"northwind/event/5"},"identifiers":{"first_name":"สมศรี","last_name":"ทองดี","email":"somsri@example.co.th","id":"northwind/event_person/51502","organisation_uid":""},"data":{"job_title":"","checked_in":true,"categories":[]}}"#
        let event = #"{"resource_type":"event","generated_at":"2026-05-12T08:00:03.120Z","identifiers":{"id":"northwind/event/5"},"data":{"name":"Summit","categories":[]}}"#
        try Self.send(server, queue, [
            .init(id: "e", body: Self.snsEnvelope(event, id: "sns-e", resourceType: "event")),
            .init(id: "p1", body: Self.snsEnvelope(person, id: "sns-p1", resourceType: "person")),
        ])
        let (store, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        let mapping = Mapping(attributes: [AttributeDefinition(name: "firstName", headers: ["first_name"])], actions: [:])
        let processor = EventProcessor(mapping: mapping, format: .jomablue(JomablueFormat(list: 1)))
        _ = try await Self.run(config(server, queue, folder: folder), store: store, processor: processor) { try await store.count("ledger") >= 2 }
        try Self.send(server, queue, [.init(id: "p2", body: Self.snsEnvelope(person, id: "sns-p2", resourceType: "person"))])
        let totals = try await Self.run(config(server, queue, folder: folder), store: store, processor: processor) { try await store.count("ledger") >= 3 }
        #expect(totals.unchanged == 1)
        guard case let .found(contact) = try await store.contact("northwind/event_person/51502", list: 1) else {
            Issue.record("the person is not a contact"); return
        }
        #expect(contact.attribute("firstName") == .string("สมศรี"))
        #expect(try await store.count("linked_records") == 2)
    }

    /// Message attributes of every kind, for the dead-letter round trips.
    static let mixedAttributes: [String: SQSMessage.MessageAttribute] = [
        "origin": .init(dataType: "String", stringValue: "webshop"),
        "attempt": .init(dataType: "Number", stringValue: "3"),
        "signature": .init(dataType: "Binary", stringValue: nil, binaryValue: [0, 1, 2, 0xFE, 0xFF]),
    ]

    @Test func poisonGoesToTheDeadLetterQueueThroughTheRedrivePolicy() async throws {
        let server = try MotoTestServer.shared()
        let name = "redrive-\(UUID().uuidString.prefix(6))"
        let deadLetterQueue = try Self.createQueue(server, name + "-dlq")
        let redrive = #"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:\#(name)-dlq","maxReceiveCount":"2"}"#
        let queue = try Self.createQueue(server, name, attributes: ["RedrivePolicy": redrive, "VisibilityTimeout": "2"])
        var messages = (0..<40).map { SQSClient.OutgoingMessage(id: "v\($0 % 10)", body: Self.event(contact: $0, step: 0)) }
        messages += ["not json", #"{"type":"USER_DELETE","contactId":"x"}"#, #"{"type":"DEPOSIT_APPROVED","contactId":"c1","amount":"abc"}"#]
            .enumerated().map { SQSClient.OutgoingMessage(id: "p\($0.offset)", body: $0.element, attributes: Self.mixedAttributes) }
        try Self.send(server, queue, messages)
        let (store, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        let dlq = SQSClient(queueURL: deadLetterQueue, region: server.region, credentials: server.credentials, endpoint: server.url)
        let credentials = server.credentials, region = server.region, endpoint = server.url
        _ = try await Self.run(config(server, queue, folder: folder), store: store) {
            let client = SQSClient(queueURL: deadLetterQueue, region: region, credentials: credentials, endpoint: endpoint)
            return try client.queueAttributes(["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"] == "3"
        }
        #expect(try await store.count("contacts") == 40)
        #expect(try dlq.queueAttributes(["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"] == "3")
        // The reasons, recorded at each message's last allowed receive, and no body kept.
        let records = try DeadLetterFile(path: folder.appendingPathComponent("dead-letters.jsonl").path).records()
        #expect(records.count == 3)
        #expect(records.allSatisfy { $0.body == nil && $0.receiveCount == 2 })

        // `crm-ingest dlq list`: every message with its reason, and all of them still in the dead-letter queue.
        let config = config(server, queue, folder: folder)
        let deadLetters = try SQSDeadLetters(sourceName: "sqs-test", config: config, processor: EventProcessor(mapping: Self.mapping), environment: [:])
        #expect(deadLetters.location == .queue(url: deadLetterQueue, maxReceiveCount: 2))
        let listed = try deadLetters.list(limit: 10)
        #expect(listed.count == 3)
        #expect(Set(listed.map(\.reason)) == Set(records.map(\.reason)))
        #expect(listed.contains { $0.reason.contains("unknown event type \"USER_DELETE\"") && $0.eventType == "USER_DELETE" })
        #expect(listed.allSatisfy { $0.deliveries == 2 && $0.now.hasPrefix("refused: ") }) // as recorded at its last receive
        try await Task.sleep(for: .milliseconds(200))
        #expect(try dlq.queueAttributes(["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"] == "3")

        // `crm-ingest dlq replay --where DEPOSIT_APPROVED`: that one back in the source queue, the others left.
        let summary = try deadLetters.replay(limit: nil, eventType: "DEPOSIT_APPROVED")
        #expect(summary.replayed == 1 && summary.leftOtherType == 2 && summary.failed == 0)
        let source = SQSClient(queueURL: queue, region: server.region, credentials: server.credentials, endpoint: server.url)
        let back = try source.receiveMessages(maxMessages: 10, waitSeconds: 1)
        #expect(back.map(\.body) == [#"{"type":"DEPOSIT_APPROVED","contactId":"c1","amount":"abc"}"#])
        // With its attributes, the binary one included (SQS refused a Binary attribute sent as a string).
        #expect(back.first?.messageAttributes == Self.mixedAttributes)
        try await Task.sleep(for: .milliseconds(200))
        #expect(try dlq.queueAttributes(["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"] == "2")
        #expect(try DeadLetterFile(path: folder.appendingPathComponent("dead-letters.jsonl").path).records().count == 2)
    }

    /// A store outage many times the retry budget (1 s here) and longer than the queue's visibility timeout times
    /// its maxReceiveCount: past the budget the store does not answer a ping, so the messages stay in flight
    /// (extended) and are retried until it is back; none is received again and none reaches the dead-letter queue.
    /// Giving them back after the budget had them received again and again, each time counting towards
    /// maxReceiveCount.
    @Test func aStoreOutageKeepsMessagesInFlightAndOutOfTheDeadLetterQueue() async throws {
        let server = try MotoTestServer.shared()
        let name = "outage-\(UUID().uuidString.prefix(6))"
        let deadLetterQueue = try Self.createQueue(server, name + "-dlq")
        let redrive = #"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:\#(name)-dlq","maxReceiveCount":"2"}"#
        let queue = try Self.createQueue(server, name, attributes: ["RedrivePolicy": redrive, "VisibilityTimeout": "4"])
        try Self.send(server, queue, (0..<20).map { .init(id: "o\($0)", body: Self.event(contact: $0, step: 0)) })
        let (sqlite, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = OutageStore(inner: sqlite)
        let began = ContinuousClock.now
        let totals = try await Self.run(config(server, queue, folder: folder), store: store, retryBudget: .seconds(1)) {
            // Down for 12 s: three visibility timeouts, twelve retry budgets.
            if ContinuousClock.now - began > .seconds(12) { store.down.store(false, ordering: .relaxed) }
            return try await sqlite.count("contacts") == 20
        }
        #expect(try await sqlite.count("contacts") == 20)
        #expect(totals.received == 20)
        #expect(store.failures > 0)
        let dlq = SQSClient(queueURL: deadLetterQueue, region: server.region, credentials: server.credentials, endpoint: server.url)
        #expect(try dlq.queueAttributes(["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"] == "0")
    }

    /// A refused message recorded twice in the dead-letter file (its delete failed, it came back, it was refused
    /// again) is replayed once, and both records leave the file.
    @Test func aDeadLetterRecordedTwiceIsReplayedOnce() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "twice-\(UUID().uuidString.prefix(6))")
        let (_, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = config(server, queue, folder: folder)
        let file = DeadLetterFile(path: config.deadLetterFile)
        let body = Self.event(contact: 5, step: 0)
        for at in [1_700_000_000, 1_700_000_030] as [Int64] {
            try file.append(.init(source: "sqs-test", messageId: "m-twice", reason: "store unavailable", body: body, at: at, receiveCount: 1))
        }
        try file.append(.init(source: "sqs-test", messageId: "m-once", reason: "store unavailable", body: Self.event(contact: 6, step: 0), at: 1_700_000_000))
        let deadLetters = try SQSDeadLetters(sourceName: "sqs-test", config: config, processor: EventProcessor(mapping: Self.mapping), environment: [:])
        let summary = try deadLetters.replay(limit: nil, eventType: nil)
        #expect(summary.replayed == 2 && summary.failed == 0 && summary.failure == nil)
        #expect(try file.records().isEmpty)
        let client = SQSClient(queueURL: queue, region: server.region, credentials: server.credentials, endpoint: server.url)
        #expect(try client.queueAttributes(["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"] == "2")
    }

    /// A store that answers a ping but keeps failing one batch (PostgreSQL classes unknown errors as unavailable):
    /// past the retry budget the batch is given back, so it cannot hold its lane and, with max_in_flight, the whole
    /// source; the redrive policy then moves it to the dead-letter queue.
    @Test func aBatchTheStoreKeepsFailingWhileUpIsGivenBack() async throws {
        let server = try MotoTestServer.shared()
        let name = "stuck-\(UUID().uuidString.prefix(6))"
        let deadLetterQueue = try Self.createQueue(server, name + "-dlq")
        let redrive = #"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:\#(name)-dlq","maxReceiveCount":"2"}"#
        let queue = try Self.createQueue(server, name, attributes: ["RedrivePolicy": redrive, "VisibilityTimeout": "2"])
        try Self.send(server, queue, [.init(id: "s", body: Self.event(contact: 1, step: 0))])
        let (sqlite, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = OutageStore(inner: sqlite, answersPings: true)
        let region = server.region, credentials = server.credentials, endpoint = server.url
        _ = try await Self.run(config(server, queue, folder: folder), store: store, retryBudget: .seconds(1)) {
            let dlq = SQSClient(queueURL: deadLetterQueue, region: region, credentials: credentials, endpoint: endpoint)
            return try dlq.queueAttributes(["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"] == "1"
        }
        let dlq = SQSClient(queueURL: deadLetterQueue, region: server.region, credentials: server.credentials, endpoint: server.url)
        #expect(try dlq.queueAttributes(["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"] == "1")
    }

    /// Stopping while the store is down gives the messages in flight back visible at once, even with
    /// `on_failure: keep`: they were just extended, and would otherwise wait a whole visibility timeout.
    @Test func stoppingWhileTheStoreIsDownMakesTheMessagesVisible() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "down-stop-\(UUID().uuidString.prefix(6))", attributes: ["VisibilityTimeout": "60"])
        try Self.send(server, queue, (0..<3).map { .init(id: "d\($0)", body: Self.event(contact: $0, step: 0)) })
        let (sqlite, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = OutageStore(inner: sqlite)
        let totals = try await Self.run(config(server, queue, folder: folder), store: store) { store.failures >= 3 }
        #expect(totals.received == 3 && totals.applied == 0)
        let client = SQSClient(queueURL: queue, region: server.region, credentials: server.credentials, endpoint: server.url)
        let attributes = try client.queueAttributes(["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        #expect(attributes["ApproximateNumberOfMessages"] == "3")
        #expect(attributes["ApproximateNumberOfMessagesNotVisible"] == "0")
    }

    @Test func withoutARedrivePolicyRefusedMessagesAreRecordedAndDeleted() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "no-redrive-\(UUID().uuidString.prefix(6))")
        try Self.send(server, queue, [
            .init(id: "a", body: Self.event(contact: 1, step: 0)),
            .init(id: "b", body: "{\"type\":\"USER_DELETE\",\"contactId\":\"x\"}", attributes: Self.mixedAttributes),
        ])
        let (store, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        let record = folder.appendingPathComponent("dead-letters.jsonl").path
        _ = try await Self.run(config(server, queue, folder: folder), store: store) {
            let contacts = try await store.count("contacts")
            return FileManager.default.fileExists(atPath: record) && contacts == 1
        }
        let line = try String(contentsOfFile: record, encoding: .utf8)
        #expect(line.contains(#"type: unknown event type \"USER_DELETE\""#))
        let client = SQSClient(queueURL: queue, region: server.region, credentials: server.credentials, endpoint: server.url)
        try await Task.sleep(for: .seconds(1))
        #expect(try client.queueAttributes(["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]).values.allSatisfy { $0 == "0" })

        // `crm-ingest dlq list` and `replay` read and empty the file: the body goes back to the queue.
        let deadLetters = try SQSDeadLetters(
            sourceName: "sqs-test", config: config(server, queue, folder: folder), processor: EventProcessor(mapping: Self.mapping), environment: [:]
        )
        #expect(deadLetters.location == .file(path: record))
        let listed = try deadLetters.list(limit: 10)
        #expect(listed.count == 1)
        #expect(listed.first?.eventType == "USER_DELETE")
        #expect(listed.first?.deliveries == 1)
        #expect(listed.first?.deadLetteredAt != nil)
        let summary = try deadLetters.replay(limit: nil, eventType: nil)
        #expect(summary.replayed == 1 && summary.failed == 0)
        let back = try client.receiveMessages(maxMessages: 10, waitSeconds: 1)
        #expect(back.map(\.body) == ["{\"type\":\"USER_DELETE\",\"contactId\":\"x\"}"])
        // The record kept the message attributes, and the replay sent them again.
        #expect(back.first?.messageAttributes == Self.mixedAttributes)
        #expect(try DeadLetterFile(path: record).records().isEmpty)
    }

    @Test func slowProcessingIsExtendedNotRedelivered() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "slow-\(UUID().uuidString.prefix(6))", attributes: ["VisibilityTimeout": "2"])
        try Self.send(server, queue, [.init(id: "a", body: Self.event(contact: 7, step: 0))])
        let (sqlite, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        let slow = SlowStore(inner: sqlite, delay: .seconds(6))
        let totals = try await Self.run(config(server, queue, folder: folder), store: slow) { try await sqlite.count("contacts") == 1 }
        // Processing took three visibility timeouts; the message was extended, so no second poller got it.
        #expect(totals.received == 1)
        #expect(totals.duplicates == 0)
        #expect(slow.calls == 1)
    }

    /// A store slower than the queue holds the pollers back: no more than `max_in_flight` messages are received and
    /// not yet deleted (SQS's `ApproximateNumberOfMessagesNotVisible`, sampled while the source works). Without the
    /// bound the pollers took the whole queue at once, and the settler had to keep all of it invisible.
    @Test func aSlowStoreHoldsThePollersBack() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "bounded-\(UUID().uuidString.prefix(6))")
        try Self.send(server, queue, (0..<100).map { .init(id: "m\($0)", body: Self.event(contact: $0, step: 0)) })
        let (sqlite, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        let slow = SlowStore(inner: sqlite, delay: .milliseconds(300))
        var config = config(server, queue, folder: folder)
        config.maxInFlight = 20
        // One poller: moto may hand one message to two long polls at once, leaving a copy it counts as not visible.
        config.pollers = 1
        @Sendable func observer() -> SQSClient { SQSClient(queueURL: queue, region: server.region, credentials: server.credentials, endpoint: server.url) }
        let highest = HighestSeen()
        let totals = try await Self.run(config, store: slow) {
            let notVisible = Int(try observer().queueAttributes(["ApproximateNumberOfMessagesNotVisible"])["ApproximateNumberOfMessagesNotVisible"] ?? "") ?? 0
            highest.note(notVisible)
            return try await sqlite.count("contacts") == 100
        }
        #expect(totals.applied == 100)
        #expect(highest.value > 0 && highest.value <= 20, "at most 20 in flight, saw \(highest.value)")
        #expect(try observer().queueAttributes(["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"] == "0")
    }

    /// A message purged while in process: SQS refuses its visibility extensions. Each is tried again after half a
    /// timeout, not at every turn of the settler (which made a request every few milliseconds until the store
    /// finished with the message).
    @Test func refusedExtensionsAreNotRetriedAtEveryTurn() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "purged-\(UUID().uuidString.prefix(6))", attributes: ["VisibilityTimeout": "2"])
        try Self.send(server, queue, [.init(id: "p", body: Self.event(contact: 9, step: 0))])
        let (sqlite, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        let slow = SlowStore(inner: sqlite, delay: .seconds(6))
        let purged = StopFlag()
        let region = server.region, credentials = server.credentials, endpoint = server.url
        let totals = try await Self.run(config(server, queue, folder: folder), store: slow) {
            if slow.calls == 1, !purged.isSet {
                purged.set()
                let client = SQSClient(queueURL: queue, region: region, credentials: credentials, endpoint: endpoint)
                _ = try client.call("PurgeQueue", .object([("QueueUrl", .string(queue))]), timeout: .seconds(10))
            }
            return try await sqlite.count("contacts") == 1
        }
        #expect(purged.isSet)
        #expect(totals.received == 1)
        #expect(totals.requests < 60, "\(totals.requests) SQS requests in about 6 s")
    }

    /// A queue whose VisibilityTimeout is 0: the source receives with 30 s instead, so a message in process is not
    /// handed to the other poller again and again (each receive counting towards a redrive policy).
    @Test func aQueueWithoutVisibilityTimeoutIsReceivedWithOne() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "zero-\(UUID().uuidString.prefix(6))", attributes: ["VisibilityTimeout": "0"])
        try Self.send(server, queue, [.init(id: "z", body: Self.event(contact: 3, step: 0))])
        let (sqlite, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        let slow = SlowStore(inner: sqlite, delay: .seconds(3))
        let totals = try await Self.run(config(server, queue, folder: folder), store: slow) { try await sqlite.count("contacts") == 1 }
        #expect(totals.received == 1)
        #expect(totals.duplicates == 0)
    }

    @Test func fifoKeepsOrderWithinAGroup() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "ordered-\(UUID().uuidString.prefix(6)).fifo",
                                         attributes: ["FifoQueue": "true", "ContentBasedDeduplication": "false"])
        var messages: [SQSClient.OutgoingMessage] = []
        for step in 0..<12 {
            for contact in 0..<20 {
                messages.append(.init(id: "m\(messages.count % 10)", body: Self.event(contact: contact, step: step),
                                      groupId: "c\(contact)", deduplicationId: "d-\(contact)-\(step)"))
            }
        }
        let (store, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        let publish = messages
        // One poller: SQS locks a message group while any of its messages is in flight, so two pollers never hold
        // messages of one group at once; moto checks that lock without holding a lock of its own, and two concurrent
        // receives on a loaded machine can both take messages of one group (seen: step 11 applied before step 9).
        var settings = config(server, queue, folder: folder)
        settings.pollers = 1
        _ = try await Self.run(settings, store: store, whileRunning: {
            try Self.send(server, queue, publish)
        }) { try await store.count("ledger") >= 240 }
        for contact in 0..<20 {
            guard case let .found(snapshot) = try await store.contact("c\(contact)", list: 1) else {
                Issue.record("c\(contact) missing")
                continue
            }
            #expect(snapshot.purchases.map(\.amount.text) == ["1", "3", "5", "7", "9", "11"])
            #expect(snapshot.attribute("seq") == .number("10"))
        }
    }

    @Test func aFilterPolicyDropsWhatItDoesNotMatch() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "filtered-\(UUID().uuidString.prefix(6))")
        try Self.send(server, queue, (0..<20).map { index in
            .init(id: "m\(index % 10)", body: Self.snsEnvelope(Self.event(contact: index, step: 0), id: "f\(index)", resourceType: index % 2 == 0 ? "person" : "session"))
        })
        let (store, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        var settings = config(server, queue, folder: folder)
        settings.filterPolicy = try SNSFilterPolicy(parsing: #"{"resource_type":["person",{"prefix":"lea"}]}"#)
        let totals = try await Self.run(settings, store: store) { try await store.count("contacts") == 10 }
        #expect(try await store.count("contacts") == 10)
        #expect(totals.filtered == 10)
    }

    static let filterCases: [(policy: String, scope: SNSFilterPolicy.Scope, applied: Int)] = [
        (#"{"resource_type":["person","lead"]}"#, .messageAttributes, 2),
        (#"{"resource_type":[{"prefix":"lea"}]}"#, .messageAttributes, 2),
        (#"{"resource_type":[{"suffix":"-x"}]}"#, .messageAttributes, 1),
        (#"{"resource_type":[{"anything-but":["person","lead"]}]}"#, .messageAttributes, 4),
        (#"{"count":[{"numeric":[">",5,"<=",100]}]}"#, .messageAttributes, 3),
        (#"{"missing":[{"exists":false}]}"#, .messageAttributes, 6),
        (#"{"resource_type":[{"equals-ignore-case":"PERSON"}]}"#, .messageAttributes, 2),
        (#"{"$or":[{"resource_type":["event"]},{"count":[{"numeric":["<",5]}]}]}"#, .messageAttributes, 2),
        (#"{"region":[{"prefix":"eu-"}]}"#, .messageBody, 3),
    ]

    /// Every filter-policy operator, end to end: SNS-wrapped messages with attributes through moto.
    @Test(arguments: filterCases)
    func filterPolicyOperators(policy: String, scope: SNSFilterPolicy.Scope, applied: Int) async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "operator-\(UUID().uuidString.prefix(6))")
        let types = ["person", "lead", "session", "Person", "lead-x", "event"]
        let counts = [1, 5, 10, 50, 100, 150]
        let regions = ["eu-west", "us-east", "eu-north", "ap-south", "eu-west", "us-west"]
        try Self.send(server, queue, (0..<6).map { index in
            let payload = #"{"type":"USER_REGISTRATION","contactId":"f\#(index)","region":"\#(regions[index])"}"#
            var escaped: [UInt8] = []
            JSONWriter.writeString(payload, into: &escaped)
            let body = #"{"Type":"Notification","MessageId":"op-\#(index)","TopicArn":"arn:aws:sns:us-east-1:123456789012:t","Message":\#(String(decoding: escaped, as: UTF8.self)),"MessageAttributes":{"resource_type":{"Type":"String","Value":"\#(types[index])"},"count":{"Type":"Number","Value":"\#(counts[index])"}}}"#
            return .init(id: "m\(index)", body: body)
        })
        let (store, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        var settings = config(server, queue, folder: folder)
        settings.filterPolicy = try SNSFilterPolicy(parsing: policy, scope: scope)
        let credentials = server.credentials, region = server.region, endpoint = server.url
        let totals = try await Self.run(settings, store: store) {
            let client = SQSClient(queueURL: queue, region: region, credentials: credentials, endpoint: endpoint)
            let left = try client.queueAttributes(["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
            return left.values.allSatisfy { $0 == "0" }
        }
        #expect(try await store.count("contacts") == applied, "\(policy)")
        #expect(totals.filtered == 6 - applied)
    }

    /// Messages that trickle in come one per receive; their deletes still share batches (up to ten entries, sent
    /// at the latest 250 ms after the first of them committed), and the last ones go out when the source stops.
    @Test func shortReceivesShareDeleteBatches() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "trickle-\(UUID().uuidString.prefix(6))")
        let (sqlite, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        var settings = config(server, queue, folder: folder)
        settings.pollers = 1
        let totals = try await Self.run(settings, store: sqlite, whileRunning: {
            let client = SQSClient(queueURL: queue, region: server.region, credentials: server.credentials, endpoint: server.url)
            for index in 0..<30 {
                _ = try client.sendMessages([.init(id: "m\(index)", body: Self.event(contact: 900 + index, step: 0))])
                try await Task.sleep(for: .milliseconds(50))
            }
        }) { try await sqlite.count("contacts") == 30 }
        #expect(totals.applied == 30)
        // About one receive per message (plus a few empty polls); a delete request per receive would add 30 more.
        #expect(totals.requests < 52, "\(totals.requests) SQS requests for 30 messages")
        #expect(try Self.queueIsEmpty(server, queue))
    }

    @Test func stoppingDoesNotWaitForALongPoll() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "idle-\(UUID().uuidString.prefix(6))")
        let (store, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        var settings = config(server, queue, folder: folder)
        settings.waitTimeSeconds = 20
        let source = SQSSource(name: "sqs-test", config: settings, processor: { EventProcessor(mapping: Self.mapping) }, store: store,
                               logger: Logger(label: "test.sqs"))
        let group = ServiceGroup(services: [source], logger: Logger(label: "test.sqs"))
        let started = ContinuousClock.now
        let task = Task { try await group.run() }
        try await Task.sleep(for: .seconds(3)) // both pollers are inside a 20 s long poll now
        // The polls began after `started`, so neither can end by itself before this instant.
        let pollsEndBySelf = started + .seconds(settings.waitTimeSeconds)
        await group.triggerGracefulShutdown()
        try await task.value
        // SIGTERM must not wait out the long poll: the source is down before its polls could have ended.
        #expect(ContinuousClock.now < pollsEndBySelf, "the stop waited for the long poll")
    }

    @Test func aWrongSecretIsReportedClearlyWithoutSpinning() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "secret-\(UUID().uuidString.prefix(6))")
        let (store, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        var settings = config(server, queue, folder: folder)
        settings.credentials?.secretAccessKey = "wrong"
        let logs = CapturedLogs()
        let board = SourceStatusBoard()
        // The source stays up and says why it cannot poll (the daemon's other sources go on); it asks again only
        // after 30 s, and stops at once when asked.
        let (group, task) = Self.started(settings, store: store, logs: logs, statusBoard: board)
        let deadline = ContinuousClock.now + .seconds(20)
        while !logs.contains("SQS refused our credentials"), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(logs.contains("SQS refused our credentials: SignatureDoesNotMatch"))
        // After a refusal the poller backs off for 30 s before it asks again; it began just before the log line
        // was seen (polled every 50 ms), so it cannot end by itself before this instant.
        let backoffEndsBySelf = ContinuousClock.now + .seconds(29)
        guard case let .down(reason)? = board.snapshot.first?.state else {
            Issue.record("the source is not reported down: \(board.snapshot)")
            return
        }
        #expect(reason.contains("SignatureDoesNotMatch"))
        try await Task.sleep(for: .seconds(2))
        #expect(logs.count("SQS refused our credentials") == 1, "asked again within 2 s")
        #expect(logs.lines.allSatisfy { !$0.contains("wrong") && !$0.contains(server.credentials.accessKeyId) })
        await group.triggerGracefulShutdown()
        try await task.value
        // The stop ended the back-off; it did not wait it out.
        #expect(ContinuousClock.now < backoffEndsBySelf)
    }
}


extension SQSSourceTests {
    /// Credentials from the container endpoint (ECS, EKS Pod Identity), rotated while the source runs: the endpoint
    /// hands out a new key and the old one is deleted in IAM. moto then refuses the old key (InvalidClientTokenId);
    /// the source fetches again and goes on, losing nothing.
    @Test func credentialsRotatedAtTheContainerEndpointKeepTheSourceGoing() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "rotate-\(UUID().uuidString.prefix(6))")
        let user = "rotation-\(UUID().uuidString.prefix(8))"
        try server.createUser(user)
        let first = try server.createAccessKey(user: user), second = try server.createAccessKey(user: user)
        let serving = Mutex(first)
        let firstFetch = Mutex<ContinuousClock.Instant?>(nil)
        let endpoint = try LocalHTTPStub { request in
            guard request.headers["authorization"] == "agent-token" else { return .init(status: 401) }
            firstFetch.withLock { $0 = $0 ?? .now }
            let key = serving.withLock { $0 }
            return .init(body: #"{"AccessKeyId":"\#(key.accessKeyId)","SecretAccessKey":"\#(key.secretAccessKey)","Expiration":"2099-01-01T00:00:00Z"}"#)
        }
        defer { endpoint.stop() }
        let (store, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        var settings = config(server, queue, folder: folder)
        settings.credentials = nil
        settings.pollers = 1
        let environment = [
            "HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint.url + "/v1/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "agent-token",
        ]
        let logs = CapturedLogs()
        let (group, task) = Self.started(settings, store: store, logs: logs, environment: environment)
        func waitFor(_ count: Int) async throws {
            let deadline = ContinuousClock.now + .seconds(60)
            while try await store.count("ledger") < count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        }
        try Self.send(server, queue, (0..<50).map { .init(id: "m\($0 % 10)", body: Self.event(contact: $0, step: 0)) })
        try await waitFor(50)
        #expect(try await store.count("ledger") == 50)
        #expect(endpoint.requests.count == 1)
        // Past the provider's least interval between two unplanned fetches (5 s), so that the refusal fetches at once.
        try await Task.sleep(until: try #require(firstFetch.withLock { $0 }) + .seconds(6))
        serving.withLock { $0 = second }
        try server.deleteAccessKey(first.accessKeyId, user: user)
        try Self.send(server, queue, (50..<100).map { .init(id: "m\($0 % 10)", body: Self.event(contact: $0, step: 0)) })
        let rotated = ContinuousClock.now
        try await waitFor(100)
        // Well within the 30 s a poller waits after a refusal it cannot mend.
        #expect(ContinuousClock.now - rotated < .seconds(20))
        await group.triggerGracefulShutdown()
        try await task.value
        #expect(try await store.count("ledger") == 100)
        #expect(try await store.count("contacts") == 100)
        #expect(endpoint.requests.count == 2)
        #expect(logs.contains("AWS credentials renewed after SQS refused the previous ones"))
        #expect(logs.lines.allSatisfy { !$0.contains(first.secretAccessKey) && !$0.contains(second.secretAccessKey) })
        #expect(try Self.queueIsEmpty(server, queue))
    }

    @Test func aWebIdentityRunsTheSourceOnItsRolesCredentials() async throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "irsa-\(UUID().uuidString.prefix(6))")
        let role = try server.createRole("crm-irsa-\(UUID().uuidString.prefix(8))")
        // STS as AWS runs it: the daemon's request is unsigned, so this stand-in checks it and passes it on to moto's
        // STS signed (moto checks a signature even there); the answer is moto's own.
        let sts = try LocalHTTPStub { request in
            let form = String(decoding: request.body, as: UTF8.self)
            guard request.headers["authorization"] == nil, form.contains("Action=AssumeRoleWithWebIdentity"),
                form.contains("WebIdentityToken=eyJ.service-account.token"), form.contains("RoleSessionName=crm-pod-7")
            else { return .init(status: 400, body: "unexpected request: \(form)") }
            guard let answer = try? server.assumeRoleWithWebIdentity(form: request.body) else { return .init(status: 502) }
            return .init(status: answer.status, headers: [("Content-Type", "text/xml")], body: answer.body)
        }
        defer { sts.stop() }
        let (store, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        try "eyJ.service-account.token\n".write(to: folder.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        var settings = config(server, queue, folder: folder)
        settings.credentials = nil
        settings.pollers = 1
        let environment = [
            "HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true", "AWS_ROLE_ARN": role, "AWS_ROLE_SESSION_NAME": "crm-pod-7",
            "AWS_WEB_IDENTITY_TOKEN_FILE": folder.appendingPathComponent("token").path, "AWS_ENDPOINT_URL_STS": sts.url,
        ]
        let logs = CapturedLogs()
        let (group, task) = Self.started(settings, store: store, logs: logs, environment: environment)
        try Self.send(server, queue, (0..<20).map { .init(id: "w\($0)", body: Self.event(contact: $0, step: 0)) })
        let deadline = ContinuousClock.now + .seconds(60)
        while try await store.count("ledger") < 20, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        await group.triggerGracefulShutdown()
        try await task.value
        #expect(try await store.count("ledger") == 20)
        #expect(try await store.count("contacts") == 20)
        // One exchange: the role's credentials last an hour.
        #expect(sts.requests.count == 1)
        #expect(logs.lines.allSatisfy { !$0.contains("eyJ.service-account.token") })
        #expect(try Self.queueIsEmpty(server, queue))
    }
}

/// Runs the source and keeps its totals.
struct TotalsService: Service {
    let source: SQSSource
    let box: ResultBox

    func run() async throws {
        box.totals = try await source.runReturningTotals()
    }
}

final class ResultBox: @unchecked Sendable {
    // Written once by the service, read after the group ended.
    var totals: SQSSource.Totals?
}

/// A store that fails every batch (unavailable, transient) while `down` holds, then works. Its ping fails too,
/// unless `answersPings`: a store that is up but refuses the batches.
final class OutageStore: StoreDecorator, @unchecked Sendable {
    let inner: any CRMStore
    var base: any CRMStore { inner }
    let down = Atomic<Bool>(true)
    let answersPings: Bool
    private let failed = Atomic<Int>(0)

    init(inner: any CRMStore, answersPings: Bool = false) {
        self.inner = inner
        self.answersPings = answersPings
    }

    func ping() async throws {
        if down.load(ordering: .relaxed) && !answersPings { throw StoreError(.unavailable, "the test's store is down") }
        try await inner.ping()
    }

    var failures: Int { failed.load(ordering: .relaxed) }

    func apply(_ events: [PlannedEvent], now: Timestamp, timing: CommitTiming) async throws -> [EventOutcome] {
        if down.load(ordering: .relaxed) {
            failed.add(1, ordering: .relaxed)
            throw StoreError(.unavailable, "the test's store is down")
        }
        return try await inner.apply(events, now: now, timing: timing)
    }
    func settled(_ events: [PlannedEvent], _ result: Result<[EventOutcome], any Error>) async {}
}

/// The largest of the values noted so far.
final class HighestSeen: Sendable {
    private let highest = Mutex(0)
    func note(_ value: Int) { highest.withLock { $0 = max($0, value) } }
    var value: Int { highest.withLock { $0 } }
}

/// A store that takes its time, to outlast visibility timeouts.
final class SlowStore: StoreDecorator, @unchecked Sendable {
    // `calls` is guarded by `lock`.
    let inner: any CRMStore
    var base: any CRMStore { inner }
    let delay: Duration
    private let lock = NSLock()
    private var count = 0

    init(inner: any CRMStore, delay: Duration) {
        self.inner = inner
        self.delay = delay
    }

    var calls: Int { lock.withLock { count } }

    func apply(_ events: [PlannedEvent], now: Timestamp, timing: CommitTiming) async throws -> [EventOutcome] {
        lock.withLock { count += 1 }
        try await Task.sleep(for: delay)
        return try await inner.apply(events, now: now, timing: timing)
    }
    func settled(_ events: [PlannedEvent], _ result: Result<[EventOutcome], any Error>) async {}
}
