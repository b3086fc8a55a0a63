import CRMCore
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The PostgreSQL store, for several daemons on one database.
///
/// A pool of connections (postgres-nio's `PostgresClient`) runs as this store's `Service`; `prepare()` (once the
/// pool runs) applies the schema's migrations under an advisory lock and reads the tombstone key. `apply` runs each
/// batch as one transaction on a connection of the pool: concurrent batches (the lanes of a source, the sources of a
/// daemon, other daemons) commit in parallel, each first taking advisory locks on its contacts (see
/// `PostgresOperationWriter`).
public final class PostgresCRMStore: CRMStore, Service, Sendable {
    public let client: PostgresClient
    let logger: Logger
    private let keyedHash = Mutex<KeyedHash?>(nil)
    let counters = PostgresStoreCounters()
    /// How often a batch is run again after a deadlock or serialization failure before the failure is reported.
    static let conflictRetries = 5
    /// How long a call on a connection (a batch's transaction, a read, a small write) may take before its connection
    /// is given up (`withConnection`): far above a normal one (milliseconds), short enough that lanes cut off by a
    /// failover go on within half a minute. The schema's migrations (which may wait for another daemon's) and pruning
    /// (a large delete) get longer, a ping shorter.
    public static let defaultCallTimeout = Duration.seconds(30)
    let callTimeout: Duration
    /// The server session of each connection, for settling a transaction whose connection is lost.
    let sessions: SessionDirectory
    static let maintenanceTimeout = Duration.seconds(600)
    /// Events per transaction at most (`maxEventsPerTransaction`). A transaction takes an advisory lock per contact,
    /// and the server's lock table holds `max_locks_per_transaction` (64) × its connections (about 100): 6,400 locks
    /// on a default server, for every session of every daemon. An `ingest` batch of 20,000 contacts ran out of it
    /// ("out of shared memory", 53200) or past `callTimeout`, and was retried until the run gave up. 250 keeps eight
    /// connections of two daemons under half that table, and a transaction far under a second; the commit's own cost
    /// is spread over enough events not to matter.
    public static let transactionEventLimit = 250
    public var maxEventsPerTransaction: Int? { Self.transactionEventLimit }
    static let pingTimeout = Duration.seconds(5)

    /// One connection opened at start-up outside the pool, to tell a server that refuses (its error says why) from
    /// one that does not answer: the pool retries both alike, and a waiting request never sees the reason.
    let probe: PostgresConnection.Configuration?

    /// - Parameter callTimeout: the limit of a call on a connection (`withConnection`); tests of lost connections
    ///   shorten it.
    public init(
        configuration: PostgresClient.Configuration, probe: PostgresConnection.Configuration? = nil, logger: Logger,
        callTimeout: Duration = defaultCallTimeout
    ) {
        // The pool logs every failed connection attempt at info; the store says what matters at warning itself.
        var background = logger
        background.logLevel = max(logger.logLevel, .notice)
        // No keep-alive queries: the pool runs them itself, outside `withConnection`'s limit, and one lost on an ended
        // session would hold the pool's shutdown (and the daemon's exit) for good. Idle connections close after the
        // pool's idle timeout (60 s) anyway, and a dead one fails its next call, which is retried.
        var configuration = configuration
        configuration.options.keepAliveBehavior = nil
        client = PostgresClient(configuration: configuration, backgroundLogger: background)
        sessions = SessionDirectory(capacity: configuration.options.maximumConnections)
        self.probe = probe
        self.logger = logger
        self.callTimeout = callTimeout
    }

    /// How the connections use TLS.
    public enum TLSMode: Sendable {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it, its certificate not checked (libpq's `prefer`); plain TCP otherwise.
        case prefer
        /// TLS, the server's certificate verified against the system's trust store and the host name (libpq's
        /// `verify-full`).
        case require
    }

