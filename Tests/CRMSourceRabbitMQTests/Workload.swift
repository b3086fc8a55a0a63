import AMQPClient
import CRMConfig
import CRMCore
import CRMSourceRabbitMQ
import CRMStoreSQLite
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Per-contact sequences of default-format events, interleaved across contacts as a real stream is, with a
/// final state that proves order: purchase rows must appear in sequence, the last update and consent must win.
struct Workload {
    let contacts: Int
    let perContact: Int
    var total: Int { contacts * perContact }

    func contactId(_ index: Int) -> String { "contact-\(index)" }

    func event(contact: Int, step: Int) -> String {
        let id = contactId(contact)
        if step == 0 { return #"{"type":"USER_REGISTRATION","contactId":"\#(id)","properties":{"firstName":"N\#(contact)"}}"# }
        switch step % 3 {
        case 1: return #"{"type":"DEPOSIT_APPROVED","contactId":"\#(id)","timestamp":"2024-01-01T00:00:00Z","amount":\#(step).50}"#
        case 2: return #"{"type":"USER_UPDATE","contactId":"\#(id)","properties":{"seq":\#(step)}}"#
        default: return #"{"type":"USER_CONSENT_UPDATE","contactId":"\#(id)","channel":"EMAIL","consented":\#(step % 2 == 0)}"#
        }
    }

    /// Every event, round-robin over contacts, with message ids when asked.
    func messages(queue: String, withIds: Bool, idPrefix: String = "m") -> [AMQPPublisher.Message] {
        var messages: [AMQPPublisher.Message] = []
        messages.reserveCapacity(total)
        for step in 0..<perContact {
            for contact in 0..<contacts {
                var properties = AMQPProperties(contentType: "application/json", deliveryMode: 2)
                if withIds { properties.messageId = "\(idPrefix)-\(contact)-\(step)" }
                messages.append(.init(body: Array(event(contact: contact, step: step).utf8), routingKey: queue, properties: properties))
            }
        }
        return messages
    }

    /// Every event for a sharded topology: published to its exchange with the contact id as routing key (or, with
    /// `hashHeader`, in that header, the routing key left meaningless).
    func shardedMessages(exchange: String, hashHeader: String? = nil, idPrefix: String = "m") -> [AMQPPublisher.Message] {
        var messages: [AMQPPublisher.Message] = []
        messages.reserveCapacity(total)
        for step in 0..<perContact {
            for contact in 0..<contacts {
                var properties = AMQPProperties(contentType: "application/json", messageId: "\(idPrefix)-\(contact)-\(step)", deliveryMode: 2)
                if let hashHeader { properties.headers[hashHeader] = .string(contactId(contact)) }
                messages.append(.init(body: Array(event(contact: contact, step: step).utf8), exchange: exchange,
                                      routingKey: hashHeader == nil ? contactId(contact) : "any", properties: properties))
            }
        }
        return messages
    }

    var depositSteps: [Int] { (1..<perContact).filter { $0 % 3 == 1 } }
    var lastUpdateStep: Int? { (1..<perContact).last { $0 % 3 == 2 } }
    var lastConsent: Bool? { (1..<perContact).last { $0 % 3 == 0 }.map { $0 % 2 == 0 } }

    static let attributes = [AttributeDefinition(name: "firstName", headers: ["firstName"]), AttributeDefinition(name: "seq", headers: ["seq"])]
    static let actions: [EventType: [Action]] = [
        .userRegistration: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true)],
        .depositApproved: [.createPurchaseRow(list: 1)],
        .userUpdate: [.updateContact(list: 1)],
        .userConsentUpdate: [.updateContact(list: 1)],
    ]
    static let mappingYAML = """
        attributes:
          - { name: firstName, headers: [firstName] }
          - { name: seq, headers: [seq] }
        mappings:
          USER_REGISTRATION: [ { create_contact: { list: 1 } } ]
          DEPOSIT_APPROVED: [ { create_purchase_row: { list: 1 } } ]
          USER_UPDATE: [ { update_contact: { list: 1 } } ]
          USER_CONSENT_UPDATE: [ { update_contact: { list: 1 } } ]
        """
    static var processor: EventProcessor { EventProcessor(mapping: Mapping(attributes: attributes, actions: actions)) }

    /// Problems with the final state, for `copies` deliveries of every event (1 unless duplicates were meant to apply).
    func problems(in store: any CRMStore, depositCopies: Int = 1) async throws -> [String] {
        var problems: [String] = []
        for contact in 0..<contacts {
            guard case let .found(snapshot) = try await store.contact(contactId(contact), list: 1) else {
                problems.append("\(contactId(contact)) missing")
                continue
            }
            let amounts = snapshot.purchases.map(\.amount.text)
            let expected = depositSteps.flatMap { step in Array(repeating: "\(step).50", count: depositCopies) }
            if amounts != expected && depositCopies == 1 { problems.append("\(contactId(contact)) purchases \(amounts) != \(expected)") }
            if depositCopies > 1 && amounts.sorted() != expected.sorted() { problems.append("\(contactId(contact)) purchases \(amounts.count) != \(expected.count)") }
            if let last = lastUpdateStep, snapshot.attribute("seq") != .number(String(last)) {
                problems.append("\(contactId(contact)) seq \(String(describing: snapshot.attribute("seq"))) != \(last)")
            }
            if let consent = lastConsent, snapshot.consents[.email] != consent {
                problems.append("\(contactId(contact)) consent \(String(describing: snapshot.consents[.email])) != \(consent)")
            }
            if problems.count > 10 { break }
        }
        return problems
    }
}

