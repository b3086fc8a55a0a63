@testable import CRMStorePostgres
import CRMCore
import CRMTestSupport
import Foundation
import Logging
import PostgresNIO
import NIOCore
import Testing

/// The schema's migrations against Debian's PostgreSQL, started by `scripts/postgres-node.sh`.
@Suite("PostgreSQL migrations", .serialized)
struct PostgresMigrationTests {
    let logger = Logger(label: "test.postgres")

    func connect(_ server: PostgresTestServer, database: String? = nil) async throws -> PostgresConnection {
        let configuration = PostgresConnection.Configuration(
            host: server.host, port: server.port, username: server.username, password: server.password,
            database: database ?? server.database, tls: .disable
        )
        return try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
    }

    /// A database of its own for one test, dropped afterwards.
    func freshDatabase(_ server: PostgresTestServer) async throws -> String {
        let name = "crm_test_\(UUID().uuidString.prefix(8).lowercased())"
        let admin = try await connect(server)
        do {
            try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        } catch {
            try? await admin.close()
            throw error
        }
        try await admin.close()
        return name
    }

    @Test func twoDaemonsStartingAtOnceApplyTheMigrationsOnce() async throws {
        let server = try PostgresTestServer.shared()
        let database = try await freshDatabase(server)
        let first = try await connect(server, database: database)
        let second = try await connect(server, database: database)
        async let a = PostgresSchema.migrate(first, logger: logger)
        async let b = PostgresSchema.migrate(second, logger: logger)
        let (appliedByFirst, appliedBySecond) = try await (a, b)
        #expect((appliedByFirst + appliedBySecond).sorted() == PostgresSchema.migrations.map(\.version))
        #expect(appliedByFirst.isEmpty || appliedBySecond.isEmpty)
        // Run again: nothing left to apply, and the tombstone key made once.
        #expect(try await PostgresSchema.migrate(first, logger: logger) == [])
        var keys = 0
        for try await length in try await first.query("SELECT length(value) FROM meta WHERE key = 'tombstone_key'", logger: logger).decode(Int.self) {
            #expect(length == 32)
            keys += 1
        }
        #expect(keys == 1)
        var versions: [Int] = []
        for try await version in try await first.query("SELECT version FROM schema_migrations ORDER BY version", logger: logger).decode(Int.self) {
            versions.append(version)
        }
        #expect(versions == PostgresSchema.migrations.map(\.version))
        try await first.close()
        try await second.close()
    }

    /// `count` connections to `database`, closed however `body` ends (a connection deinitialized open traps).
    func withConnections<Result>(
        _ count: Int, to database: String, _ body: ([PostgresConnection]) async throws -> Result
    ) async throws -> Result {
        let server = try PostgresTestServer.shared()
        var connections: [PostgresConnection] = []
        do {
            for _ in 0..<count { connections.append(try await connect(server, database: database)) }
            let result = try await body(connections)
            for connection in connections { try await connection.close() }
            return result
        } catch {
            for connection in connections { try? await connection.close() }
            throw error
        }
    }

    /// Rows as a table of the given length, one per contact, with transaction ids (what the purchases index covers).
    func fillPurchases(_ connection: PostgresConnection, rows: Int) async throws {
        try await connection.query(PostgresQuery(unsafeSQL: """
            INSERT INTO purchases (list_id, contact_id, kind, status, amount, transaction_id, occurred_at)
            SELECT 1, 'c' || n, 'deposit', 'approved', '1.00', 't' || n, n FROM generate_series(1, \(rows)) AS n
            """), logger: logger)
    }

    /// The indexes of `purchases`, by name, with whether each is valid.
    func purchaseIndexes(_ connection: PostgresConnection) async throws -> [String: Bool] {
        var indexes: [String: Bool] = [:]
        for try await (name, valid) in try await connection.query("""
            SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = 'purchases'::regclass
            """, logger: logger).decode((String, Bool).self) {
            indexes[name] = valid
        }
        return indexes
    }

