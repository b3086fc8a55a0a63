/// The twelve event types of the default format (Symplify's realtime CRM events).
public enum EventType: String, Sendable, CaseIterable, Hashable {
    case userRegistration = "USER_REGISTRATION"
    case userUpdate = "USER_UPDATE"
    case userBlocked = "USER_BLOCKED"
    case userConsentUpdate = "USER_CONSENT_UPDATE"
    case withdrawalRequested = "WITHDRAWAL_REQUESTED"
    case withdrawalApproved = "WITHDRAWAL_APPROVED"
    case withdrawalRejected = "WITHDRAWAL_REJECTED"
    case withdrawalCancelled = "WITHDRAWAL_CANCELLED"
    case depositRequested = "DEPOSIT_REQUESTED"
    case depositApproved = "DEPOSIT_APPROVED"
    case depositRejected = "DEPOSIT_REJECTED"
    case depositCancelled = "DEPOSIT_CANCELLED"

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

/// An event of the default format, typed.
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
        }
    }

    public var contactId: String {
        switch self {
        case let .userRegistration(p), let .userUpdate(p), let .userBlocked(p): return p.contactId
        case let .userConsentUpdate(p): return p.contactId
        case let .withdrawalRequested(p), let .withdrawalApproved(p), let .withdrawalRejected(p), let .withdrawalCancelled(p),
             let .depositRequested(p), let .depositApproved(p), let .depositRejected(p), let .depositCancelled(p):
            return p.contactId
        }
    }

    public var properties: [Property] {
        switch self {
        case let .userRegistration(p), let .userUpdate(p), let .userBlocked(p): return p.properties
        case let .userConsentUpdate(p): return p.properties
        case let .withdrawalRequested(p), let .withdrawalApproved(p), let .withdrawalRejected(p), let .withdrawalCancelled(p),
             let .depositRequested(p), let .depositApproved(p), let .depositRejected(p), let .depositCancelled(p):
            return p.properties
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
    public var timestamp: Timestamp? { transaction?.timestamp }
}