/// A store put in front of a test's SQLite store (`RunningSource`'s `storeInFront`) that changes `apply` (and
/// perhaps `makeOrderedSubmitter`) and passes everything else to it.
protocol StoreInFront: CRMStore {
    var base: SQLiteCRMStore { get }
}

extension StoreInFront {
    func contact(_ contactId: String, list: Int?) async throws -> ContactLookupResult { try await base.contact(contactId, list: list) }
    func pruneLedger(before cutoff: Timestamp) async throws -> Int { try await base.pruneLedger(before: cutoff) }
    func incomingRequest(_ eventId: String) async throws -> String? { try await base.incomingRequest(eventId) }
    func integrationEndpoint(source: String, proposed: String) async throws -> String {
        try await base.integrationEndpoint(source: source, proposed: proposed)
    }
    func ping() async throws { try await base.ping() }
}

/// A value a `@Sendable` closure sets once (the store `storeInFront` made) for the test to read afterwards.
final class Captured<Value: Sendable>: Sendable {
    let value = Mutex<Value?>(nil)
}

/// A source running in this process under a ServiceGroup, against a SQLite store in a temporary folder.
final class RunningSource: @unchecked Sendable {
    // Set once in init; the task is awaited once in stop().
    let folder: URL
    let store: SQLiteCRMStore
    let config: RabbitMQSourceConfig
    let group: ServiceGroup
    let task: Task<Void, any Error>

    init(queue: String, node: RabbitMQTestNode, lanes: Int = 4, prefetch: Int = 500, heartbeat: Int = 30,
         deadLetter: RabbitMQSourceConfig.DeadLetterTarget? = nil, maxRedeliveries: Int = 5, folder: URL? = nil,
         logger: Logger = Logger(label: "test.rabbitmq"), processor: EventProcessor = Workload.processor,
         onRefused: RabbitMQSourceConfig.OnRefused = .deadLetter, replies: RabbitMQSourceConfig.ReplyTarget? = nil,
         sharding: RabbitMQSourceConfig.Sharding? = nil, declare: RabbitMQSourceConfig.QueueDeclaration? = nil, name: String = "test",
         sharedStore: SQLiteCRMStore? = nil, storeInFront: (@Sendable (SQLiteCRMStore) -> any CRMStore)? = nil) throws {
        let folder = folder ?? FileManager.default.temporaryDirectory.appendingPathComponent("crm-rmq-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        self.folder = folder
        store = try sharedStore ?? SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        var config = RabbitMQSourceConfig(
            endpoint: node.endpoint, queue: queue, declare: declare, prefetch: prefetch, lanes: lanes, maxRedeliveries: maxRedeliveries,
            heartbeatSeconds: heartbeat, deadLetter: deadLetter
        )
        config.onRefused = onRefused
        config.replies = replies
        config.sharding = sharding
        self.config = config
        let source = RabbitMQSource(
            name: name, config: config, processor: { processor }, store: storeInFront?(store) ?? store, logger: logger, retryBudget: .seconds(10)
        )
        group = ServiceGroup(services: [source], logger: logger)
        let group = group
        task = Task { try await group.run() }
    }

    func count(_ table: String) async throws -> Int { try await store.count(table) }

    /// Waits until `condition` holds, polling, for at most `timeout`.
    func wait(timeout: Duration = .seconds(90), until condition: @Sendable () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await condition()
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }

    func remove() {
        try? store.close()
        try? FileManager.default.removeItem(at: folder)
    }
}

extension RabbitMQTestNode {
    /// A new queue `crm.test.<name>.<random>` holding every event of `workload` (persistent, with message ids).
    func queueHolding(_ workload: Workload, name: String) throws -> String {
        let queue = "crm.test.\(name).\(UUID().uuidString.prefix(6))"
        try freshQueue(queue)
        let publisher = try publisher()
        defer { publisher.close() }
        try publisher.publishAll(workload.messages(queue: queue, withIds: true))
        return queue
    }
}
