@testable import CRMStorePostgres
import CRMTestSupport
import Foundation
import Logging
import PostgresNIO
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
