/// Which contacts an operation touches.
public enum ContactSelector: Sendable, Hashable {
    case contactId(String)
    /// Every contact of the list whose `email` attribute equals this address (compared case-insensitively).
    case email(String)
}

/// What to do to a contact that does not exist yet.
public struct NewContactDefaults: Sendable, Hashable {
    public var emailSubscribed: Bool
    public var mobileSubscribed: Bool

    public init(emailSubscribed: Bool, mobileSubscribed: Bool) {
        self.emailSubscribed = emailSubscribed
        self.mobileSubscribed = mobileSubscribed
    }
}

/// A purchase-history row.
public struct PurchaseRow: Sendable, Hashable {
    public var kind: TransactionKind
    public var status: TransactionStatus
    public var amount: DecimalAmount
    public var currency: String?
    public var transactionId: String?
    public var vendor: String?
    public var paymentType: String?
    public var occurredAt: Timestamp

    public init(
        kind: TransactionKind, status: TransactionStatus, amount: DecimalAmount, currency: String? = nil,
        transactionId: String? = nil, vendor: String? = nil, paymentType: String? = nil, occurredAt: Timestamp
    ) {
        self.kind = kind
        self.status = status
        self.amount = amount
        self.currency = currency
        self.transactionId = transactionId
        self.vendor = vendor
        self.paymentType = paymentType
        self.occurredAt = occurredAt
    }
}

/// An action a contact took (Proca: a petition signature, a share), kept as history like purchases.
public struct ActionRow: Sendable, Hashable {
    /// Unique per contact: the sender's id of the action.
    public var key: String
    public var actionType: String
    public var campaign: String?
    public var actionPage: String?
    /// The action's own fields, as JSON text.
    public var fieldsJSON: String
    public var occurredAt: Timestamp

    public init(key: String, actionType: String, campaign: String?, actionPage: String?, fieldsJSON: String, occurredAt: Timestamp) {
        self.key = key
        self.actionType = actionType
        self.campaign = campaign
        self.actionPage = actionPage
        self.fieldsJSON = fieldsJSON
        self.occurredAt = occurredAt
    }

    public var json: JSONValue {
        .object([
            ("key", .string(key)), ("actionType", .string(actionType)), ("campaign", campaign.map(JSONValue.string) ?? .null),
            ("actionPage", actionPage.map(JSONValue.string) ?? .null),
            ("fields", (try? JSONParser().parse(fieldsJSON)) ?? .object([])), ("timestamp", .string(occurredAt.rfc3339)),
        ])
    }
}

/// A sender's record kept beside the contacts, so later messages can be joined to it.
public struct LinkedRecord: Sendable, Hashable {
    /// `person`, `event`, `lead`, `session_participation`.
    public var kind: String
    /// The sender's id of the record (`acme/event_person/51486`).
    public var id: String
    /// The contact it belongs to, if any.
    public var contactId: String?
    /// The event it belongs to, if any.
    public var eventId: String?
    /// When the sender generated this version; an older version never replaces a newer one.
    public var generatedAt: Timestamp
    /// The payload, as canonical JSON text.
    public var json: String
    /// Categories: on a person their ids (names nil), on an event ids with their current names.
    public var categories: [(id: String, name: String?)]

    public init(kind: String, id: String, contactId: String?, eventId: String?, generatedAt: Timestamp, json: String,
                categories: [(id: String, name: String?)] = []) {
        self.kind = kind
        self.id = id
        self.contactId = contactId
        self.eventId = eventId
        self.generatedAt = generatedAt
        self.json = json
        self.categories = categories
    }

    public static func == (lhs: LinkedRecord, rhs: LinkedRecord) -> Bool {
        lhs.kind == rhs.kind && lhs.id == rhs.id && lhs.contactId == rhs.contactId && lhs.eventId == rhs.eventId
            && lhs.generatedAt == rhs.generatedAt && lhs.json == rhs.json
            && lhs.categories.map(\.id) == rhs.categories.map(\.id) && lhs.categories.map(\.name) == rhs.categories.map(\.name)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(kind)
        hasher.combine(id)
        hasher.combine(json)
    }
}

