import CRMCore
import Logging
import PostgresNIO
import ServiceLifecycle

/// The PostgreSQL store (work in progress, issue 9): a pool of connections (postgres-nio's `PostgresClient`, run as
/// this store's `Service`), the schema migrated at start-up under an advisory lock. Done so far: migrations, the
/// integration endpoints, the incoming-request records, ledger pruning, `ping`. Not yet: applying events and
/// reading contacts, so it does not conform to `CRMStore` yet and no configuration can choose it.
public final class PostgresCRMStore: Service, Sendable {
    public let client: PostgresClient
    let logger: Logger

    public init(configuration: PostgresClient.Configuration, logger: Logger) {
        client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.logger = logger
    }

    /// Runs the connection pool until the service group ends (postgres-nio's client is a `Service`).
    public func run() async throws {
        await client.run()
    }

    /// Applies missing migrations (one daemon does it while the others wait on the advisory lock); the versions
    /// this call applied.
    @discardableResult
    public func migrate() async throws -> [Int] {
        try await client.withConnection { connection in try await PostgresSchema.migrate(connection, logger: logger) }
    }

    public func ping() async throws {
        try await client.query("SELECT 1", logger: logger)
    }

    /// Removes ledger entries and incoming-request records older than `cutoff`; the number of ledger entries removed.
    public func pruneLedger(before cutoff: Timestamp) async throws -> Int {
        let micros = cutoff.microsecondsSinceEpoch
        return try await client.withTransaction(logger: logger) { connection in
            var removed = 0
            let rows = try await connection.query(
                "WITH gone AS (DELETE FROM ledger WHERE processed_at < \(micros) RETURNING 1) SELECT count(*) FROM gone", logger: logger
            )
            for try await count in rows.decode(Int.self) { removed = count }
            try await connection.query("DELETE FROM incoming_requests WHERE received_at < \(micros)", logger: logger)
            return removed
        }
    }

    /// The record of an incoming HTTP request, by its event id.
    public func incomingRequest(_ eventId: String) async throws -> String? {
        for try await record in try await client.query(
            "SELECT record FROM incoming_requests WHERE event_id = \(eventId)", logger: logger
        ).decode(String.self) {
            return record
        }
        return nil
    }

    /// The endpoint id of an HTTP integration: the first proposal any daemon made wins, for every daemon.
    public func integrationEndpoint(source: String, proposed: String) async throws -> String {
        let key = "integration_endpoint:" + source
        let value = ByteBuffer(string: proposed)
        try await client.query("INSERT INTO meta (key, value) VALUES (\(key), \(value)) ON CONFLICT (key) DO NOTHING", logger: logger)
        for try await stored in try await client.query("SELECT value FROM meta WHERE key = \(key)", logger: logger).decode(ByteBuffer.self) {
            return String(buffer: stored)
        }
        return proposed
    }

    /// Counts rows of a table: for tests and operators' checks.
    public func count(_ table: String) async throws -> Int {
        let name = table.filter { $0.isLetter || $0 == "_" }
        for try await count in try await client.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(name)"), logger: logger).decode(Int.self) {
            return count
        }
        return 0
    }
}
