import CRMCore

/// A store that adds to `apply` what the daemon needs around it and passes every other call to `base`.
protocol StoreDecorator: CRMStore {
    var base: any CRMStore { get }
}

extension StoreDecorator {
    func contact(_ contactId: String, list: Int?) async throws -> ContactLookupResult { try await base.contact(contactId, list: list) }
    func pruneLedger(before cutoff: Timestamp) async throws -> Int { try await base.pruneLedger(before: cutoff) }
    func incomingRequest(_ eventId: String) async throws -> String? { try await base.incomingRequest(eventId) }
    func integrationEndpoint(source: String, proposed: String) async throws -> String {
        try await base.integrationEndpoint(source: source, proposed: proposed)
    }
    func ping() async throws { try await base.ping() }
}
