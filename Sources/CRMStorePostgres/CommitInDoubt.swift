import CRMCore
import Foundation
import PostgresNIO
import Synchronization

/// A transaction as the server knows it: its id (`txid_current()`, with the epoch) and the server process of its
/// session.
struct TransactionIdentity: Sendable, Hashable {
    var id: Int64
    var backendProcess: Int32

    /// The id as `xmin` and `pg_stat_activity.backend_xid` show it: 32 bits, as text.
    var shortId: String { String(id % (Int64(1) << 32)) }
}

/// One run of a batch's transaction as its connection saw it: which transaction it began and, once `COMMIT` was
/// sent, the outcomes it would commit and a row that shows whether it did. When the connection fails meanwhile,
/// `apply` settles the transaction with the server (`PostgresCRMStore.settleLostTransaction`) instead of running the
/// batch again blindly: after `COMMIT` it may have committed, and before or after, a server that has not noticed the
/// client is gone keeps the transaction open with its contacts' locks, which the batch run again would wait for.
final class LostTransaction: Sendable {
    struct State: Sendable {
        var transaction: TransactionIdentity?
        /// Set when `COMMIT` was sent.
        var commit: Commit?
    }

    struct Commit: Sendable {
        var outcomes: [EventOutcome]
        /// The ledger key of the batch's first applied event, which this transaction inserted or updated: the row
        /// has the transaction's id as its `xmin` if, and only if, the transaction committed. nil when no event was
        /// applied (duplicates, refusals): then running the batch again changes nothing either.
        var witness: Data?
    }

    private let state = Mutex(State())

    /// Called once the transaction has its id.
    func began(_ transaction: TransactionIdentity) {
        state.withLock { $0.transaction = transaction }
    }

    /// Called just before `COMMIT` is sent.
    func sendingCommit(_ commit: Commit) {
        state.withLock { $0.commit = commit }
    }

    /// What is known of the transaction when `error` says its connection was lost without an answer: the connection
    /// failed or closed in the driver, the call was left behind past its time limit (`AbandonableCall`), or the
    /// server ended the session (class 57, which a server shutting down may also send after committing) or reported
    /// the connection broken (class 08). nil for any other error (the server answered, or the writer failed: the
    /// transaction was rolled back on a working connection), when the caller was cancelled (the source hands the
    /// batch back, and redelivered messages are checked against the ledger), or before the transaction had an id.
    func lost(by error: any Error) -> State? {
        let state = state.withLock { $0 }
        guard state.transaction != nil else { return nil }
        switch error {
        case let error as PSQLError:
            if let code = error.serverInfo?[.sqlState] { return code.hasPrefix("08") || code.hasPrefix("57") ? state : nil }
            return PostgresCRMStore.sessionIsSpent(error) ? state : nil
        case let error as StoreError:
            return error.code == .unavailable && error.message.hasPrefix(AbandonableCall.timeoutMessagePrefix) ? state : nil
        default:
            return nil
        }
    }
}
