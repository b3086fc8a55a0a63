import CRMCore
import CRMStoreSQLite
import Foundation

/// A SQLite store in a fresh temporary folder, fed through the real decoder and planner.
struct StoreHarness {
    let folder: URL
    let store: SQLiteCRMStore
    let processor: EventProcessor
    var path: String { store.path }

    static let attributes = [
        AttributeDefinition(name: "firstName", headers: ["firstName", "first_name"]),
        AttributeDefinition(name: "lastName", headers: ["lastName"]),
        AttributeDefinition(name: "email", headers: ["email"]),
        AttributeDefinition(name: "vip", headers: ["vip"]),
    ]

    static let standardActions: [EventType: [Action]] = [
        .userRegistration: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: false), .enterJourney(journey: 10)],
        .userUpdate: [.updateContact(list: 1)],
        .userConsentUpdate: [.updateContact(list: 1)],
        .userBlocked: [.tempBlockContact(list: 1, findBy: .originalId, duration: 30, unit: .days)],
        .depositApproved: [.createPurchaseRow(list: 1)],
        .depositRequested: [.createPurchaseRow(list: 1)],
        .withdrawalApproved: [.createPurchaseRow(list: 1), .setProperty(list: 1, property: "vip", value: .bool(true))],
    ]

    init(actions: [EventType: [Action]] = StoreHarness.standardActions, busyTimeoutMilliseconds: Int = 5_000) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        processor = EventProcessor(mapping: Mapping(attributes: Self.attributes, actions: actions), redeliveryWindowSeconds: 3600)
    }

    func remove() {
        try? store.close()
        try? FileManager.default.removeItem(at: folder)
    }

    static let t0 = Timestamp(secondsSinceEpoch: 1_700_000_000)

    func plan(_ json: String, id: String? = nil, redelivered: Bool = false, at: Timestamp = t0) throws -> PlannedEvent {
        let message = IncomingMessage(
            body: Array(json.utf8), identity: id.map { .messageId($0) } ?? .content, mayBeRedelivery: redelivered,
            receivedAt: at, source: "test"
        )
        switch processor.prepare(message) {
        case let .event(event): return event
        case let .rejected(error): throw error
        case let .skipped(type): throw EventError(.unresolvable, field: type.rawValue, reason: "skipped")
        }
    }

    /// Applies one message as its own batch.
    @discardableResult
    func send(_ json: String, id: String? = nil, redelivered: Bool = false, at: Timestamp = t0) async throws -> EventOutcome {
        let event = try plan(json, id: id, redelivered: redelivered, at: at)
        return try await store.apply([event], now: at)[0]
    }

    func contact(_ id: String, list: Int? = 1) async throws -> ContactSnapshot? {
        if case let .found(snapshot) = try await store.contact(id, list: list) { return snapshot }
        return nil
    }

    /// The bytes of every file SQLite keeps for the database.
    func databaseBytes() throws -> Data {
        var all = Data()
        for suffix in ["", "-wal", "-shm", "-journal"] {
            if let data = FileManager.default.contents(atPath: path + suffix) { all.append(data) }
        }
        return all
    }
}

func registration(_ id: String, _ properties: String = "{}") -> String {
    #"{"type":"USER_REGISTRATION","contactId":"\#(id)","properties":\#(properties)}"#
}

func consent(_ id: String, _ channel: String, _ consented: Bool) -> String {
    #"{"type":"USER_CONSENT_UPDATE","contactId":"\#(id)","channel":"\#(channel)","consented":\#(consented)}"#
}

func deposit(_ id: String, amount: String, transaction: String?, type: String = "DEPOSIT_APPROVED", at: String = "2020-02-05T13:20:00") -> String {
    let tx = transaction.map { #","transactionId":"\#($0)""# } ?? ""
    return #"{"type":"\#(type)","contactId":"\#(id)","timestamp":"\#(at)","amount":\#(amount)\#(tx),"vendor":"v1","paymentType":"VISA","currency":"EUR"}"#
}