/// One change to the CRM, as a store applies it. The planner turns an event and its actions into these; every store
/// implements them with the same meaning (the shared store test suite checks that).
public enum StoreOperation: Sendable, Hashable {
    /// Writes attributes (and a consent) to the contact. With `createWith`, a missing contact is created with those
    /// subscriptions first; without it, a missing contact is left alone and the operation reports it.
    case upsertContact(list: Int, contactId: String, attributes: [AttributeValue], consent: Consent?, createWith: NewContactDefaults?)
    case setAttribute(list: Int, contactId: String, attribute: AttributeValue)
    /// Adds a purchase row; a row with a transaction id is unique per contact, transaction id and status.
    case addPurchase(list: Int, contactId: String, row: PurchaseRow)
    case enterJourney(journey: Int, contactId: String, at: Timestamp)
    case anonymize(list: Int, selector: ContactSelector)
    /// Blocks until the given instant; a later block never shortens a longer one.
    case block(list: Int, selector: ContactSelector, until: Timestamp)
    /// Creates the contact if missing (with `createWith`), then writes `attributes` unless the contact already holds
    /// values from a later instant than `asOf`: of several records for one contact, the newest values win whatever
    /// the order they arrive in (Proca supporters).
    case mergeContact(list: Int, contactId: String, attributes: [AttributeValue], asOf: Timestamp, createWith: NewContactDefaults)
    /// Subscribes or unsubscribes the contact's email, keeping the reason of an unsubscription; a missing contact is
    /// left alone and reported. `asOf` is when the sender's status changed: a change older than the one the contact
    /// holds is left out (a retried or reordered older `double_opt_in` must not undo a newer `unsub`); without it the
    /// change applies in arrival order and leaves the held time as it is.
    case setEmailSubscription(list: Int, contactId: String, subscribed: Bool, reason: String?, asOf: Timestamp?)
    /// Adds a row to the contact's action history (a signature, a share); a row with the same key is kept once.
    case addActionRow(list: Int, contactId: String, row: ActionRow)
    /// Keeps a record the sender publishes about a contact or an event (Jomablue: a person, an event, a lead, a
    /// session participation), replacing an older version; an identical republication makes the whole event
    /// `.unchanged`.
    case upsertRecord(LinkedRecord)
    /// Keeps an incoming HTTP request as received (flattened body, headers without credentials). Erased with its
    /// contact by `anonymize`.
    case recordRequest(RequestRecord)
    /// Finds the profile a request names (by email, phone, id or a field's value), creating it unless the request
    /// only updates, writes its attributes, then applies the request's further operations to it. The outcome is
    /// `.imported` with the profile's id (Altcraft's `database_import`).
    case importProfile(ProfileImport)

    public struct Consent: Sendable, Hashable {
        public var channel: ConsentChannel
        public var consented: Bool

        public init(channel: ConsentChannel, consented: Bool) {
            self.channel = channel
            self.consented = consented
        }
    }
}

/// A profile import: how the profile is matched, what is written, what follows.
public struct ProfileImport: Sendable, Hashable {
    /// How the request names its profile.
    public enum Match: Sendable, Hashable {
        /// The `email` attribute, compared case-insensitively.
        case email(String)
        /// The `phone` attribute, compared after normalization (`+` and digits).
        case phone(String)
        /// The contact id itself.
        case profileId(String)
        /// The attribute `name` holding exactly `value`.
        case field(name: String, value: String)

        /// Altcraft's name of the matching mode: `email`, `phone`, `profile_id`, `custom`.
        public var mode: String {
            switch self {
            case .email: return "email"
            case .phone: return "phone"
            case .profileId: return "profile_id"
            case .field: return "custom"
            }
        }

        /// Readable, for error texts: `email "a@b.c"`, `field CRM_ID = "7"`.
        public var description: String {
            switch self {
            case let .email(value): return "email \(JSONValue.string(value).excerpt)"
            case let .phone(value): return "phone \(JSONValue.string(value).excerpt)"
            case let .profileId(value): return "profile_id \(JSONValue.string(value).excerpt)"
            case let .field(name, value): return "field \(name) = \(JSONValue.string(value).excerpt)"
            }
        }
    }

