/// An event's type: one of the twelve of the default format (Symplify's realtime CRM events), or a custom type an
/// integration names (an HTTP source's `event_type`, e.g. `CUSTOM_ORDER`).
public struct EventType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String

    /// Any name; `defaultFormat(named:)` accepts only the twelve.
    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    public static let userRegistration = EventType(rawValue: "USER_REGISTRATION")
    public static let userUpdate = EventType(rawValue: "USER_UPDATE")
    public static let userBlocked = EventType(rawValue: "USER_BLOCKED")
    public static let userConsentUpdate = EventType(rawValue: "USER_CONSENT_UPDATE")
    public static let withdrawalRequested = EventType(rawValue: "WITHDRAWAL_REQUESTED")
    public static let withdrawalApproved = EventType(rawValue: "WITHDRAWAL_APPROVED")
    public static let withdrawalRejected = EventType(rawValue: "WITHDRAWAL_REJECTED")
    public static let withdrawalCancelled = EventType(rawValue: "WITHDRAWAL_CANCELLED")
    public static let depositRequested = EventType(rawValue: "DEPOSIT_REQUESTED")
    public static let depositApproved = EventType(rawValue: "DEPOSIT_APPROVED")
    public static let depositRejected = EventType(rawValue: "DEPOSIT_REJECTED")
    public static let depositCancelled = EventType(rawValue: "DEPOSIT_CANCELLED")

    /// The twelve types of the default format, in the seed's order.
    public static let defaultFormatTypes: [EventType] = [
        .userRegistration, .userUpdate, .userBlocked, .userConsentUpdate,
        .withdrawalRequested, .withdrawalApproved, .withdrawalRejected, .withdrawalCancelled,
        .depositRequested, .depositApproved, .depositRejected, .depositCancelled,
    ]

    /// The default-format type with this name, or nil.
    public static func defaultFormat(named name: String) -> EventType? {
        let type = EventType(rawValue: name)
        return defaultFormatTypes.contains(type) ? type : nil
    }

    public var isDefaultFormat: Bool { Self.defaultFormatTypes.contains(self) }

    public var description: String { rawValue }

    /// For a money event: what moved and how far it got.
    public var transaction: (kind: TransactionKind, status: TransactionStatus)? {
        switch self {
        case .withdrawalRequested: return (.withdrawal, .requested)
        case .withdrawalApproved: return (.withdrawal, .approved)
        case .withdrawalRejected: return (.withdrawal, .rejected)
        case .withdrawalCancelled: return (.withdrawal, .cancelled)
        case .depositRequested: return (.deposit, .requested)
        case .depositApproved: return (.deposit, .approved)
        case .depositRejected: return (.deposit, .rejected)
        case .depositCancelled: return (.deposit, .cancelled)
        default: return nil
        }
    }
}

public enum TransactionKind: String, Sendable, Hashable { case deposit = "DEPOSIT", withdrawal = "WITHDRAWAL" }
public enum TransactionStatus: String, Sendable, Hashable {
    case requested = "REQUESTED", approved = "APPROVED", rejected = "REJECTED", cancelled = "CANCELLED"
}

/// The channels a consent applies to.
public enum ConsentChannel: String, Sendable, CaseIterable, Hashable {
    case email = "EMAIL", sms = "SMS", push = "PUSH", inApp = "INAPP", print = "PRINT", page = "PAGE", audio = "AUDIO"
}

/// What every user event carries.
public struct UserPayload: Sendable, Hashable {
    /// The identifier shared between the sender's system and the CRM.
    public var contactId: String
    /// Flattened properties, in message order.
    public var properties: [Property]

    public init(contactId: String, properties: [Property] = []) {
        self.contactId = contactId
        self.properties = properties
    }
}

public struct ConsentPayload: Sendable, Hashable {
    public var contactId: String
    public var properties: [Property]
    public var channel: ConsentChannel
    public var consented: Bool

    public init(contactId: String, properties: [Property] = [], channel: ConsentChannel, consented: Bool) {
        self.contactId = contactId
        self.properties = properties
        self.channel = channel
        self.consented = consented
    }
}

/// A deposit or withdrawal at one stage.
public struct TransactionPayload: Sendable, Hashable {
    public var contactId: String
    public var properties: [Property]
    public var timestamp: Timestamp
    public var amount: DecimalAmount
    public var currency: String?
    public var transactionId: String?
    public var vendor: String?
    public var paymentType: String?

