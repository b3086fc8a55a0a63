/// The pluggable CRM store: SQLite embedded, PostgreSQL for several daemons.
///
/// `apply` is group commit: one transaction for the whole batch, each event inside its own savepoint with its ledger
/// row, so every event is applied whole or not at all and one bad event never undoes its neighbours.
public protocol CRMStore: Sendable {
    /// Applies a batch in order. Returns one outcome per event. Throws `StoreError` only when the whole batch
    /// failed (nothing of it committed), e.g. the database is busy or gone: the caller retries or gives up.
    /// `timing` says whether the batch may wait a little for others to share its commit.
    func apply(_ events: [PlannedEvent], now: Timestamp, timing: CommitTiming) async throws -> [EventOutcome]

    /// A submitter whose batches commit in the order they were submitted, for a caller that submits the next batch
    /// before the last one committed; nil when the store cannot keep that order (PostgreSQL commits on several
    /// connections at once). Each call makes a new submitter, whose order is its own.
    func makeOrderedSubmitter() -> (any OrderedSubmitter)?

    /// The most events the store takes in one `apply` (one transaction), nil for no limit. Callers with more cut
    /// their batch into consecutive parts (`transactionParts`), applied one after the other: a PostgreSQL
    /// transaction takes a lock per contact, and the server's lock table is shared and small.
    var maxEventsPerTransaction: Int? { get }

    /// What the store holds for one contact.
    func contact(_ contactId: String, list: Int?) async throws -> ContactLookupResult

    /// Removes ledger entries last written before `cutoff`, and request records received before it; returns how
    /// many ledger entries went.
    func pruneLedger(before cutoff: Timestamp) async throws -> Int

    /// The recorded incoming request with this event id, as JSON text.
    func incomingRequest(_ eventId: String) async throws -> String?

    /// The endpoint id of an HTTP integration configured without one: `proposed` the first time, the same id on
    /// every later call (it is kept in the store, so the URL survives restarts).
    func integrationEndpoint(source: String, proposed: String) async throws -> String

    /// Throws unless the store answers a trivial query (readiness checks).
    func ping() async throws
}

/// When a store commits a batch.
public enum CommitTiming: Sendable, Hashable {
    /// With whatever else arrives within the store's commit interval (SQLite's `commit_interval`): the caller only
    /// settles later (a broker delivery's ack), and fewer, larger commits cost less CPU per event.
    case batched
    /// As soon as the writer is free: a client waits on the line for the answer (an HTTP request). Holding its
    /// commit back would delay that answer, and a client that waits sends nothing more meanwhile, so the wait
    /// would gather few others.
    case prompt
}

/// Batches committed in the order they were submitted (`CRMStore.makeOrderedSubmitter`). When a batch fails whole
/// (the store threw), every batch submitted after it fails too, without running, and so does every batch submitted
/// from then on, until `resume()`. A caller that keeps its order holds new batches from the first failure until it
/// has retried the failed ones, and calls `resume()` once every batch submitted before it holds has failed.
public protocol OrderedSubmitter: Sendable {
    /// Takes a batch now, behind every batch taken before; `now` as in `CRMStore.apply`. A batch of no events
    /// succeeds at once.
    func submit(_ events: [PlannedEvent], now: Timestamp) -> PendingBatch
    /// Takes batches again after a failure.
    func resume()
}

/// A batch an `OrderedSubmitter` took. Await its outcomes once: a decorating store's work runs then.
public struct PendingBatch: Sendable {
    private let wait: @Sendable () async throws -> [EventOutcome]

    public init(_ wait: @escaping @Sendable () async throws -> [EventOutcome]) {
        self.wait = wait
    }

    /// One outcome per event, as `CRMStore.apply` returns; throws when the whole batch failed.
    public func outcomes() async throws -> [EventOutcome] { try await wait() }
}

extension CRMStore {
    /// No ordered submitter: callers wait for each batch before they submit the next.
    public func makeOrderedSubmitter() -> (any OrderedSubmitter)? { nil }

