/// A store that adds what its owner needs once a batch settled (`settled`) and passes every other call to `base`.
/// Batches applied (`apply`) and batches submitted in order (`makeOrderedSubmitter`) both go through `settled`,
/// before their caller sees the outcomes. A decorator that implements `apply` itself must implement
/// `makeOrderedSubmitter` too (or return nil from it): submitted batches never go through `apply`.
public protocol StoreDecorator: CRMStore {
    var base: any CRMStore { get }
    /// Runs after each batch committed or failed whole, before the caller gets the outcomes or the error.
    func settled(_ events: [PlannedEvent], _ result: Result<[EventOutcome], any Error>) async
}

extension StoreDecorator {
    public func apply(_ events: [PlannedEvent], now: Timestamp, timing: CommitTiming) async throws -> [EventOutcome] {
        try await settling(events) { try await base.apply(events, now: now, timing: timing) }
    }

    /// Runs `body`, then `settled` with its result, and returns or rethrows that result.
    func settling(_ events: [PlannedEvent], _ body: () async throws -> [EventOutcome]) async throws -> [EventOutcome] {
        let result: Result<[EventOutcome], any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        await settled(events, result)
        return try result.get()
    }

    public func makeOrderedSubmitter() -> (any OrderedSubmitter)? {
        base.makeOrderedSubmitter().map { DecoratedSubmitter(base: $0, decorator: self) }
    }

    public func contact(_ contactId: String, list: Int?) async throws -> ContactLookupResult { try await base.contact(contactId, list: list) }
    public func pruneLedger(before cutoff: Timestamp) async throws -> Int { try await base.pruneLedger(before: cutoff) }
    public func incomingRequest(_ eventId: String) async throws -> String? { try await base.incomingRequest(eventId) }
    public func integrationEndpoint(source: String, proposed: String) async throws -> String {
        try await base.integrationEndpoint(source: source, proposed: proposed)
    }
    public func ping() async throws { try await base.ping() }
    public var maxEventsPerTransaction: Int? { base.maxEventsPerTransaction }
}

/// A decorated store's ordered submitter: the base store's, with the decorator's `settled` run when a batch's
/// outcomes are awaited.
public struct DecoratedSubmitter<Decorator: StoreDecorator>: OrderedSubmitter {
    public let base: any OrderedSubmitter
    public let decorator: Decorator

    public init(base: any OrderedSubmitter, decorator: Decorator) {
        self.base = base
        self.decorator = decorator
    }

    public func submit(_ events: [PlannedEvent], now: Timestamp) -> PendingBatch {
        let pending = base.submit(events, now: now)
        return PendingBatch { [decorator] in try await decorator.settling(events) { try await pending.outcomes() } }
    }

    public func resume() { base.resume() }
}
