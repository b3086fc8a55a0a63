import CRMCore
@testable import CRMStorePostgres
import CRMTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

/// The server ending the store's sessions (`pg_terminate_backend`, as a failover or an operator does) while calls
/// are in flight. A query on a session ended under it may never complete in postgres-nio (1.33.2, reproduced here:
/// every ping stuck for good within a few hundred calls), so each call on a connection has a limit it cannot outlive.
@Suite("PostgreSQL store: sessions ended by the server", .serialized)
struct EndedSessionTests {
    let logger = Logger(label: "test.postgres")

    /// What the pinging tasks did, shared with the test.
    final class Progress: Sendable {
        struct State: Sendable {
            var stop = false
            var calls = 0
            var finished = 0
            var slowest = Duration.zero
        }
        private let state = Mutex(State())
        func update(_ change: (inout State) -> Void) { state.withLock { change(&$0) } }
        func read<T>(_ get: (State) -> T) -> T { state.withLock { get($0) } }
    }

    /// Eight tasks ping in a loop while the test ends every session of the store's database 200 times. Each ping
    /// answers (well or with an error) within its 5 s limit. Before the query could be left behind, all eight pings
    /// hung for good: `/readyz` never answered, and a daemon given SIGTERM
    /// waited for that request forever (a CI run of the read-only fault test). Afterwards the pool works again.
    @Test func pingsCutByEndedSessionsAnswerWithinTheirLimit() async throws {
        let server = try PostgresTestServer.shared()
        let database = try await PostgresMigrationTests().freshDatabase(server)
        let store = PostgresCRMStore(configuration: .init(
            host: server.host, port: server.port, username: server.username, password: server.password, database: database, tls: .disable
        ), logger: logger)
        // Not a task group: a group would wait for a call that never returns, and the test would hang, not fail.
        let pool = Task { await store.client.run() }
        defer { pool.cancel() }
        try await store.migrate()
        let admin = try await PostgresMigrationTests().connect(server, database: database)
        let progress = Progress()
        let pingers = 8
        for _ in 0..<pingers {
            Task {
                while !progress.read({ $0.stop }) {
                    let start = ContinuousClock.now
                    _ = try? await store.ping()
                    let took = ContinuousClock.now - start
                    progress.update { $0.calls += 1; $0.slowest = max($0.slowest, took) }
                }
                progress.update { $0.finished += 1 }
            }
        }
        for round in 0..<200 {
            try await admin.query(PostgresQuery(unsafeSQL:
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '\(database)' AND pid <> pg_backend_pid()"
            ), logger: logger)
            try await Task.sleep(for: .milliseconds(5 + (round * 7) % 40))
        }
        try await admin.close()
        progress.update { $0.stop = true }
        // A ping that started just before the stop may take its 5 s limit, and a loaded machine's delays.
        let deadline = ContinuousClock.now + .seconds(30)
        while progress.read({ $0.finished }) < pingers, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let state = progress.read { $0 }
        #expect(state.finished == pingers, "pings still waiting: \(pingers - state.finished) of \(pingers), after \(state.calls) calls")
        #expect(state.slowest < .seconds(15), "the slowest ping took \(state.slowest)")
        // The connections given up were closed, and the pool opens new ones.
        try await store.ping()
        #expect(try await store.count("ledger") == 0)
    }
}