    /// Migration 2 rebuilds the purchases index during a rolling upgrade, while older daemons still write purchases:
    /// built concurrently, it leaves the table writable. A plain DROP INDEX and CREATE INDEX in a transaction held
    /// an exclusive lock for the whole build, and this insert (with a 200 ms lock timeout) failed.
    @Test func theKindIndexIsBuiltWhilePurchasesStayWritable() async throws {
        let server = try PostgresTestServer.shared()
        let database = try await freshDatabase(server)
        try await withConnections(3, to: database) { connections in
            let (migrator, writer, watcher) = (connections[0], connections[1], connections[2])
            #expect(try await PostgresSchema.migrate(migrator, logger: logger, through: 1) == [1])
            try await fillPurchases(writer, rows: 600_000)
            let migration = Task { try await PostgresSchema.migrate(migrator, logger: logger, through: 2) }
            // Waits until the build runs (pg_stat_progress_create_index), then writes a purchase.
            var building = false
            let deadline = ContinuousClock.now + .seconds(60)
            while !building, ContinuousClock.now < deadline {
                for try await count in try await watcher.query(
                    "SELECT count(*)::int FROM pg_stat_progress_create_index WHERE relid = 'purchases'::regclass", logger: logger
                ).decode(Int.self) {
                    building = count > 0
                }
                if !building { try await Task.sleep(for: .milliseconds(5)) }
            }
            #expect(building, "the index build was not seen")
            try await writer.query("SET lock_timeout = '200ms'", logger: logger)
            do {
                let inserted = try await writer.query("""
                    INSERT INTO purchases (list_id, contact_id, kind, status, amount, transaction_id, occurred_at)
                    VALUES (1, 'during', 'deposit', 'approved', '2.00', 'during-build', 1) RETURNING id
                    """, logger: logger).collect().count
                #expect(inserted == 1)
            } catch {
                Issue.record("a purchase could not be written during the build: \(String(reflecting: error))")
            }
            #expect(try await migration.value == [2])
            #expect(try await purchaseIndexes(watcher) == ["purchases_pkey": true, "purchases_by_contact": true, "purchases_one_per_transaction_kind_status": true])
        }
    }

    /// A run that stopped after the new index was built and the old one dropped, before it was recorded: the next
    /// start keeps the new index (then the table's only unique one) instead of dropping it to build it again, which
    /// let duplicates in meanwhile.
    @Test func aValidIndexFromAnInterruptedRunIsKept() async throws {
        let server = try PostgresTestServer.shared()
        let database = try await freshDatabase(server)
        try await withConnections(1, to: database) { connections in
            let connection = connections[0]
            #expect(try await PostgresSchema.migrate(connection, logger: logger, through: 1) == [1])
            try await fillPurchases(connection, rows: 10)
            try await connection.query(PostgresQuery(unsafeSQL: """
                CREATE UNIQUE INDEX CONCURRENTLY purchases_one_per_transaction_kind_status
                    ON purchases (list_id, contact_id, transaction_id, kind, status) WHERE transaction_id IS NOT NULL
                """), logger: logger)
            try await connection.query("DROP INDEX CONCURRENTLY purchases_one_per_transaction_status", logger: logger)
            func oid() async throws -> Int {
                var found = 0
                for try await value in try await connection.query(
                    "SELECT oid::int FROM pg_class WHERE relname = 'purchases_one_per_transaction_kind_status'", logger: logger
                ).decode(Int.self) { found = value }
                return found
            }
            let before = try await oid()
            #expect(try await PostgresSchema.migrate(connection, logger: logger, through: 2) == [2])
            #expect(try await oid() == before)
            #expect(try await purchaseIndexes(connection) == ["purchases_pkey": true, "purchases_by_contact": true, "purchases_one_per_transaction_kind_status": true])
        }
    }