    public init(
        contactId: String, properties: [Property] = [], timestamp: Timestamp, amount: DecimalAmount,
        currency: String? = nil, transactionId: String? = nil, vendor: String? = nil, paymentType: String? = nil
    ) {
        self.contactId = contactId
        self.properties = properties
        self.timestamp = timestamp
        self.amount = amount
        self.currency = currency
        self.transactionId = transactionId
        self.vendor = vendor
        self.paymentType = paymentType
    }
}

/// An event of a custom type: a contact, its properties and, when the sender says, the time it happened.
public struct CustomEventPayload: Sendable, Hashable {
    public var type: EventType
    public var contactId: String
    public var properties: [Property]
    public var timestamp: Timestamp?

    public init(type: EventType, contactId: String, properties: [Property] = [], timestamp: Timestamp? = nil) {
        self.type = type
        self.contactId = contactId
        self.properties = properties
        self.timestamp = timestamp
    }
}

/// An event, typed: the twelve of the default format, or a custom one.
public enum CRMEvent: Sendable, Hashable {
    case userRegistration(UserPayload)
    case userUpdate(UserPayload)
    case userBlocked(UserPayload)
    case userConsentUpdate(ConsentPayload)
    case withdrawalRequested(TransactionPayload)
    case withdrawalApproved(TransactionPayload)
    case withdrawalRejected(TransactionPayload)
    case withdrawalCancelled(TransactionPayload)
    case depositRequested(TransactionPayload)
    case depositApproved(TransactionPayload)
    case depositRejected(TransactionPayload)
    case depositCancelled(TransactionPayload)
    case custom(CustomEventPayload)

    public var type: EventType {
        switch self {
        case .userRegistration: return .userRegistration
        case .userUpdate: return .userUpdate
        case .userBlocked: return .userBlocked
        case .userConsentUpdate: return .userConsentUpdate
        case .withdrawalRequested: return .withdrawalRequested
        case .withdrawalApproved: return .withdrawalApproved
        case .withdrawalRejected: return .withdrawalRejected
        case .withdrawalCancelled: return .withdrawalCancelled
        case .depositRequested: return .depositRequested
        case .depositApproved: return .depositApproved
        case .depositRejected: return .depositRejected
        case .depositCancelled: return .depositCancelled
        case let .custom(p): return p.type
        }
    }

    public var contactId: String {
        switch self {
        case let .userRegistration(p), let .userUpdate(p), let .userBlocked(p): return p.contactId
        case let .userConsentUpdate(p): return p.contactId
        case let .withdrawalRequested(p), let .withdrawalApproved(p), let .withdrawalRejected(p), let .withdrawalCancelled(p),
             let .depositRequested(p), let .depositApproved(p), let .depositRejected(p), let .depositCancelled(p):
            return p.contactId
        case let .custom(p): return p.contactId
        }
    }

    public var properties: [Property] {
        switch self {
        case let .userRegistration(p), let .userUpdate(p), let .userBlocked(p): return p.properties
        case let .userConsentUpdate(p): return p.properties
        case let .withdrawalRequested(p), let .withdrawalApproved(p), let .withdrawalRejected(p), let .withdrawalCancelled(p),
             let .depositRequested(p), let .depositApproved(p), let .depositRejected(p), let .depositCancelled(p):
            return p.properties
        case let .custom(p): return p.properties
        }
    }

    /// The consent a USER_CONSENT_UPDATE carries.
    public var consent: (channel: ConsentChannel, consented: Bool)? {
        if case let .userConsentUpdate(p) = self { return (p.channel, p.consented) }
        return nil
    }

    /// The money movement a WITHDRAWAL_* or DEPOSIT_* event carries.
    public var transaction: TransactionPayload? {
        switch self {
        case let .withdrawalRequested(p), let .withdrawalApproved(p), let .withdrawalRejected(p), let .withdrawalCancelled(p),
             let .depositRequested(p), let .depositApproved(p), let .depositRejected(p), let .depositCancelled(p):
            return p
        default: return nil
        }
    }

    /// When the event says it happened, if it says.
    public var timestamp: Timestamp? {
        if case let .custom(p) = self { return p.timestamp }
        return transaction?.timestamp
    }
}
