/// Turns a message of the default format (Symplify's realtime CRM events) into a typed `CRMEvent`.
///
/// Strict on what it reads, silent on what it does not: unknown top-level members are ignored, so senders can add
/// fields without breaking us; every field we read must have the right type.
public struct DefaultFormatDecoder: Sendable {
    public struct Limits: Sendable, Equatable {
        /// Most properties (after flattening) one event may carry.
        public var maxProperties: Int
        /// Longest contact id, in bytes.
        public var maxContactIdBytes: Int
        /// Longest short text field (transaction id, vendor, payment type, currency), in bytes.
        public var maxFieldBytes: Int

        public init(maxProperties: Int = 500, maxContactIdBytes: Int = 256, maxFieldBytes: Int = 256) {
            self.maxProperties = maxProperties
            self.maxContactIdBytes = maxContactIdBytes
            self.maxFieldBytes = maxFieldBytes
        }
    }

    public var parser: JSONParser
    public var limits: Limits

    public init(parser: JSONParser = JSONParser(), limits: Limits = Limits()) {
        self.parser = parser
        self.limits = limits
    }

    /// Parses and decodes one message body.
    public func decode(_ body: some Collection<UInt8>) throws(EventError) -> (event: CRMEvent, json: JSONValue) {
        let json: JSONValue
        do {
            json = try parser.parse(body)
        } catch {
            throw EventError(.invalidJSON, field: "", reason: error.description)
        }
        return (try decode(json), json)
    }

    /// Decodes an already parsed message.
    public func decode(_ json: JSONValue) throws(EventError) -> CRMEvent {
        guard case .object = json else {
            throw EventError(.notAnObject, field: "", reason: "expected a JSON object, got \(json.typeName)")
        }
        guard let typeValue = json["type"] else { throw EventError(.missingField, field: "type", reason: "required") }
        guard case let .string(typeName) = typeValue else {
            throw EventError(.invalidField, field: "type", reason: "expected a string, got \(typeValue.excerpt)")
        }
        guard let type = EventType.defaultFormat(named: typeName) else {
            throw EventError(.unknownType, field: "type", reason: "unknown event type \(typeValue.excerpt)")
        }
        let fields = Fields(json: json, type: type, limits: limits)
        let contactId = try fields.contactId()
        let properties = try fields.properties()

        switch type {
        case .userRegistration: return .userRegistration(UserPayload(contactId: contactId, properties: properties))
        case .userUpdate: return .userUpdate(UserPayload(contactId: contactId, properties: properties))
        case .userBlocked: return .userBlocked(UserPayload(contactId: contactId, properties: properties))
        case .userConsentUpdate:
            let channelName = try fields.requiredString("channel")
            guard let channel = ConsentChannel(rawValue: channelName) else {
                let names = ConsentChannel.allCases.map(\.rawValue).joined(separator: ", ")
                throw fields.invalid("channel", "expected one of \(names), got \(JSONValue.string(channelName).excerpt)")
            }
            let consented = try fields.requiredBool("consented")
            return .userConsentUpdate(
                ConsentPayload(contactId: contactId, properties: properties, channel: channel, consented: consented)
            )
        default:
            let payload = TransactionPayload(
                contactId: contactId, properties: properties,
                timestamp: try fields.timestamp("timestamp"),
                amount: try fields.amount("amount"),
                currency: try fields.optionalString("currency"),
                transactionId: try fields.optionalString("transactionId"),
                vendor: try fields.optionalString("vendor"),
                paymentType: try fields.optionalString("paymentType")
            )
            switch type {
            case .withdrawalRequested: return .withdrawalRequested(payload)
            case .withdrawalApproved: return .withdrawalApproved(payload)
            case .withdrawalRejected: return .withdrawalRejected(payload)
            case .withdrawalCancelled: return .withdrawalCancelled(payload)
            case .depositRequested: return .depositRequested(payload)
            case .depositApproved: return .depositApproved(payload)
            case .depositRejected: return .depositRejected(payload)
            default: return .depositCancelled(payload)
            }
        }
    }
}

/// Reads the fields of one message, naming them `TYPE.field` in errors.
private struct Fields {
    let json: JSONValue
    let type: EventType
    let limits: DefaultFormatDecoder.Limits

    func path(_ field: String) -> String { "\(type.rawValue).\(field)" }
    func invalid(_ field: String, _ reason: String) -> EventError { EventError(.invalidField, field: path(field), reason: reason) }
    func missing(_ field: String) -> EventError { EventError(.missingField, field: path(field), reason: "required") }

    func contactId() throws(EventError) -> String {
        let id = try requiredString("contactId")
        // A printable ASCII first byte is not whitespace: the common case, without Unicode property lookups.
        let startsPrintable = id.utf8.first.map { $0 > 0x20 && $0 < 0x7F } ?? false
        guard startsPrintable || !id.allSatisfy(\.isWhitespace) else { throw invalid("contactId", "must not be empty") }
        guard id.utf8.count <= limits.maxContactIdBytes else {
            throw invalid("contactId", "longer than \(limits.maxContactIdBytes) bytes")
        }
        return id
    }

    func properties() throws(EventError) -> [Property] {
        guard let value = json["properties"] else { return [] }
        switch value {
        case .null: return []
        case .object:
            let flat = JSONFlattener.flatten(value)
            if let error = InputLimits.tooManyProperties(flat.count, limit: limits.maxProperties, field: path("properties")) { throw error }
            return flat
        default: throw invalid("properties", "expected an object, got \(value.excerpt)")
        }
    }

    func requiredString(_ field: String) throws(EventError) -> String {
        guard let value = json[field], value != .null else { throw missing(field) }
        guard case let .string(text) = value else { throw invalid(field, "expected a string, got \(value.excerpt)") }
        return text
    }

    func optionalString(_ field: String) throws(EventError) -> String? {
        guard let value = json[field], value != .null else { return nil }
        guard case let .string(text) = value else { throw invalid(field, "expected a string, got \(value.excerpt)") }
        guard text.utf8.count <= limits.maxFieldBytes else { throw invalid(field, "longer than \(limits.maxFieldBytes) bytes") }
        return text
    }

    func requiredBool(_ field: String) throws(EventError) -> Bool {
        guard let value = json[field], value != .null else { throw missing(field) }
        guard case let .bool(flag) = value else { throw invalid(field, "expected true or false, got \(value.excerpt)") }
        return flag
    }

    func timestamp(_ field: String) throws(EventError) -> Timestamp {
        let text = try requiredString(field)
        switch Timestamp.parseISO8601(text) {
        case let .success(timestamp): return timestamp
        case let .failure(error): throw invalid(field, error.description)
        }
    }

    func amount(_ field: String) throws(EventError) -> DecimalAmount {
        guard let value = json[field], value != .null else { throw missing(field) }
        guard case let .number(literal) = value else { throw invalid(field, "expected a number, got \(value.excerpt)") }
        switch DecimalAmount.parse(jsonNumber: literal) {
        case let .success(amount): return amount
        case let .failure(error): throw invalid(field, error.description)
        }
    }
}