    /// A concurrent build that was interrupted leaves an invalid index under the new name; the next start drops it
    /// and builds it again, then records the migration.
    @Test func anInterruptedIndexBuildIsRedone() async throws {
        let server = try PostgresTestServer.shared()
        let database = try await freshDatabase(server)
        try await withConnections(1, to: database) { connections in
            let connection = connections[0]
            #expect(try await PostgresSchema.migrate(connection, logger: logger, through: 1) == [1])
            try await fillPurchases(connection, rows: 2)
            // A unique index on a constant fails on two rows, and a failed concurrent build stays behind, invalid.
            await #expect(throws: (any Error).self) {
                try await connection.query(PostgresQuery(unsafeSQL: "CREATE UNIQUE INDEX CONCURRENTLY purchases_one_per_transaction_kind_status ON purchases ((1))"), logger: logger)
            }
            #expect(try await purchaseIndexes(connection)["purchases_one_per_transaction_kind_status"] == false)
            #expect(try await PostgresSchema.migrate(connection, logger: logger, through: 2) == [2])
            #expect(try await purchaseIndexes(connection) == ["purchases_pkey": true, "purchases_by_contact": true, "purchases_one_per_transaction_kind_status": true])
            for try await definition in try await connection.query(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'purchases_one_per_transaction_kind_status'", logger: logger
            ).decode(String.self) {
                #expect(definition.contains("(list_id, contact_id, transaction_id, kind, status)"))
            }
        }
    }
}

/// The store's first operations against the real server.
@Suite("PostgreSQL store", .serialized)
struct PostgresStoreTests {
    let logger = Logger(label: "test.postgres")

    /// A store on a database of its own, its pool running for the duration of `body`.
    func withStore(_ body: (PostgresCRMStore) async throws -> Void) async throws {
        let server = try PostgresTestServer.shared()
        let database = try await PostgresMigrationTests().freshDatabase(server)
        let store = PostgresCRMStore(configuration: .init(
            host: server.host, port: server.port, username: server.username, password: server.password, database: database, tls: .disable
        ), logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            try await store.migrate()
            try await body(store)
        }
    }

    @Test func integrationEndpointsAreMadeOnceAcrossConcurrentProposals() async throws {
        try await withStore { store in
            try await store.ping()
            async let first = store.integrationEndpoint(source: "shop", proposed: "endpoint-aaaaaaaa")
            async let second = store.integrationEndpoint(source: "shop", proposed: "endpoint-bbbbbbbb")
            let (a, b) = try await (first, second)
            #expect(a == b)
            #expect(["endpoint-aaaaaaaa", "endpoint-bbbbbbbb"].contains(a))
            #expect(try await store.integrationEndpoint(source: "shop", proposed: "endpoint-cccccccc") == a)
            #expect(try await store.integrationEndpoint(source: "other", proposed: "endpoint-dddddddd") == "endpoint-dddddddd")
        }
    }

    @Test func pruningRemovesOnlyOldLedgerEntriesAndRequests() async throws {
        try await withStore { store in
            for (index, time) in [100, 200, 300].enumerated() {
                let key = ByteBuffer(bytes: [UInt8(index)])
                try await store.client.query("INSERT INTO ledger (key, processed_at) VALUES (\(key), \(Int64(time)))", logger: logger)
                try await store.client.query("""
                    INSERT INTO incoming_requests (event_id, source, endpoint_id, event_type, received_at, record)
                    VALUES (\("e\(index)"), 'shop', 'x', 'CUSTOM_ORDER', \(Int64(time)), \("{\"n\":\(index)}"))
                    """, logger: logger)
            }
            #expect(try await store.pruneLedger(before: Timestamp(microsecondsSinceEpoch: 250)) == 2)
            #expect(try await store.count("ledger") == 1)
            #expect(try await store.count("incoming_requests") == 1)
            #expect(try await store.incomingRequest("e2") == "{\"n\":2}")
            #expect(try await store.incomingRequest("e0") == nil)
        }
    }
}

