import CRMCore
@testable import CRMStorePostgres
@testable import CRMStoreSQLite
import CRMTestSupport
import Foundation
import GRDB
import Logging
import PostgresNIO
import Synchronization
import Testing

/// The stores the contract suite runs against: every `@Test(arguments: StoreKind.allCases)` runs once per store,
/// so neither can drift from the `CRMStore` contract. `CRM_TEST_STORES=sqlite` (names, comma-separated) runs it against
/// those stores only: `make test-sanitize` runs the unit tests without a PostgreSQL server.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    static var allCases: [StoreKind] {
        let every: [StoreKind] = [.sqlite, .postgres]
        guard let only = ProcessInfo.processInfo.environment["CRM_TEST_STORES"] else { return every }
        let names = only.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        return every.filter { names.contains($0.rawValue) }
    }

    var testDescription: String { rawValue }
}

/// A fresh, empty store (a SQLite file in a temporary folder, or a PostgreSQL schema of its own on the test
/// server), fed through the real decoder and planner.
final class StoreHarness: Sendable {
    let kind: StoreKind
    let store: any CRMStore
    let processor: EventProcessor
    private let sqlite: SQLiteCRMStore?
    private let postgres: PostgresCRMStore?
    let folder: URL?
    private let pool: Task<Void, any Error>?
    /// The PostgreSQL schema the store lives in.
    let schema: String?

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

    static let logger = Logger(label: "test.store")

    init(_ kind: StoreKind, actions: [EventType: [Action]] = StoreHarness.standardActions, sqliteBusyTimeoutMilliseconds: Int = 5_000) async throws {
        self.kind = kind
        processor = EventProcessor(mapping: Mapping(attributes: Self.attributes, actions: actions), redeliveryWindowSeconds: 3600)
        switch kind {
        case .sqlite:
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-store-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            // A recent ledger of 3 keys: every contract test then also runs across merge rounds into the large
            // ledger (`RecentLedger`), which the default of 100,000 keys would never reach here.
            let store = try SQLiteCRMStore(
                path: folder.appendingPathComponent("crm.sqlite").path, busyTimeoutMilliseconds: sqliteBusyTimeoutMilliseconds, recentLedgerLimit: 3
            )
            (self.folder, sqlite, postgres, pool, schema, self.store) = (folder, store, nil, nil, nil, store)
        case .postgres:
            let server = try PostgresTestServer.shared()
            let schema = "t_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
            try await Self.admin(server) { try await $0.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA \(schema)"), logger: Self.logger) }
            var configuration = PostgresClient.Configuration(
                host: server.host, port: server.port, username: server.username, password: server.password, database: server.database, tls: .disable
            )
            configuration.options.additionalStartupParameters = [("search_path", schema)]
            // Few connections: a test applies one batch at a time, and every connection is a handshake.
            configuration.options.maximumConnections = 2
            let store = PostgresCRMStore(configuration: configuration, logger: Self.logger)
            let pool = Task { try await store.run() }
            do {
                // Generous: the whole test suite runs at once on two cores.
                try await store.prepare(waitingAtMost: .seconds(120))
            } catch {
                pool.cancel()
                throw error
            }
            (folder, sqlite, postgres, self.pool, self.schema, self.store) = (nil, nil, store, pool, schema, store)
        }
    }

    /// Runs `body` on a connection of its own to the test server's database.
    static func admin<T: Sendable>(_ server: PostgresTestServer, schema: String? = nil, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        var configuration = PostgresConnection.Configuration(
            host: server.host, port: server.port, username: server.username, password: server.password, database: server.database, tls: .disable
        )
        if let schema { configuration.options.additionalStartupParameters = [("search_path", schema)] }
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        do {
            let result = try await body(connection)
            try await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// The SQLite store itself (SQLite-only tests).
    var sqliteStore: SQLiteCRMStore { sqlite! }
    var sqlitePath: String { sqlite!.path }

    func remove() {
        try? sqlite?.close()
        if let folder { try? FileManager.default.removeItem(at: folder) }
        pool?.cancel()
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

    /// Rows in a table of the store.
    func count(_ table: String) async throws -> Int {
        if let sqlite { return try await sqlite.count(table) }
        return try await postgres!.count(table)
    }

    /// Transactions the store ran again with a savepoint per event because it refused one of their events.
    var transactionsRedoneWithSavepoints: Int {
        if let sqlite { return sqlite.counters.transactionsRedoneWithSavepoints.load(ordering: .relaxed) }
        return postgres!.counters.transactionsRedoneWithSavepoints.load(ordering: .relaxed)
    }

    /// Makes the database refuse enrolments in `journey` with `message`, as a constraint would (a trigger installed
    /// from a connection of its own).
    func refuseJourney(_ journey: Int, message: String) async throws {
        switch kind {
        case .sqlite:
            let side = try DatabaseQueue(path: sqlite!.path)
            try await side.write { db in
                try db.execute(sql: """
                    CREATE TRIGGER refuse_\(journey) BEFORE INSERT ON journey_enrollments WHEN NEW.journey_id = \(journey)
                    BEGIN SELECT RAISE(ABORT, '\(message)'); END
                    """)
            }
            try side.close()
        case .postgres:
            try await Self.admin(try PostgresTestServer.shared(), schema: schema) { connection in
                try await connection.query(PostgresQuery(unsafeSQL: """
                    CREATE FUNCTION refuse_\(journey)() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN
                        IF NEW.journey_id = \(journey) THEN RAISE EXCEPTION '\(message)' USING ERRCODE = 'check_violation'; END IF;
                        RETURN NEW;
                    END $$
                    """), logger: Self.logger)
                try await connection.query(PostgresQuery(unsafeSQL: """
                    CREATE TRIGGER refuse_\(journey) BEFORE INSERT ON journey_enrollments FOR EACH ROW EXECUTE FUNCTION refuse_\(journey)()
                    """), logger: Self.logger)
            }
        }
    }

    /// What the store keeps, to scan for personal values: for SQLite the bytes of every file of the database (erased
    /// values are overwritten in place); for PostgreSQL every row of every table as text (old row versions stay in
    /// its files until VACUUM reuses the space: see Docs/SCALING.md).
    func storedBytes() async throws -> Data {
        if let path = sqlite?.path {
            var all = Data()
            for suffix in ["", "-wal", "-shm", "-journal"] {
                if let data = FileManager.default.contents(atPath: path + suffix) { all.append(data) }
            }
            return all
        }
        let schema = schema!
        return try await Self.admin(try PostgresTestServer.shared(), schema: schema) { connection in
            var all = Data()
            let tables = try await connection.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = \(schema)", logger: Self.logger
            ).get().rows.map { try $0.decode(String.self) }
            for table in tables {
                for row in try await connection.query(PostgresQuery(unsafeSQL: "SELECT t::text FROM \(table) t"), logger: Self.logger).get().rows {
                    all.append(contentsOf: Array(try row.decode(String.self).utf8))
                }
            }
            return all
        }
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
