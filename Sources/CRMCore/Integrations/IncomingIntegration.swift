import Crypto

/// A value of an HTTP request an integration reads: a flattened key of the JSON body (`body.products.0.name`) or
/// a header (`headers.X-Request-ID`, matched case-insensitively).
public enum RequestField: Sendable, Hashable, CustomStringConvertible {
    case body(String)
    case header(String)

    /// Parses `body.<flattened key>` or `headers.<name>`; nil for anything else.
    public init?(_ text: String) {
        if text.hasPrefix("body."), text.count > 5 {
            self = .body(String(text.dropFirst(5)))
        } else if text.hasPrefix("headers."), text.count > 8 {
            self = .header(String(text.dropFirst(8)))
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case let .body(key): return "body.\(key)"
        case let .header(name): return "headers.\(name)"
        }
    }
}

/// Where a request's event type comes from.
public enum IncomingEventType: Sendable, Hashable {
    /// Every request of the integration has this type.
    case fixed(EventType)
    /// The type is the value of this field (a string).
    case field(RequestField)
}

/// How requests are recognised as duplicates (Synerise's "requests deduplication").
public struct RequestDeduplication: Sendable, Hashable {
    /// 1 to 5 fields whose values make the deduplication hash.
    public var parameters: [RequestField]
    /// A header carrying the client's own hash; when a request has it, it alone is used.
    public var header: String?
    /// A hash is a duplicate for this long after the last request that carried it.
    public var windowSeconds: Int64

    public init(parameters: [RequestField] = [], header: String? = nil, windowSeconds: Int64 = 7 * 86_400) {
        self.parameters = parameters
        self.header = header
        self.windowSeconds = windowSeconds
    }
}

/// One HTTP request as the integration sees it, after authentication.
public struct IncomingRequest: Sendable {
    public var method: String
    /// In the order received; names as the client wrote them.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public var receivedAt: Timestamp
    /// The id this request gets, answered to the client and recorded.
    public var eventId: String

    public init(method: String, headers: [(name: String, value: String)], body: [UInt8], receivedAt: Timestamp, eventId: String) {
        self.method = method
        self.headers = headers
        self.body = body
        self.receivedAt = receivedAt
        self.eventId = eventId
    }

    /// The first value of a header, matched case-insensitively.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }
}

/// An incoming integration: turns an authenticated request into the event the store applies atomically, with the
/// request record and the deduplication key. Pure: no I/O, no clock.
public struct IncomingIntegration: Sendable {
    public var source: String
    public var endpointId: String
    public var eventType: IncomingEventType
    /// The field naming the contact; needed when the request's type has actions.
    public var contactId: RequestField?
    public var deduplication: RequestDeduplication?
    public var jsonLimits: JSONLimits
    /// Most properties a request's flattened body may have (`limits.max_properties`).
    public var maxProperties: Int

    /// Headers never recorded: they carry credentials.
    public static let unrecordedHeaders: Set<String> = ["authorization", "proxy-authorization", "cookie"]

    public init(
        source: String, endpointId: String, eventType: IncomingEventType, contactId: RequestField?,
        deduplication: RequestDeduplication?, jsonLimits: JSONLimits = JSONLimits(), maxProperties: Int = InputLimits().maxProperties
    ) {
        self.maxProperties = maxProperties
        self.source = source
        self.endpointId = endpointId
        self.eventType = eventType
        self.contactId = contactId
        self.deduplication = deduplication
        self.jsonLimits = jsonLimits
    }

    /// The event for a request: recording it always, plus the mapped actions when its type has any.
    /// Errors name the field (`body`, `body.customer_email`, `headers.X-Type`) and the reason.
    public func prepare(_ request: IncomingRequest, planner: ActionPlanner) throws(EventError) -> PlannedEvent {
        let json: JSONValue
        do {
            json = try JSONParser(limits: jsonLimits).parse(request.body)
        } catch {
            throw EventError(.invalidJSON, field: "body", reason: error.description)
        }
        guard case .object = json else {
            throw EventError(.notAnObject, field: "body", reason: "expected a JSON object, got \(json.typeName)")
        }
        let properties = JSONFlattener.flatten(json)
        if let error = InputLimits.tooManyProperties(properties.count, limit: maxProperties, field: "body") { throw error }
        let type = try eventType(request, properties)
        let actions = planner.mapping.actions[type] ?? []

        var contactId: String?
        if let field = self.contactId,
           let value = try value(of: field, request, properties, role: "names the contact", expected: "a non-empty string or number") {
            guard let text = value.stringValue, !text.isEmpty, value != .bool(true), value != .bool(false) else {
                throw EventError(.invalidField, field: field.description, reason: "names the contact, so it must be a non-empty string or number, got \(value.jsonValue.excerpt)")
            }
            contactId = text
        }
        var operations: [StoreOperation] = []
        var unmatched = 0
        if !actions.isEmpty {
            guard let contactId else {
                let field = self.contactId?.description ?? "contact_id"
                throw EventError(.missingField, field: field, reason: "required: it names the contact the \(type.rawValue) actions work on")
            }
            let event = CRMEvent.custom(CustomEventPayload(type: type, contactId: contactId, properties: properties))
            if let plan = try planner.plan(event, receivedAt: request.receivedAt) {
                operations = plan.operations
                unmatched = plan.unmatchedProperties
            }
        }
        let record = RequestRecord(
            eventId: request.eventId, source: source, endpointId: endpointId, eventType: type, contactId: contactId,
            receivedAt: request.receivedAt, json: JSONWriter.string(recordJSON(request, properties))
        )
        operations.append(.recordRequest(record))
        return PlannedEvent(
            key: key(request, properties), type: type, contactId: contactId ?? "", operations: operations,
            unmatchedProperties: unmatched
        )
    }