/// Two stores on one database, as two daemons run them: concurrent writes to one contact and one message delivered
/// to both.
@Suite("PostgreSQL store: two daemons at once")
struct PostgresConcurrencyTests {
    /// Two stores (two pools) on the same schema.
    static func twoStores() async throws -> (StoreHarness, PostgresCRMStore, Task<Void, any Error>) {
        let h = try await StoreHarness(.postgres)
        let server = try PostgresTestServer.shared()
        var configuration = PostgresClient.Configuration(
            host: server.host, port: server.port, username: server.username, password: server.password, database: server.database, tls: .disable
        )
        configuration.options.additionalStartupParameters = [("search_path", h.schema!)]
        let second = PostgresCRMStore(configuration: configuration, logger: StoreHarness.logger)
        let pool = Task { try await second.run() }
        try await second.prepare(waitingAtMost: .seconds(120))
        return (h, second, pool)
    }

    static let defaults = NewContactDefaults(emailSubscribed: true, mobileSubscribed: true)

    /// `mergeContact` reads the contact's newest record time, then writes: two daemons must not interleave there, or
    /// an older record's values overwrite a newer one's. (The upsert before the read already locks an existing
    /// contact's row; the per-contact advisory lock covers the rest, see the next test.)
    @Test func concurrentMergesForOneContactKeepTheNewestValues() async throws {
        let (h, second, pool) = try await Self.twoStores()
        defer { pool.cancel(); h.remove() }
        let versions = Array(1...400).shuffled()
        func merge(_ version: Int) -> PlannedEvent {
            PlannedEvent(
                key: IdempotencyKey(value: "merge-\(version)", check: .always), type: .userUpdate, contactId: "shared",
                operations: [.mergeContact(
                    list: 1, contactId: "shared",
                    attributes: [AttributeValue(name: "firstName", value: .string("v\(version)")), AttributeValue(name: "lastName", value: .string("v\(version)"))],
                    asOf: Timestamp(microsecondsSinceEpoch: Int64(version)), createWith: Self.defaults
                )]
            )
        }
        let stores: [any CRMStore] = [h.store, second]
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Four writers (two per daemon), one event per transaction, so transactions interleave as much as they can.
            for writer in 0..<4 {
                let store = stores[writer % 2]
                let mine = versions.enumerated().filter { $0.offset % 4 == writer }.map(\.element)
                group.addTask {
                    for version in mine {
                        let outcome = try await store.apply([merge(version)], now: StoreHarness.t0)
                        #expect(outcome == [.applied(notes: [])])
                    }
                }
            }
            try await group.waitForAll()
        }
        let contact = try #require(try await h.contact("shared"))
        #expect(contact.attribute("firstName") == .string("v400"))
        #expect(contact.attribute("lastName") == .string("v400"))
        #expect(try await h.count("ledger") == 400)
    }

    /// A message delivered to two daemons at once applies once, whether its key is checked by inserting it (a message
    /// id) or by looking it up first (a redelivered message without id, an HTTP request retried against the other
    /// daemon within its deduplication window). The lookup variants rely on the per-contact advisory lock: without
    /// it both daemons find no key and both apply.
    @Test(arguments: ["always", "since", "sliding"])
    func aMessageDeliveredToBothDaemonsAppliesOnce(check: String) async throws {
        let (h, second, pool) = try await Self.twoStores()
        defer { pool.cancel(); h.remove() }
        _ = try await h.send(registration("payer"))
        let hourAgo = Timestamp(microsecondsSinceEpoch: StoreHarness.t0.microsecondsSinceEpoch - 3_600_000_000)
        var outcomes: [EventOutcome] = []
        for round in 0..<60 {
            var event = try h.plan(deposit("payer", amount: "1.00", transaction: nil), id: "deposit-\(round)")
            switch check {
            case "since": event.key = IdempotencyKey(value: "content-\(round)", check: .since(hourAgo))
            case "sliding": event.key = IdempotencyKey(value: "request-\(round)", check: .slidingWindow(since: hourAgo))
            default: break
            }
            let batch = [event]
            async let first = h.store.apply(batch, now: StoreHarness.t0)
            async let other = second.apply(batch, now: StoreHarness.t0)
            outcomes += try await first + other
        }
        #expect(outcomes.filter { $0 == .applied(notes: []) }.count == 60)
        #expect(outcomes.filter { $0 == .duplicate }.count == 60)
        // Rows without a transaction id have no unique key of their own: only the ledger keeps them single.
        #expect(try await h.count("purchases") == 60)
    }
}

