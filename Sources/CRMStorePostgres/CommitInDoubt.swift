import CRMCore
import PostgresNIO
import Synchronization

/// A transaction as the server knows it: its id (`txid_current()`, with the epoch) and the server process of its
/// session.
struct TransactionIdentity: Sendable, Hashable {
    var id: Int64
    var backendProcess: Int32
}

/// One run of a batch's transaction as its connection saw it: which transaction it began and, once `COMMIT` was
/// sent, the outcomes it would commit. When the connection fails meanwhile, `apply` asks the server what became of
/// the transaction (`PostgresCRMStore.settleLostTransaction`) instead of running the batch again blindly: after
/// `COMMIT` it may have committed, and before or after, a server that has not noticed the client is gone keeps the
/// transaction open with its contacts' locks, which the batch run again would wait for.
final class LostTransaction: Sendable {
    struct State: Sendable {
        var transaction: TransactionIdentity?
        /// Set when `COMMIT` was sent.
        var outcomes: [EventOutcome]?
    }

    private let state = Mutex(State())

    /// Called once the transaction has its id.
    func began(_ transaction: TransactionIdentity) {
        state.withLock { $0.transaction = transaction }
    }

    /// Called just before `COMMIT` is sent.
    func sendingCommit(_ outcomes: [EventOutcome]) {
        state.withLock { $0.outcomes = outcomes }
    }

    /// What is known of the transaction when `error` says its connection was lost without an answer: the connection
    /// failed or closed, the call was left behind past its time limit (`AbandonableCall`), or the server ended the
    /// session (class 57, which a server shutting down may also send after committing). nil when the server answered
    /// with an error of another class (its transaction did not commit and it knows its client), when the caller was
    /// cancelled (the source hands the batch back, and redelivered messages are checked against the ledger), or
    /// before the transaction had an id.
    func lost(by error: any Error) -> State? {
        let state = state.withLock { $0 }
        guard state.transaction != nil else { return nil }
        if error is CancellationError { return nil }
        if let code = (error as? PSQLError)?.serverInfo?[.sqlState], !code.hasPrefix("08"), !code.hasPrefix("57") { return nil }
        return state
    }
}