    /// The request as recorded: the shape of the seed's example, with the body flattened.
    func recordJSON(_ request: IncomingRequest, _ properties: [Property]) -> JSONValue {
        var headers: [(key: String, value: JSONValue)] = []
        for header in request.headers where !Self.unrecordedHeaders.contains(header.name.lowercased()) {
            if !headers.contains(where: { $0.key.lowercased() == header.name.lowercased() }) {
                headers.append((header.name, .string(header.value)))
            }
        }
        return .object([
            ("body", .object(properties.map { ($0.key, $0.value.jsonValue) })),
            ("endpointId", .string(endpointId)),
            ("eventId", .string(request.eventId)),
            ("headers", .object(headers)),
            ("method", .string(request.method)),
            ("time", .number(String(request.receivedAt.microsecondsSinceEpoch / 1_000))),
        ])
    }

    func eventType(_ request: IncomingRequest, _ properties: [Property]) throws(EventError) -> EventType {
        switch eventType {
        case let .fixed(type): return type
        case let .field(field):
            guard let value = try value(of: field, request, properties, role: "names the event type", expected: "a non-empty string of at most 128 characters") else {
                throw EventError(.missingField, field: field.description, reason: "required: it names the event type")
            }
            guard case let .string(name) = value, !name.isEmpty, name.count <= 128 else {
                throw EventError(.invalidField, field: field.description, reason: "names the event type, so it must be a non-empty string of at most 128 characters, got \(value.jsonValue.excerpt)")
            }
            return EventType(rawValue: name)
        }
    }

    /// The scalar at a field; nil when absent. A body key that names an object or an array (its flattened keys
    /// continue it) is an error naming the field's role: it must be a single value.
    func value(
        of field: RequestField, _ request: IncomingRequest, _ properties: [Property],
        role: String = "is used", expected: String = "a single value"
    ) throws(EventError) -> PropertyValue? {
        switch field {
        case let .body(key):
            if let property = properties.first(where: { $0.key == key }) { return property.value }
            let nested = properties.filter { $0.key.hasPrefix(key + ".") }
            if !nested.isEmpty {
                throw EventError(.invalidField, field: field.description, reason: "\(role), so it must be \(expected), got an object or array")
            }
            return nil
        case let .header(name):
            return request.header(name).map(PropertyValue.string)
        }
    }

    /// A deduplication parameter's value: a scalar, or the flattened members of an object or array (so two
    /// requests that differ inside it differ in the hash); nil when absent.
    func parameterValue(_ field: RequestField, _ request: IncomingRequest, _ properties: [Property]) -> JSONValue? {
        if case let .body(key) = field, !properties.contains(where: { $0.key == key }) {
            let nested = properties.filter { $0.key.hasPrefix(key + ".") }
            return nested.isEmpty ? nil : .object(nested.map { ($0.key, $0.value.jsonValue) })
        }
        return (try? value(of: field, request, properties))??.jsonValue
    }

    /// The ledger key: the deduplication hash over a sliding window, or the request's own id (never a duplicate).
    func key(_ request: IncomingRequest, _ properties: [Property]) -> IdempotencyKey {
        let unique = IdempotencyKey(value: "r:\(source):\(request.eventId)", check: .recordOnly)
        guard let deduplication else { return unique }
        let since = Timestamp(microsecondsSinceEpoch: request.receivedAt.microsecondsSinceEpoch - deduplication.windowSeconds * 1_000_000)
        if let header = deduplication.header, let hash = request.header(header), !hash.isEmpty {
            return IdempotencyKey(value: "d:\(source):client:\(hash)", check: .slidingWindow(since: since))
        }
        guard !deduplication.parameters.isEmpty else { return unique }
        // Canonical JSON of [name, value] pairs; a missing parameter counts as null. A request with none of
        // them is not deduplicated (all such requests would otherwise be one).
        var pairs: [JSONValue] = []
        var found = 0
        for field in deduplication.parameters {
            let value = parameterValue(field, request, properties)
            if value != nil { found += 1 }
            pairs.append(.array([.string(field.description), value ?? .null]))
        }
        guard found > 0 else { return unique }
        let digest = SHA256.hash(data: JSONWriter.canonicalBytes(.array(pairs)))
        return IdempotencyKey(value: "d:\(source):\(digest.withUnsafeBytes(hexString))", check: .slidingWindow(since: since))
    }
}

/// A recorded incoming request: what `crm-ingest` keeps of it, erased with its contact on anonymization.
public struct RequestRecord: Sendable, Hashable {
    public var eventId: String
    public var source: String
    public var endpointId: String
    public var eventType: EventType
    public var contactId: String?
    public var receivedAt: Timestamp
    /// `{"body":…,"endpointId":…,"eventId":…,"headers":…,"method":…,"time":…}` as JSON text.
    public var json: String

    public init(eventId: String, source: String, endpointId: String, eventType: EventType, contactId: String?, receivedAt: Timestamp, json: String) {
        self.eventId = eventId
        self.source = source
        self.endpointId = endpointId
        self.eventType = eventType
        self.contactId = contactId
        self.receivedAt = receivedAt
        self.json = json
    }
}