    public var maxEventsPerTransaction: Int? { nil }

    /// The consecutive parts of a batch of `count` events that the store takes one `apply` each
    /// (`maxEventsPerTransaction`): one part when it has no limit. Apply them in order, and once one part is given
    /// up, give up the rest without applying them: a later event of a contact must not commit before an earlier one.
    public func transactionParts(_ count: Int) -> [Range<Int>] {
        guard let limit = maxEventsPerTransaction, limit > 0, count > limit else { return [0..<count] }
        return stride(from: 0, to: count, by: limit).map { $0..<min($0 + limit, count) }
    }

    /// Walks a batch of `count` events through its transaction parts (`transactionParts`), in order. `body` gets each
    /// part and whether an earlier part was given back: if so, it gives this part back unapplied (a later event of a
    /// contact must not commit before an earlier one); otherwise it applies the part. It returns whether the part was
    /// given back.
    public func inTransactionParts(
        of count: Int, _ body: (_ part: Range<Int>, _ anEarlierPartWasGivenBack: Bool) async -> Bool
    ) async {
        var givenBack = false
        for part in transactionParts(count) {
            givenBack = await body(part, givenBack) || givenBack
        }
    }

    /// Applies a batch that may wait a little for others to share its commit (`CommitTiming.batched`).
    public func apply(_ events: [PlannedEvent], now: Timestamp) async throws -> [EventOutcome] {
        try await apply(events, now: now, timing: .batched)
    }
}

/// What became of one event of a batch.
public enum EventOutcome: Sendable, Hashable {
    /// Committed. `notes` say which actions had nothing to act on (a missing contact, an anonymized one).
    case applied(notes: [String])
    /// Its key was in the ledger: nothing changed.
    case duplicate
    /// A new message that republished a record exactly as stored: nothing changed (its key is now in the ledger).
    case unchanged
    /// The store refused this event (its savepoint was rolled back); the others of the batch are unaffected.
    case failed(StoreError)
    /// A profile import (`StoreOperation.importProfile`) ran, or its request was a duplicate: which profile.
    case imported(ProfileImportResult)
}

/// A store failure, with a code and a human message.
public struct StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        fileprivate enum Value: String { case busy, unavailable, rejected, schema, io }
        fileprivate let value: Value
        /// Locked or overloaded: retry later.
        public static let busy = Code(value: .busy)
        /// Cannot be reached or opened.
        public static let unavailable = Code(value: .unavailable)
        /// The data was refused (a constraint): retrying will not help.
        public static let rejected = Code(value: .rejected)
        /// The database schema is not what this version expects.
        public static let schema = Code(value: .schema)
        /// Disk or file error.
        public static let io = Code(value: .io)
        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Whether trying again later may succeed.
    public var isTransient: Bool { code == .busy || code == .unavailable || code == .io }

    public var description: String { "store \(code): \(message)" }
}

public enum ContactLookupResult: Sendable, Equatable {
    case found(ContactSnapshot)
    /// The contact was anonymized; only the tombstone is left.
    case anonymized
    case notFound
    /// The contact is in several lists and none was named.
    case inSeveralLists([Int])
}

/// Everything the store holds for a contact in one list.
public struct ContactSnapshot: Sendable, Equatable {
    public var contactId: String
    public var list: Int
    public var attributes: [AttributeValue]
    public var emailSubscribed: Bool
    public var mobileSubscribed: Bool
    public var consents: [ConsentChannel: Bool]
    public var purchases: [PurchaseRow]
    public var journeys: [Int]
    public var blockedUntil: Timestamp?
    /// Why the email is unsubscribed (`bounce`, `spam`, `unsub`…), when a source said.
    public var emailUnsubscribeReason: String?
    /// The action history, oldest first.
    public var actions: [ActionRow] = []
    /// The sender's records linked to the contact (Jomablue people, leads, session participations), with category
    /// names resolved from the latest event records.
    public var records: [ContactRecord] = []

