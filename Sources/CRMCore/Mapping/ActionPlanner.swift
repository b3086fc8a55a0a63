/// Turns an event and the actions mapped to its type into store operations. Pure: no I/O, no clock.
public struct ActionPlanner: Sendable {
    public let mapping: Mapping

    public init(mapping: Mapping) {
        self.mapping = mapping
    }

    public struct Plan: Sendable, Hashable {
        public var operations: [StoreOperation]
        /// Properties that matched no attribute and were not stored.
        public var unmatchedProperties: Int
    }

    /// The plan for one event, or nil when no action is mapped to its type (the event is skipped).
    /// `receivedAt` stands in for the event's time when it carries none (blocks count from it).
    public func plan(_ event: CRMEvent, receivedAt: Timestamp) throws(EventError) -> Plan? {
        guard let actions = mapping.actions[event.type], !actions.isEmpty else { return nil }
        let contactId = event.contactId
        let (attributes, unmatched) = mapping.attributeValues(of: event.properties)
        let consent = event.consent.map { StoreOperation.Consent(channel: $0.channel, consented: $0.consented) }
        let eventTime = event.timestamp ?? receivedAt
        var operations: [StoreOperation] = []
        operations.reserveCapacity(actions.count)

        func selector(_ lookup: ContactLookup, _ action: Action) throws(EventError) -> ContactSelector {
            switch lookup {
            case .originalId: return .contactId(contactId)
            case .email:
                guard let email = attributes.first(where: { $0.name == "email" })?.value.stringValue, !email.isEmpty else {
                    throw EventError(
                        .unresolvable, field: "\(event.type.rawValue).properties",
                        reason: "\(action.name) finds the contact by email, but the event carries no value for the attribute \"email\""
                    )
                }
                return .email(email)
            }
        }

        for action in actions {
            switch action {
            case let .createContact(list, emailSubscribed, mobileSubscribed):
                operations.append(.upsertContact(
                    list: list, contactId: contactId, attributes: attributes, consent: consent,
                    createWith: NewContactDefaults(emailSubscribed: emailSubscribed, mobileSubscribed: mobileSubscribed)
                ))
            case let .updateContact(list):
                operations.append(.upsertContact(list: list, contactId: contactId, attributes: attributes, consent: consent, createWith: nil))
            case let .setProperty(list, property, value):
                operations.append(.setAttribute(list: list, contactId: contactId, attribute: AttributeValue(name: property, value: value)))
            case let .createPurchaseRow(list):
                guard let transaction = event.transaction, let (kind, status) = event.type.transaction else {
                    // The configuration loader refuses this mapping; a hand-built Mapping can still hold it.
                    throw EventError(.unresolvable, field: event.type.rawValue, reason: "create_purchase_row needs a deposit or withdrawal event")
                }
                operations.append(.addPurchase(list: list, contactId: contactId, row: PurchaseRow(
                    kind: kind, status: status, amount: transaction.amount, currency: transaction.currency,
                    transactionId: transaction.transactionId, vendor: transaction.vendor,
                    paymentType: transaction.paymentType, occurredAt: transaction.timestamp
                )))
            case let .enterJourney(journey):
                operations.append(.enterJourney(journey: journey, contactId: contactId, at: eventTime))
            case let .anonymizeContact(list, findBy):
                operations.append(.anonymize(list: list, selector: try selector(findBy, action)))
            case let .tempBlockContact(list, findBy, duration, unit):
                operations.append(.block(list: list, selector: try selector(findBy, action), until: eventTime.adding(duration, unit)))
            }
        }
        return Plan(operations: operations, unmatchedProperties: unmatched)
    }
}
