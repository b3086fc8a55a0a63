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
struct MigrationTests {
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
}

/// The store's first operations against the real server.
@Suite("PostgreSQL store", .serialized)
struct PostgresStoreTests {
    let logger = Logger(label: "test.postgres")

    /// A store on a database of its own, its pool running for the duration of `body`.
    func withStore(_ body: (PostgresCRMStore) async throws -> Void) async throws {
        let server = try PostgresTestServer.shared()
        let database = try await MigrationTests().freshDatabase(server)
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