    /// A store on the server at `host`, with at most `maximumConnections` connections (opened as needed).
    public convenience init(
        host: String, port: Int, username: String, password: String?, database: String, tls: TLSMode, maximumConnections: Int,
        logger: Logger
    ) {
        let clientTLS: PostgresClient.Configuration.TLS
        switch tls {
        case .disable:
            clientTLS = .disable
        case .prefer:
            // As libpq's `prefer`: encryption when offered, the certificate not checked (it may be self-signed).
            var unverified = TLSConfiguration.makeClientConfiguration()
            unverified.certificateVerification = .none
            clientTLS = .prefer(unverified)
        case .require:
            // Stricter than libpq's `require` (which does not verify): this is its `verify-full`.
            clientTLS = .require(.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: clientTLS
        )
        configuration.options.maximumConnections = maximumConnections
        configuration.options.minimumConnections = 0
        var probeTLS: PostgresConnection.Configuration.TLS? = .disable
        switch tls {
        case .disable: break
        case .prefer:
            var unverified = TLSConfiguration.makeClientConfiguration()
            unverified.certificateVerification = .none
            probeTLS = (try? NIOSSLContext(configuration: unverified)).map { .prefer($0) }
        case .require:
            probeTLS = (try? NIOSSLContext(configuration: .makeClientConfiguration())).map { .require($0) }
        }
        let probe = probeTLS.map {
            PostgresConnection.Configuration(host: host, port: port, username: username, password: password, database: database, tls: $0)
        }
        self.init(configuration: configuration, probe: probe, logger: logger)
    }

    /// Runs the connection pool until the task is cancelled or the service group shuts down (postgres-nio closes the
    /// pool at graceful shutdown; the services that use the store stop before it, as the group stops in reverse order).
    public func run() async throws {
        await client.run()
    }

    /// Migrates the schema and reads the tombstone key; call once the pool runs, before anything else. Waits for a
    /// server that does not answer yet (it may be starting beside the daemon) with back-off, logging why; fails at
    /// once when the server refuses (wrong password, missing database), as that will not pass by waiting.
    public func prepare(waitingAtMost budget: Duration = .seconds(60)) async throws(StoreError) {
        let deadline = ContinuousClock.now + budget
        var delay = Duration.milliseconds(200)
        while true {
            do {
                // One connection of our own first: the pool retries a refused or unreachable server alike, and a
                // request waiting in it never learns why. Each probe gives up after 10 s, so the wait is logged.
                if let probe { try await reach(probe, deadline: min(deadline, .now + .seconds(10))) }
                try await Self.withDeadline(deadline) { [self] in
                    try await migrate()
                    let key = try await withConnection { [logger] connection in
                        try await connection.first("SELECT value FROM meta WHERE key = 'tombstone_key'", as: Data.self, logger: logger)
                    }
                    guard let key, key.count == 32 else { throw StoreError(.schema, "the meta table has no tombstone key") }
                    keyedHash.withLock { $0 = KeyedHash(key: [UInt8](key)) }
                }
                return
            } catch {
                let storeError = Self.storeError(error)
                guard storeError.code == .unavailable, ContinuousClock.now + delay < deadline, !Task.isCancelled else { throw storeError }
                logger.warning("PostgreSQL not reachable yet, retrying in \(delay)", metadata: ["error": "\(storeError.message)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Opens and closes one connection. Throws the server's refusal (a wrong password, no such database, no TLS
    /// where it is required) as `rejected`, anything waiting may cure (refused, timed out) as `unavailable`.
    private func reach(_ probe: PostgresConnection.Configuration, deadline: ContinuousClock.Instant) async throws(StoreError) {
        do {
            // The connect is an abandonable call, so that the deadline's cancellation (or SIGTERM's) ends it even if
            // the driver never completes it; its own limit lies past the deadline, which comes first.
            try await Self.withDeadline(deadline) { [logger] in
                try await AbandonableCall.run(timeout: ContinuousClock.now.duration(to: deadline) + .seconds(1), onAbandon: {}) {
                    let connection = try await PostgresConnection.connect(configuration: probe, id: 0, logger: logger)
                    try await connection.close()
                }
            }
        } catch {
            if let psql = error as? PSQLError, psql.code == .sslUnsupported {
                throw StoreError(.rejected, "PostgreSQL offers no TLS, and store.postgres.tls is require")
            }
            throw Self.storeError(error)
        }
    }

    /// Runs `body`, cancelled at `deadline` with `StoreError(.unavailable)`.
    static func withDeadline(_ deadline: ContinuousClock.Instant, _ body: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await body()
                return true
            }
            group.addTask {
                try? await Task.sleep(until: deadline)
                return false
            }
            let finished = try await group.next() ?? false
            group.cancelAll()
            if !finished { throw StoreError(.unavailable, "PostgreSQL did not answer in time") }
        }
    }

    /// Runs `body` on a connection of the pool, given up after `timeout` (`AbandonableCall`: its connection is closed
    /// and `StoreError(.unavailable)` thrown). A statement on a session the server ended (`pg_terminate_backend`, a
    /// failover) may never complete in the driver; without the limit it would hold its caller forever: a batch's lane,
    /// a readiness probe, an HTTP request, and with them the daemon's shutdown. Waiting for a connection is not
    /// limited here: that wait ends with cancellation, which the callers that must answer in time use.
    func withConnection<Result: Sendable>(
        timeout: Duration? = nil, _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let timeout = timeout ?? callTimeout
        return try await client.withConnection { connection in
            do {
                // `close()`'s future form: it starts closing at once, before the connection goes back to the pool.
                return try await AbandonableCall.run(timeout: timeout, onAbandon: { _ = connection.close() as EventLoopFuture<Void> }) {
                    try await body(connection)
                }
            } catch {
                if Self.sessionIsSpent(error) { _ = connection.close() as EventLoopFuture<Void> }
                throw error
            }
        }
    }

    /// Errors after which a session must not be used again: 25006, read-only (a primary demoted by a failover, or
    /// a database turned read-only: a new session sees the current state, the old one keeps its own); 57P0x, the
    /// server ending the session; class 08, the connection itself; and the driver's own connection failures
    /// (closed by the server or the network, a broken stream), after which a query on it may never complete. Closed,
    /// not handed back to the pool.
    static func sessionIsSpent(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError else { return false }
        guard let state = error.serverInfo?[.sqlState] else { return spentByTheDriver.contains(error.code) }
        return state == "25006" || state.hasPrefix("57P") || state.hasPrefix("08")
    }

    private static let spentByTheDriver: [PSQLError.Code] = [
        .serverClosedConnection, .clientClosedConnection, .connectionError, .uncleanShutdown, .messageDecodingFailure, .unexpectedBackendMessage,
    ]

    /// Applies missing migrations (one daemon does it while the others wait on the advisory lock); the versions
    /// this call applied.
    @discardableResult
    public func migrate() async throws -> [Int] {
        try await withConnection(timeout: Self.maintenanceTimeout) { [logger] connection in try await PostgresSchema.migrate(connection, logger: logger) }
    }

    private func requireKey() throws(StoreError) -> KeyedHash {
        guard let key = keyedHash.withLock({ $0 }) else { throw StoreError(.unavailable, "the PostgreSQL store is not prepared yet") }
        return key
    }

    // MARK: Applying events

    /// Applies a batch in one transaction on a connection of the pool; `timing` changes nothing (batches do not
    /// share transactions here, and nothing waits). Callers cut larger batches at `maxEventsPerTransaction`; a larger
    /// one still runs as one transaction (all or nothing, as the protocol promises), with as many locks.
    public func apply(_ events: [PlannedEvent], now: Timestamp, timing: CommitTiming) async throws -> [EventOutcome] {
        guard !events.isEmpty else { return [] }
        let keyedHash = try requireKey()
        let locks = PostgresOperationWriter.lockKeys(events)
        var isolation = EventIsolation.sharedTransaction
        var conflicts = 0
        while true {
            let run = LostTransaction()
            do {
                return try await withConnection { [logger, isolation, sessions] connection in
                    run.opening(in: try await sessions.identity(of: connection, logger: logger))
                    return try await Self.transaction(
                        events, locks: locks, now: now, keyedHash: keyedHash, isolation: isolation, run: run, connection, logger: logger
                    )
                }
            } catch is PostgresOperationWriter.EventNeedsSavepoint {
                counters.transactionsRedoneWithSavepoints.add(1, ordering: .relaxed)
                isolation = .savepointPerEvent
            } catch {
                if let lost = run.lost(by: error) {
                    counters.lostTransactions.add(1, ordering: .relaxed)
                    if lost.outcomes != nil { counters.commitsInDoubt.add(1, ordering: .relaxed) }
                    if try await settleLostTransaction(lost, reason: error), let outcomes = lost.outcomes {
                        return outcomes
                    }
                }
                let storeError = Self.storeError(error)
                guard Self.isConflict(error), conflicts < Self.conflictRetries else { throw storeError }
                conflicts += 1
                counters.conflictRetries.add(1, ordering: .relaxed)
                try? await Task.sleep(for: .milliseconds(10 * conflicts))
            }
        }
    }

    /// One transaction: its id and the locks, then every event in order.
    static func transaction(
        _ events: [PlannedEvent], locks: [Int64], now: Timestamp, keyedHash: KeyedHash, isolation: EventIsolation,
        run: LostTransaction, _ connection: PostgresConnection, logger: Logger
    ) async throws -> [EventOutcome] {
        // Pinned: after waiting for a contact's lock, the ledger check must see what the other daemon committed
        // meanwhile, which a REPEATABLE READ or SERIALIZABLE default (a role's or the server's) would hide.
        try await connection.run("BEGIN ISOLATION LEVEL READ COMMITTED", logger: logger)
        do {
            let witness = CommitWitness.token(at: now)
            run.takingLocks()
            let transaction = try await PostgresOperationWriter.identifyAndLock(
                locks, witness: witness, expiredBefore: CommitWitness.expiryBound(at: now), connection, logger: logger
            )
            run.began(transaction, witness: witness)
            var writer = try await PostgresOperationWriter(
                connection: connection, logger: logger, now: now, keyedHash: keyedHash, isolation: isolation, locks: locks
            )
            var outcomes: [EventOutcome] = []
            outcomes.reserveCapacity(events.count)
            for event in events { outcomes.append(try await writer.applyAtomically(event)) }
            run.sendingCommit(outcomes)
            try await connection.run("COMMIT", logger: logger)
            return outcomes
        } catch {
            // After a failed statement the transaction can only be rolled back; a broken connection is dropped by
            // the pool, and the server rolls back what it held.
            _ = try? await connection.run("ROLLBACK", logger: logger)
            throw error
        }
    }

    /// Settles a transaction whose connection was lost, on another connection: true if it committed.
    ///
    /// First the transaction must be over. While its session is still there and in a transaction (it holds its
    /// virtual transaction id's lock: the server has not noticed that the client is gone, as after a network
    /// partition, and may hold the transaction open with its contacts' locks for as long as TCP takes to tell), the
    /// session is ended (`pg_terminate_backend`, only while it waits for its client or for a lock, not while it runs
    /// a statement or waits for a synchronous standby to confirm its `COMMIT`), which rolls back an open transaction
    /// or lets a `COMMIT` it received finish. The session is named by its process and start time, learnt before
    /// `BEGIN`, so a transaction lost in the round trip that takes its locks is found too; the lost connection was
    /// closed (`LostTransaction.lost(by:)`), so nothing else runs on that session, and its transaction is this one. Then, if `COMMIT` was sent, its commit witness
    /// (`commit_witnesses`, a row with a token of its own that it wrote first, outside any savepoint) says whether it
    /// committed: the row exists if and only if it did. After a failover, a commit lost with the old primary is
    /// rightly not found.
    ///
    /// While the server cannot be asked, this asks again with growing pauses, until `2 × callTimeout` have passed
    /// (the daemon's stop waits for it: lanes are not cancelled); a `COMMIT` still unknown then is treated as not
    /// made, and the batch runs again (its events with a message id are found in the ledger; those without may apply
    /// twice: the log says so). Before `COMMIT` the transaction cannot have committed, and a server refusing to end
    /// the session (a role not allowed to) makes this give up at once.
    func settleLostTransaction(_ lost: LostTransaction.State, reason: any Error) async throws -> Bool {
        guard let session = lost.session else { return false }
        let commitSent = lost.outcomes != nil
        var about: Logger.Metadata = ["backend_pid": "\(session.process)"]
        about["transaction"] = lost.transaction.map { "\($0.id)" } ?? "(none yet: lost while it took its locks)"
        func aboutWith(_ error: any Error) -> Logger.Metadata { about.merging(["error": "\(Self.storeError(error).message)"]) { $1 } }
        // The session while it is still in a transaction.
        let openSession = "\(session.condition) AND \(Self.inATransaction)"
        let askingTimeout = min(Self.pingTimeout, callTimeout)
        let givingUp = ContinuousClock.now + callTimeout * 2
        // The first pause lets the pool drop the lost connection, which it could otherwise hand out for the question.
        var pause = Duration.milliseconds(50)
        var said: Set<String> = [] // what was logged, once each
        while true {
            try await Task.sleep(for: min(pause, max(.zero, givingUp - .now)))
            pause = min(pause * 2, .seconds(5))
            // Each question within what is left of the whole, so the settling ends at `givingUp`.
            let askingTimeout = min(askingTimeout, max(.milliseconds(100), givingUp - .now))
            do {
                // In a transaction while it holds its virtual transaction id's lock (whatever `track_activities`
                // says: with it off, `state` is only 'disabled'); no row once the session has ended.
                let waiting = try await ask(within: askingTimeout) { [logger] connection in
                    try await connection.query("""
                        SELECT coalesce(wait_event_type, ''), coalesce(wait_event, '') FROM pg_stat_activity
                        WHERE \(unescaped: openSession)
                        """, logger: logger).get().rows.first?.decode((String, String).self)
                }
                if let waiting {
                    if waiting.0 == "Client" || waiting.0 == "Lock" {
                        if said.insert("open").inserted {
                            logger.notice(
                                "a transaction's connection was lost and the transaction is still open on the server; ending its session",
                                metadata: aboutWith(reason)
                            )
                        }
                        // Only while it waits for its client (idle in the transaction, or stuck writing to a client
                        // that is gone) or for a lock: a session running a statement is left to finish it, and one
                        // whose COMMIT waits for a synchronous standby (IPC: SyncRep) must not skip the standby.
                        _ = try await ask(within: askingTimeout) { [logger] connection in
                            try await connection.query("""
                                SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                WHERE \(unescaped: openSession) AND wait_event_type IN ('Client', 'Lock')
                                """, logger: logger).get()
                        }
                    }
                } else {
                    // Over: committed if its witness is there.
                    guard commitSent, let witness = lost.witness else { return false }
                    let committed = try await ask(within: askingTimeout) { [logger] connection in
                        try await connection.first("SELECT 1 FROM commit_witnesses WHERE token = \(witness)", as: Int32.self, logger: logger)
                    } != nil
                    if committed {
                        logger.warning("the connection was lost after COMMIT was sent; the transaction committed", metadata: aboutWith(reason))
                    } else {
                        logger.notice("the connection was lost after COMMIT was sent; the transaction did not commit, and the batch runs again", metadata: aboutWith(reason))
                    }
                    return committed
                }
            } catch {
                if error is CancellationError || Task.isCancelled { throw error }
                if !commitSent, let code = (error as? PSQLError)?.serverInfo?[.sqlState], !code.hasPrefix("08"), !code.hasPrefix("57") {
                    logger.warning("a transaction's connection was lost before its COMMIT, and the server refused to end its session; it ends when the server notices", metadata: aboutWith(error))
                    return false
                }
                if said.insert("unreachable").inserted {
                    logger.warning("a transaction's connection was lost, and the server cannot be asked yet what became of it; asking again", metadata: aboutWith(error))
                }
            }
            if ContinuousClock.now >= givingUp {
                if commitSent {
                    logger.error("""
                        the connection was lost after COMMIT was sent, and whether it committed is still unknown; the batch runs again: \
                        its events without a message id may be applied twice
                        """, metadata: aboutWith(reason))
                } else {
                    logger.warning("a transaction's connection was lost before its COMMIT, and its session could not be ended; it ends when the server notices", metadata: about)
                }
                return false
            }
        }
    }

    /// The condition on a `pg_stat_activity` row that its session is in a transaction: it holds the lock on its own
    /// virtual transaction id, which every transaction takes at its start and keeps until it ends or fails (after a
    /// failure it holds no lock and can no longer commit).
    static let inATransaction = """
        EXISTS (
            SELECT 1 FROM pg_locks WHERE pg_locks.pid = pg_stat_activity.pid AND locktype = 'virtualxid' AND virtualxid = virtualtransaction AND granted
        )
        """

    /// `body` on a connection of the pool, the wait for the connection included, within `limit`.
    private func ask<Value: Sendable>(
        within limit: Duration, _ body: @escaping @Sendable (PostgresConnection) async throws -> Value
    ) async throws -> Value {
        let answer = Mutex<Value?>(nil)
        try await Self.withDeadline(.now + limit) { [self] in
            let value = try await withConnection(timeout: limit, body)
            answer.withLock { $0 = value }
        }
        guard let value = answer.withLock({ $0 }) else { throw StoreError(.unavailable, "PostgreSQL did not answer in time") }
        return value
    }

    /// A deadlock or serialization failure: the transaction was rolled back whole and may simply run again.
    static func isConflict(_ error: any Error) -> Bool {
        guard let state = (error as? PSQLError)?.serverInfo?[.sqlState] else { return false }
        return state == "40001" || state == "40P01"
    }

    /// A store error with a code and the server's message (SQLSTATE classes per the PostgreSQL manual, appendix A).
    static func storeError(_ error: any Error) -> StoreError {
        if let error = error as? StoreError { return error }
        guard let error = error as? PSQLError else { return StoreError(.unavailable, "\(error)") }
        guard let state = error.serverInfo?[.sqlState] else {
            // No server answer: connection refused, closed, timed out, TLS failed.
            return StoreError(.unavailable, "PostgreSQL: \(error.code)\(error.underlying.map { " (\($0))" } ?? "")")
        }
        let message = "PostgreSQL \(state): \(error.serverInfo?[.message] ?? "error")"
        switch state.prefix(2) {
        case "40", "55": return StoreError(.busy, message) // transaction rollback, lock not available
        case "53": return StoreError(state == "53100" ? .io : .busy, message) // insufficient resources (53100: disk full)
        case "58": return StoreError(.io, message) // system error (I/O)
        case "08", "57": return StoreError(.unavailable, message) // connection exception, operator intervention (shutdown)
        case "22", "23", "54": return StoreError(.rejected, message) // 54: a value past a limit, e.g. too large for an index
        case "28", "3D": return StoreError(.rejected, message) // wrong password, database does not exist: waiting will not help
        case "42": return StoreError(.schema, message)
        default: return StoreError(.unavailable, message)
        }
    }

    // MARK: Maintenance and integrations

    /// Answers within 5 s: while the server is down the pool would keep a query waiting for a connection, and a
    /// readiness probe must say "not ready", not hang.
    public func ping() async throws {
        do {
            // The deadline cancels the wait for a connection or the query; a cancelled query is left behind at once
            // (`AbandonableCall`), so the ping answers within 5 s even when the driver lost the query.
            try await Self.withDeadline(.now + Self.pingTimeout) { [self] in
                try await withConnection(timeout: Self.pingTimeout) { [logger] connection in _ = try await connection.query("SELECT 1", logger: logger) }
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    /// Removes ledger entries and incoming-request records older than `cutoff`; the number of ledger entries removed.
    public func pruneLedger(before cutoff: Timestamp) async throws -> Int {
        let micros = cutoff.microsecondsSinceEpoch
        do {
            return try await withConnection(timeout: Self.maintenanceTimeout) { [logger] connection in
                let removed = try await connection.run("DELETE FROM ledger WHERE processed_at < \(micros)", logger: logger)
                try await connection.run("DELETE FROM incoming_requests WHERE received_at < \(micros)", logger: logger)
                return removed
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    /// The record of an incoming HTTP request, by its event id.
    public func incomingRequest(_ eventId: String) async throws -> String? {
        do {
            return try await withConnection { [logger] connection in
                try await connection.first("SELECT record FROM incoming_requests WHERE event_id = \(eventId)", as: String.self, logger: logger)
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    /// The endpoint id of an HTTP integration: the first proposal any daemon made wins, for every daemon.
    public func integrationEndpoint(source: String, proposed: String) async throws -> String {
        let key = "integration_endpoint:" + source
        do {
            return try await withConnection { [logger] connection in
                try await connection.run(
                    "INSERT INTO meta (key, value) VALUES (\(key), \(Data(proposed.utf8))) ON CONFLICT (key) DO NOTHING", logger: logger
                )
                let stored = try await connection.first("SELECT value FROM meta WHERE key = \(key)", as: Data.self, logger: logger)
                return stored.map { String(decoding: $0, as: UTF8.self) } ?? proposed
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    /// Counts rows of a table: for tests and operators' checks.
    public func count(_ table: String) async throws -> Int {
        let name = table.filter { $0.isLetter || $0 == "_" }
        return try await withConnection { [logger] connection in
            try await connection.first(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(name)"), as: Int.self, logger: logger) ?? 0
        }
    }

    // MARK: Reading

    public func contact(_ contactId: String, list: Int?) async throws -> ContactLookupResult {
        let keyedHash = try requireKey()
        do {
            return try await withConnection { [logger] connection in
                // One snapshot for every table read.
                try await connection.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
                do {
                    let result = try await Self.lookUp(contactId, list: list, keyedHash: keyedHash, connection, logger: logger)
                    try await connection.run("COMMIT", logger: logger)
                    return result
                } catch {
                    _ = try? await connection.run("ROLLBACK", logger: logger)
                    throw error
                }
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    static func lookUp(
        _ contactId: String, list: Int?, keyedHash: KeyedHash, _ connection: PostgresConnection, logger: Logger
    ) async throws -> ContactLookupResult {
        if try await connection.first(
            "SELECT 1 FROM tombstones WHERE contact_hash = \(keyedHash.hash(contactId))", as: Int32.self, logger: logger
        ) != nil {
            return .anonymized
        }
        var lists = try await connection.rows(
            "SELECT list_id FROM contacts WHERE contact_id = \(contactId) ORDER BY list_id", logger: logger
        ).map { Int(try $0.decode(Int64.self)) }
        if let list { lists = lists.filter { $0 == list } }
        guard let chosen = lists.first else { return .notFound }
        guard lists.count == 1 else { return .inSeveralLists(lists) }
        return .found(try await snapshot(contactId: contactId, list: chosen, connection, logger: logger))
    }

    static func snapshot(contactId: String, list: Int, _ connection: PostgresConnection, logger: Logger) async throws -> ContactSnapshot {
        let listId = Int64(list)
        var snapshot = ContactSnapshot(contactId: contactId, list: list)
        if let row = try await connection.rows("""
            SELECT email_subscribed, mobile_subscribed, blocked_until, email_unsubscribe_reason FROM contacts
            WHERE list_id = \(listId) AND contact_id = \(contactId)
            """, logger: logger).first {
            let (email, mobile, blocked, reason) = try row.decode((Bool, Bool, Int64?, String?).self)
            snapshot.emailSubscribed = email
            snapshot.mobileSubscribed = mobile
            snapshot.blockedUntil = blocked.map { Timestamp(microsecondsSinceEpoch: $0) }
            snapshot.emailUnsubscribeReason = reason
        }
        snapshot.actions = try await connection.rows("""
            SELECT action_key, action_type, campaign, action_page, fields, occurred_at FROM contact_actions
            WHERE list_id = \(listId) AND contact_id = \(contactId) ORDER BY occurred_at, action_key
            """, logger: logger).map { row in
            let (key, type, campaign, page, fields, at) = try row.decode((String, String, String?, String?, String, Int64).self)
            return ActionRow(key: key, actionType: type, campaign: campaign, actionPage: page, fieldsJSON: fields,
                             occurredAt: Timestamp(microsecondsSinceEpoch: at))
        }
        snapshot.attributes = try await connection.rows(
            "SELECT name, kind, value FROM contact_attributes WHERE list_id = \(listId) AND contact_id = \(contactId) ORDER BY name COLLATE \"C\"",
            logger: logger
        ).map { row in
            let (name, kind, value) = try row.decode((String, String, String?).self)
            return AttributeValue(name: name, value: AttributeEncoding.decode(kind: kind, value: value))
        }
        for row in try await connection.rows(
            "SELECT channel, consented FROM contact_consents WHERE list_id = \(listId) AND contact_id = \(contactId)", logger: logger
        ) {
            let (channel, consented) = try row.decode((String, Bool).self)
            if let channel = ConsentChannel(rawValue: channel) { snapshot.consents[channel] = consented }
        }
        snapshot.purchases = try await connection.rows("""
            SELECT kind, status, amount, currency, transaction_id, vendor, payment_type, occurred_at FROM purchases
            WHERE list_id = \(listId) AND contact_id = \(contactId) ORDER BY occurred_at, id
            """, logger: logger).compactMap { row in
            let (kind, status, amount, currency, transaction, vendor, payment, at) =
                try row.decode((String, String, String, String?, String?, String?, String?, Int64).self)
            guard let kind = TransactionKind(rawValue: kind), let status = TransactionStatus(rawValue: status),
                  case let .success(amount) = DecimalAmount.parse(jsonNumber: amount) else { return nil }
            return PurchaseRow(kind: kind, status: status, amount: amount, currency: currency, transactionId: transaction, vendor: vendor,
                               paymentType: payment, occurredAt: Timestamp(microsecondsSinceEpoch: at))
        }
        var records: [ContactRecord] = []
        for row in try await connection.rows(
            "SELECT kind, record_id, event_id FROM linked_records WHERE contact_id = \(contactId) ORDER BY kind COLLATE \"C\", record_id COLLATE \"C\"",
            logger: logger
        ) {
            let (kind, id, eventId) = try row.decode((String, String, String?).self)
            // Category names come from the latest record of the event the person belongs to.
            let categories = try await connection.rows("""
                SELECT c.category_id, e.name FROM record_categories c
                LEFT JOIN record_categories e ON e.kind = 'event' AND e.record_id = \(eventId) AND e.category_id = c.category_id
                WHERE c.kind = \(kind) AND c.record_id = \(id) ORDER BY c.category_id COLLATE "C"
                """, logger: logger).map { row in
                let (category, name) = try row.decode((String, String?).self)
                return ContactRecord.Category(id: category, name: name)
            }
            records.append(ContactRecord(kind: kind, id: id, eventId: eventId, categories: categories))
        }
        snapshot.records = records
        snapshot.journeys = try await connection.rows(
            "SELECT journey_id FROM journey_enrollments WHERE contact_id = \(contactId) ORDER BY entered_at, journey_id", logger: logger
        ).map { Int(try $0.decode(Int64.self)) }
        return snapshot
    }
}

/// What the store counts about its own work, for tests and diagnostics.
final class PostgresStoreCounters: Sendable {
    /// Transactions rolled back because the database refused one of their events, then run again with a savepoint
    /// per event.
    let transactionsRedoneWithSavepoints = Atomic<Int>(0)
    /// Batches run again after a deadlock or serialization failure.
    let conflictRetries = Atomic<Int>(0)
    /// Connections lost after a transaction's `COMMIT` was sent, before its answer.
    let commitsInDoubt = Atomic<Int>(0)
    /// Transactions whose connection was lost once they were taking their locks, settled with the server.
    let lostTransactions = Atomic<Int>(0)
}