/// Contacts found by a value mid-transaction (an erasure by email, an import's match) are locked when found: a daemon that holds
/// the contact (its batch took the contact's lock, checked there is no tombstone, and is writing it) finishes first,
/// and the erasure then finds and erases what it wrote. Before, the erasure ran at once, and the other daemon's
/// registration, committed after it, brought the person back.
@Suite("PostgreSQL store: contacts found by email")
struct PostgresFoundContactLockTests {
    @Test func anErasureByEmailWaitsForAnotherDaemonsWriteToTheContact() async throws {
        let h = try await StoreHarness(.postgres, actions: [
            .userRegistration: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true)],
            .userBlocked: [.anonymizeContact(list: 1, findBy: .email)],
        ])
        defer { h.remove() }
        try await h.send(registration("ada", #"{"email":"ada@example.org","firstName":"Ada"}"#))
        let server = try PostgresTestServer.shared()
        let key = PostgresOperationWriter.lockKey("contact\u{0}ada")
        let erasure: EventOutcome = try await StoreHarness.admin(server, schema: h.schema) { other in
            // The other daemon's batch: it holds ada's lock while it writes her again.
            try await other.query("BEGIN", logger: StoreHarness.logger)
            try await other.query("SELECT pg_advisory_xact_lock(\(key))", logger: StoreHarness.logger)
            let erasing = Task {
                try await h.send(#"{"type":"USER_BLOCKED","contactId":"request-7","properties":{"email":"ada@example.org"}}"#)
            }
            try await Task.sleep(for: .milliseconds(500))
            try await other.query("""
                INSERT INTO contacts (list_id, contact_id, email_subscribed, mobile_subscribed, created_at, updated_at)
                VALUES (1, 'ada', true, true, 1, 1) ON CONFLICT DO NOTHING
                """, logger: StoreHarness.logger)
            try await other.query("""
                INSERT INTO contact_attributes (list_id, contact_id, name, kind, value) VALUES (1, 'ada', 'lastName', 's', 'Lovelace')
                ON CONFLICT (list_id, contact_id, name) DO UPDATE SET value = excluded.value
                """, logger: StoreHarness.logger)
            try await other.query("COMMIT", logger: StoreHarness.logger)
            return try await erasing.value
        }
        #expect(erasure == .applied(notes: []))
        #expect(try await h.store.contact("ada", list: 1) == .anonymized)
        #expect(try await h.count("contacts") == 0)
        #expect(try await h.count("contact_attributes") == 0)
    }

    /// An Altcraft import matches a profile by email while another daemon holds that profile and erases it: the
    /// import waits, finds no match any more, and creates a profile of its own. Before, it wrote the request's
    /// fields under the erased profile's id, left behind once the erasure committed.
    @Test func anImportWaitsForAnotherDaemonErasingTheProfileItMatched() async throws {
        let h = try await StoreHarness(.postgres)
        defer { h.remove() }
        try await AltcraftImportTests.seedContact(h)
        let server = try PostgresTestServer.shared()
        let key = PostgresOperationWriter.lockKey("contact\u{0}crm-7")
        let reply: JSONValue = try await StoreHarness.admin(server, schema: h.schema) { other in
            try await other.query("BEGIN", logger: StoreHarness.logger)
            try await other.query("SELECT pg_advisory_xact_lock(\(key))", logger: StoreHarness.logger)
            try await other.query("DELETE FROM contact_attributes WHERE contact_id = 'crm-7'", logger: StoreHarness.logger)
            try await other.query("DELETE FROM contacts WHERE contact_id = 'crm-7'", logger: StoreHarness.logger)
            let importing = Task {
                try await AltcraftImportTests.send(AltcraftImportTests.seedExample.replacingOccurrences(of: #""update_only":true"#, with: #""update_only":false"#), h).1
            }
            try await Task.sleep(for: .milliseconds(500))
            try await other.query("COMMIT", logger: StoreHarness.logger)
            return try await importing.value
        }
        #expect(reply["error"] == .number("0"))
        #expect(reply["profile_id"] != .string("crm-7"))
        let left = try await StoreHarness.admin(server, schema: h.schema) { connection in
            try await connection.query("SELECT count(*) FROM contact_attributes WHERE contact_id = 'crm-7'", logger: StoreHarness.logger)
                .collect().first?.decode(Int.self) ?? -1
        }
        #expect(left == 0)
        #expect(try await h.count("contacts") == 1)
    }
}

/// `tls:` against the test server, which offers no TLS.
@Suite("PostgreSQL store: TLS modes")
struct PostgresTLSTests {
    func store(_ tls: PostgresCRMStore.TLSMode) throws -> PostgresCRMStore {
        let server = try PostgresTestServer.shared()
        return PostgresCRMStore(
            host: server.host, port: server.port, username: server.username, password: server.password, database: server.database,
            tls: tls, maximumConnections: 1, logger: StoreHarness.logger
        )
    }

    @Test func preferFallsBackToPlainTCPWhenTheServerOffersNoTLS() async throws {
        let store = try store(.prefer)
        let pool = Task { try await store.run() }
        defer { pool.cancel() }
        try await store.prepare(waitingAtMost: .seconds(120))
        try await store.ping()
    }

    /// The test role's password is stored as MD5 (fast handshakes for the suite); servers store SCRAM-SHA-256 by
    /// default, so a role of that kind must log in too.
    @Test func aRoleWithAScramPasswordLogsIn() async throws {
        let server = try PostgresTestServer.shared()
        let role = "scram_\(UUID().uuidString.prefix(8).lowercased())"
        try server.psql("SET password_encryption = 'scram-sha-256'; CREATE ROLE \(role) LOGIN PASSWORD 'pw-\(role)'")
        let store = PostgresCRMStore(
            host: server.host, port: server.port, username: role, password: "pw-\(role)", database: server.database,
            tls: .disable, maximumConnections: 1, logger: StoreHarness.logger
        )
        let pool = Task { try await store.run() }
        defer { pool.cancel() }
        // A ping gives up after 5 s; the first SCRAM handshake of a debug build on a loaded machine can take longer,
        // and the pool goes on connecting meanwhile: ask again for up to 2 minutes.
        let deadline = ContinuousClock.now + .seconds(120)
        while true {
            do {
                try await store.ping()
                break
            } catch where ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        let wrong = PostgresCRMStore(
            host: server.host, port: server.port, username: role, password: "not-it", database: server.database,
            tls: .disable, maximumConnections: 1, logger: StoreHarness.logger
        )
        let wrongPool = Task { try await wrong.run() }
        defer { wrongPool.cancel() }
        do {
            try await wrong.prepare(waitingAtMost: .seconds(60))
            Issue.record("a wrong password was accepted")
        } catch {
            #expect(error.code == .rejected, "\(error)")
        }
    }

    @Test func requireRefusesAServerWithoutTLS() async throws {
        let store = try store(.require)
        let pool = Task { try await store.run() }
        defer { pool.cancel() }
        // Refused at once, with the reason: waiting would not bring TLS.
        let started = ContinuousClock.now
        do {
            try await store.prepare(waitingAtMost: .seconds(120))
            Issue.record("connected without TLS")
        } catch {
            #expect(error.code == .rejected, "\(error)")
            #expect(error.message.contains("TLS"), "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(60))
    }
}
