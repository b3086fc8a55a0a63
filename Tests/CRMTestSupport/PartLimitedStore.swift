import CRMCore
import Synchronization

/// A store that declares a limit of events per transaction (`CRMStore.maxEventsPerTransaction`, as PostgreSQL does),
/// records the size of each `apply`, and can fail one call (1-based) with a given error, applying nothing. Every
/// other call goes to `inner`. No ordered submitter: every batch goes through `apply`.
public final class PartLimitedStore: StoreDecorator {
    public let inner: any CRMStore
    public var base: any CRMStore { inner }
    public let limit: Int
    let failing: (call: Int, error: StoreError)?
    let beforeCall: @Sendable (Int) async -> Void
    private let sizes = Mutex<[Int]>([])

    /// `beforeCall` runs with each call's number before it applies (a test may hold a call there).
    public init(
        inner: any CRMStore, limit: Int, failing: (call: Int, error: StoreError)? = nil, beforeCall: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.inner = inner
        self.limit = limit
        self.failing = failing
        self.beforeCall = beforeCall
    }

    /// The number of events of each `apply` so far, in order (the failed call too).
    public var calls: [Int] { sizes.withLock { $0 } }

    public var maxEventsPerTransaction: Int? { limit }

    public func apply(_ events: [PlannedEvent], now: Timestamp, timing: CommitTiming) async throws -> [EventOutcome] {
        let call = sizes.withLock { $0.append(events.count); return $0.count }
        await beforeCall(call)
        if let failing, call == failing.call { throw failing.error }
        return try await inner.apply(events, now: now, timing: timing)
    }

    public func makeOrderedSubmitter() -> (any OrderedSubmitter)? { nil }
    public func settled(_ events: [PlannedEvent], _ result: Result<[EventOutcome], any Error>) async {}
}
