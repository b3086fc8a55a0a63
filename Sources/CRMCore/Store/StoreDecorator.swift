/// A store that adds to `apply` what its owner needs around it and passes every other call to `base`. Its `apply`
/// must pass the `timing` on (`base.apply(events, now: now, timing: timing)`): the two-argument form would turn a
/// prompt batch into a batched one.
public protocol StoreDecorator: CRMStore {
    var base: any CRMStore { get }
}

extension StoreDecorator {
    public func contact(_ contactId: String, list: Int?) async throws -> ContactLookupResult { try await base.contact(contactId, list: list) }
    public func pruneLedger(before cutoff: Timestamp) async throws -> Int { try await base.pruneLedger(before: cutoff) }
    public func incomingRequest(_ eventId: String) async throws -> String? { try await base.incomingRequest(eventId) }
    public func integrationEndpoint(source: String, proposed: String) async throws -> String {
        try await base.integrationEndpoint(source: source, proposed: proposed)
    }
    public func ping() async throws { try await base.ping() }
}