    public var list: Int
    public var match: Match
    public var attributes: [AttributeValue]
    /// No match is an error, not a new profile.
    public var updateOnly: Bool
    /// The id a new profile gets. `then` names the profile by this id; the store applies it to the matched one.
    public var newContactId: String
    public var createWith: NewContactDefaults
    /// Operations for the profile once matched or created (the mapping's actions for the import's event type).
    public var then: [StoreOperation]

    public init(
        list: Int, match: Match, attributes: [AttributeValue], updateOnly: Bool, newContactId: String,
        createWith: NewContactDefaults, then: [StoreOperation] = []
    ) {
        self.list = list
        self.match = match
        self.attributes = attributes
        self.updateOnly = updateOnly
        self.newContactId = newContactId
        self.createWith = createWith
        self.then = then
    }

    /// The attribute a new profile gets from its match (`email`, `phone` or the custom field); none for an id.
    public var matchAttribute: AttributeValue? {
        switch match {
        case let .email(value): return AttributeValue(name: "email", value: .string(value))
        case let .phone(value): return AttributeValue(name: "phone", value: .string(value))
        case .profileId: return nil
        case let .field(name, value): return AttributeValue(name: name, value: .string(value))
        }
    }
}

/// What a profile import did.
public struct ProfileImportResult: Sendable, Hashable {
    /// The matched or created profile; nil when there is none (see `failure`).
    public var profileId: String?
    public var created: Bool
    /// The request was applied before: nothing changed this time, the profile is the one it matches now.
    public var duplicate: Bool
    /// Why no profile was imported.
    public enum Failure: Sendable, Hashable {
        /// No match with `update_only`, or an unknown `profile_id`.
        case noMatch(String)
        /// The profile the request names was anonymized.
        case anonymized(String)
    }

    public var failure: Failure?
    /// Operations that had nothing to act on.
    public var notes: [String]

    public init(profileId: String?, created: Bool = false, duplicate: Bool = false, failure: Failure? = nil, notes: [String] = []) {
        self.profileId = profileId
        self.created = created
        self.duplicate = duplicate
        self.failure = failure
        self.notes = notes
    }
}

extension StoreOperation {
    /// The same operation aimed at contact `new` wherever it named contact `old`.
    public func replacingContactId(_ old: String, with new: String) -> StoreOperation {
        func id(_ value: String) -> String { value == old ? new : value }
        func selector(_ value: ContactSelector) -> ContactSelector {
            if case let .contactId(current) = value { return .contactId(id(current)) }
            return value
        }
        switch self {
        case let .upsertContact(list, contactId, attributes, consent, createWith):
            return .upsertContact(list: list, contactId: id(contactId), attributes: attributes, consent: consent, createWith: createWith)
        case let .setAttribute(list, contactId, attribute):
            return .setAttribute(list: list, contactId: id(contactId), attribute: attribute)
        case let .addPurchase(list, contactId, row):
            return .addPurchase(list: list, contactId: id(contactId), row: row)
        case let .enterJourney(journey, contactId, at):
            return .enterJourney(journey: journey, contactId: id(contactId), at: at)
        case let .anonymize(list, value):
            return .anonymize(list: list, selector: selector(value))
        case let .block(list, value, until):
            return .block(list: list, selector: selector(value), until: until)
        case let .mergeContact(list, contactId, attributes, asOf, createWith):
            return .mergeContact(list: list, contactId: id(contactId), attributes: attributes, asOf: asOf, createWith: createWith)
        case let .setEmailSubscription(list, contactId, subscribed, reason, asOf):
            return .setEmailSubscription(list: list, contactId: id(contactId), subscribed: subscribed, reason: reason, asOf: asOf)
        case let .addActionRow(list, contactId, row):
            return .addActionRow(list: list, contactId: id(contactId), row: row)
        case var .upsertRecord(record):
            record.contactId = record.contactId.map(id)
            return .upsertRecord(record)
        case var .recordRequest(record):
            record.contactId = record.contactId.map(id)
            return .recordRequest(record)
        case var .importProfile(profile):
            profile.then = profile.then.map { $0.replacingContactId(old, with: new) }
            return .importProfile(profile)
        }
    }
}
