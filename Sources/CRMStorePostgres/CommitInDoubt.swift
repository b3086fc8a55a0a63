import CRMCore
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// A transaction as the server knows it: its id (`txid_current()`, with the epoch).
struct TransactionIdentity: Sendable, Hashable {
    var id: Int64
}

/// A server session: its process and when it started (`pg_stat_activity.backend_start`, in microseconds), which
/// together name it even after the process number is reused. Learnt once per connection, before its first
/// transaction, so that a transaction lost at any point, even while it takes its locks, can be found on the server.
struct SessionIdentity: Sendable, Hashable {
    var process: Int32
    var startedMicroseconds: Int64

    /// The SQL condition on `pg_stat_activity` that picks this session.
    var condition: String { "pid = \(process) AND (extract(epoch FROM backend_start) * 1000000)::bigint = \(startedMicroseconds)" }
}

/// The sessions of the pool's connections, by connection, each asked once. At most `4 × capacity` are kept; the
/// least recently used goes first (connections closed by the pool are never used again).
final class SessionDirectory: Sendable {
    private struct Entry {
        var identity: SessionIdentity
        var lastUse: UInt64
    }

    private struct State {
        var entries: [PostgresConnection.ID: Entry] = [:]
        var uses: UInt64 = 0
    }

    private let state = Mutex(State())
    private let capacity: Int

    init(capacity: Int) { self.capacity = max(capacity, 1) * 4 }

    func identity(of connection: PostgresConnection, logger: Logger) async throws -> SessionIdentity {
        let known = state.withLock { state -> SessionIdentity? in
            state.uses += 1
            state.entries[connection.id]?.lastUse = state.uses
            return state.entries[connection.id]?.identity
        }
        if let known { return known }
        let rows = try await connection.query("""
            SELECT pid, (extract(epoch FROM backend_start) * 1000000)::bigint FROM pg_stat_activity WHERE pid = pg_backend_pid()
            """, logger: logger).get().rows
        guard let row = rows.first else { throw StoreError(.unavailable, "PostgreSQL: pg_stat_activity does not show this session") }
        let (process, started) = try row.decode((Int32, Int64).self)
        let identity = SessionIdentity(process: process, startedMicroseconds: started)
        state.withLock { state in
            state.uses += 1
            state.entries[connection.id] = Entry(identity: identity, lastUse: state.uses)
            if state.entries.count > capacity, let oldest = state.entries.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
                state.entries[oldest] = nil
            }
        }
        return identity
    }
}

/// The token of a transaction's commit witness (`commit_witnesses`): 8 bytes of its time (microseconds since 1970,
/// big-endian, so tokens sort by time and old ones are found by a range) and 8 random bytes.
enum CommitWitness {
    static let lifetimeMicroseconds: Int64 = 3_600_000_000

    static func token(at time: Timestamp) -> Data {
        var bytes = Data(count: 16)
        let micros = UInt64(bitPattern: time.microsecondsSinceEpoch).bigEndian
        let random = UInt64.random(in: .min ... .max)
        withUnsafeBytes(of: micros) { bytes.replaceSubrange(0..<8, with: $0) }
        withUnsafeBytes(of: random) { bytes.replaceSubrange(8..<16, with: $0) }
        return bytes
    }

    /// Tokens below this one are older than `lifetimeMicroseconds` at `time`.
    static func expiryBound(at time: Timestamp) -> Data {
        let micros = UInt64(bitPattern: max(0, time.microsecondsSinceEpoch - lifetimeMicroseconds)).bigEndian
        return withUnsafeBytes(of: micros) { Data($0) }
    }
}

/// One run of a batch's transaction as its connection saw it: which transaction it began and, once `COMMIT` was
/// sent, the outcomes it would commit. When the connection fails meanwhile, `apply` settles the transaction with the
/// server (`PostgresCRMStore.settleLostTransaction`) instead of running the batch again blindly: after `COMMIT` it
/// may have committed (its witness row says), and before or after, a server that has not noticed the client is gone
/// keeps the transaction open with its contacts' locks, which the batch run again would wait for.
final class LostTransaction: Sendable {
    struct State: Sendable {
        /// The session the transaction runs in, known before `BEGIN`.
        var session: SessionIdentity?
        /// Set just before the statement that takes the locks is sent: before it, a lost session holds nothing
        /// another transaction could wait for.
        var lockingStarted = false
        /// The transaction's id, once it has one (with its locks).
        var transaction: TransactionIdentity?
        /// The token of the transaction's commit witness.
        var witness: Data?
        /// Set when `COMMIT` was sent: the outcomes it would commit.
        var outcomes: [EventOutcome]?
    }

    private let state = Mutex(State())

    /// Called before `BEGIN`.
    func opening(in session: SessionIdentity) {
        state.withLock { $0.session = session }
    }

    /// Called just before the statement that takes the locks (and writes the witness) is sent.
    func takingLocks() {
        state.withLock { $0.lockingStarted = true }
    }

    /// Called once the transaction has its id and has written its witness.
    func began(_ transaction: TransactionIdentity, witness: Data) {
        state.withLock {
            $0.transaction = transaction
            $0.witness = witness
        }
    }

    /// Called just before `COMMIT` is sent.
    func sendingCommit(_ outcomes: [EventOutcome]) {
        state.withLock { $0.outcomes = outcomes }
    }
    /// What is known of the transaction when `error` says its connection was lost without an answer, and the
    /// connection closed (so no other transaction can run on its session): the connection failed or closed in the
    /// driver, the call was left behind past its time limit (`AbandonableCall`), or the server ended the session
    /// (57P0x, which a server shutting down may also send after committing) or reported the connection broken (class
    /// 08). nil for any other error (the server answered, among others a cancelled statement, 57014, after which the
    /// connection goes on; or the writer failed: the transaction was rolled back on a working connection), when the
    /// caller was cancelled (the source hands the batch back, and redelivered messages are checked against the
    /// ledger), or before the statement that takes the locks was sent.
    func lost(by error: any Error) -> State? {
        let state = state.withLock { $0 }
        guard state.session != nil, state.lockingStarted else { return nil }
        switch error {
        case let error as PSQLError:
            if let code = error.serverInfo?[.sqlState] { return code.hasPrefix("08") || code.hasPrefix("57P") ? state : nil }
            return PostgresCRMStore.sessionIsSpent(error) ? state : nil
        case let error as StoreError:
            return error.code == .unavailable && error.message.hasPrefix(AbandonableCall.timeoutMessagePrefix) ? state : nil
        default:
            return nil
        }
    }
}