    public init(
        contactId: String, list: Int, attributes: [AttributeValue] = [], emailSubscribed: Bool = true,
        mobileSubscribed: Bool = true, consents: [ConsentChannel: Bool] = [:], purchases: [PurchaseRow] = [],
        journeys: [Int] = [], blockedUntil: Timestamp? = nil
    ) {
        self.contactId = contactId
        self.list = list
        self.attributes = attributes
        self.emailSubscribed = emailSubscribed
        self.mobileSubscribed = mobileSubscribed
        self.consents = consents
        self.purchases = purchases
        self.journeys = journeys
        self.blockedUntil = blockedUntil
    }

    public func attribute(_ name: String) -> PropertyValue? { attributes.first { $0.name == name }?.value }

    /// The JSON `crm-ingest contact show` prints.
    public var json: JSONValue {
        .object([
            ("contactId", .string(contactId)),
            ("list", .number(String(list))),
            ("attributes", .object(attributes.map { ($0.name, $0.value.jsonValue) })),
            ("emailSubscribed", .bool(emailSubscribed)),
            ("mobileSubscribed", .bool(mobileSubscribed)),
            ("consents", .object(ConsentChannel.allCases.compactMap { channel in consents[channel].map { (channel.rawValue, .bool($0)) } })),
            ("purchases", .array(purchases.map(\.json))),
            ("journeys", .array(journeys.map { .number(String($0)) })),
            ("blockedUntil", blockedUntil.map { .string($0.rfc3339) } ?? .null),
            ("emailUnsubscribeReason", emailUnsubscribeReason.map(JSONValue.string) ?? .null),
            ("actions", .array(actions.map(\.json))),
            ("records", .array(records.map(\.json))),
            ("anonymized", .bool(false)),
        ])
    }

    /// The JSON for a contact that only a tombstone remembers.
    public static func anonymizedJSON(contactId: String, list: Int?) -> JSONValue {
        .object([
            ("contactId", .string(contactId)),
            ("list", list.map { .number(String($0)) } ?? .null),
            ("attributes", .object([])),
            ("emailSubscribed", .bool(false)),
            ("mobileSubscribed", .bool(false)),
            ("consents", .object([])),
            ("purchases", .array([])),
            ("journeys", .array([])),
            ("blockedUntil", .null),
            ("anonymized", .bool(true)),
        ])
    }
}

/// A linked record as `contact show` prints it.
public struct ContactRecord: Sendable, Equatable {
    public var kind: String
    public var id: String
    public var eventId: String?
    /// Category ids with their current names (nil when no event record names them yet).
    public var categories: [Category]

    public struct Category: Sendable, Equatable {
        public var id: String
        public var name: String?
        public init(id: String, name: String?) {
            self.id = id
            self.name = name
        }
    }

    public init(kind: String, id: String, eventId: String?, categories: [Category]) {
        self.kind = kind
        self.id = id
        self.eventId = eventId
        self.categories = categories
    }

    public var json: JSONValue {
        .object([
            ("kind", .string(kind)), ("id", .string(id)), ("eventId", eventId.map(JSONValue.string) ?? .null),
            ("categories", .array(categories.map { .object([("id", .string($0.id)), ("name", $0.name.map(JSONValue.string) ?? .null)]) })),
        ])
    }
}

extension PurchaseRow {
    public var json: JSONValue {
        .object([
            ("type", .string(kind.rawValue)),
            ("status", .string(status.rawValue)),
            ("amount", .number(amount.text)),
            ("currency", currency.map(JSONValue.string) ?? .null),
            ("transactionId", transactionId.map(JSONValue.string) ?? .null),
            ("vendor", vendor.map(JSONValue.string) ?? .null),
            ("paymentType", paymentType.map(JSONValue.string) ?? .null),
            ("timestamp", .string(occurredAt.rfc3339)),
        ])
    }
}
