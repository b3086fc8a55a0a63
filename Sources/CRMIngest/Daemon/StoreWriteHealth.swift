import CRMCore
import Synchronization

/// Whether the store's last write went through. A store can answer `SELECT 1` and still refuse every commit (its
/// disk full, the database switched to read-only): readiness asks this as well as `ping`, so `/readyz` says "not
/// ready" while writes fail and "ready" again after the first one that succeeds. A failure counts for
/// `freshFor` only: a source that holds a failing batch retries it every 5 s at most, which keeps the failure fresh,
/// while a failed HTTP request that nobody repeats does not keep the daemon "not ready" after the store recovered.
final class StoreWriteHealth: Sendable {
    private let lastFailure = Mutex<(reason: String, at: ContinuousClock.Instant)?>(nil)
    let freshFor: Duration
    let now: @Sendable () -> ContinuousClock.Instant

    init(freshFor: Duration = .seconds(30), now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.freshFor = freshFor
        self.now = now
    }

    /// The error of the last write if it failed within `freshFor` and none succeeded since.
    var failure: String? {
        lastFailure.withLock { last in
            guard let last, now() - last.at < freshFor else { return nil }
            return last.reason
        }
    }

    func succeeded() { lastFailure.withLock { $0 = nil } }
    func failed(_ error: any Error) {
        let at = now()
        lastFailure.withLock { $0 = ("\(error)", at) }
    }
}

/// The store, with every batch's result reported to a `StoreWriteHealth`.
struct WriteHealthReportingStore: StoreDecorator {
    let base: any CRMStore
    let health: StoreWriteHealth

    func settled(_ events: [PlannedEvent], _ result: Result<[EventOutcome], any Error>) async {
        switch result {
        case .success: health.succeeded()
        case let .failure(error): health.failed(error)
        }
    }
}
