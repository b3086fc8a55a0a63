/// A converter the configuration defines (`format: { custom: … }`): for senders who cannot produce the default
/// format, it picks a rule by the message's type (a header, a message attribute or a body path) and maps JSON paths
/// of the payload onto a default-format event, which the default decoder then checks as usual.
///
/// A path that is missing or holds the wrong kind of value is an error naming the path and the rule, never a
/// silent null.
public struct CustomConverter: Sendable, Hashable {
    public enum TypeSource: Sendable, Hashable, CustomStringConvertible {
        /// An AMQP header, an SQS message attribute, an HTTP header.
        case header(String)
        /// An AMQP message property (`type`, `app_id`, `content_type`, `correlation_id`) or an SQS message attribute.
        case attribute(String)
        /// A string in the body.
        case body(JSONPath)

        public var description: String {
            switch self {
            case let .header(name): return "header:\(name)"
            case let .attribute(name): return "attribute:\(name)"
            case let .body(path): return path.description
            }
        }
    }

    /// A default-format field and where its value comes from.
    public struct FieldPath: Sendable, Hashable {
        public var name: String
        public var path: JSONPath
        public init(name: String, path: JSONPath) {
            self.name = name
            self.path = path
        }
    }

    public struct Rule: Sendable, Hashable {
        /// A default-format type.
        public var type: EventType
        /// `contactId` and the type's other fields (`amount`, `timestamp`, `currency`, `transactionId`, `vendor`,
        /// `paymentType`, `channel`, `consented`).
        public var fields: [FieldPath]
        /// Properties by name (attribute headers), from their paths.
        public var properties: [FieldPath]

        public init(type: EventType, fields: [FieldPath], properties: [FieldPath] = []) {
            self.type = type
            self.fields = fields
            self.properties = properties
        }
    }

    /// The default-format fields a rule may fill, with the JSON kinds each accepts.
    public static let fieldKinds: [String: Set<String>] = [
        "contactId": ["string", "number"], "amount": ["number"], "timestamp": ["string"], "currency": ["string"],
        "transactionId": ["string", "number"], "vendor": ["string"], "paymentType": ["string"], "channel": ["string"],
        "consented": ["boolean"],
    ]

    /// Fields the default format itself treats as optional (the Symplify seed's "(optional)"): a message that lacks
    /// one, or has it null, is converted without it rather than refused.
    public static let optionalFields: Set<String> = ["currency", "transactionId", "vendor", "paymentType"]

    public var typeFrom: TypeSource
    /// Rules by the type value a message carries.
    public var rules: [String: Rule]

    public init(typeFrom: TypeSource, rules: [String: Rule]) {
        self.typeFrom = typeFrom
        self.rules = rules
    }

    /// The default-format JSON for a message. `headers` and `attributes` are what the source knows besides the body.
    public func convert(_ payload: JSONValue, headers: [String: String], attributes: [String: String]) throws(EventError) -> JSONValue {
        try convertWithRule(payload, headers: headers, attributes: attributes).json
    }

    func convertWithRule(_ payload: JSONValue, headers: [String: String], attributes: [String: String]) throws(EventError) -> (json: JSONValue, rule: Rule) {
        guard case .object = payload else {
            throw EventError(.notAnObject, field: "", reason: "expected a JSON object, got \(payload.typeName)")
        }
        let typeName: String
        switch typeFrom {
        case let .header(name):
            guard let value = Self.lookup(headers, name) else { throw EventError(.missingField, field: typeFrom.description, reason: "required: it names the message's type") }
            typeName = value
        case let .attribute(name):
            guard let value = Self.lookup(attributes, name) else { throw EventError(.missingField, field: typeFrom.description, reason: "required: it names the message's type") }
            typeName = value
        case let .body(path):
            guard let value = path.value(in: payload) else { throw EventError(.missingField, field: path.description, reason: "required: it names the message's type") }
            guard case let .string(text) = value else {
                throw EventError(.invalidField, field: path.description, reason: "names the message's type, so it must be a string, got \(value.excerpt)")
            }
            typeName = text
        }
        guard let rule = rules[typeName] else {
            let known = rules.keys.sorted().joined(separator: ", ")
            throw EventError(.unknownType, field: typeFrom.description, reason: "no converter rule for type \(JSONValue.string(typeName).excerpt) (rules: \(known))")
        }
        var members: [(key: String, value: JSONValue)] = [("type", .string(rule.type.rawValue))]
        for field in rule.fields {
            let context = "the \(typeName) rule's \(field.name)"
            guard let value = field.path.value(in: payload), value != .null else {
                if Self.optionalFields.contains(field.name) { continue }
                throw EventError(.missingField, field: field.path.description, reason: "required by \(context)")
            }
            let kinds = Self.fieldKinds[field.name] ?? []
            let kind: String
            switch value {
            case .string: kind = "string"
            case .number: kind = "number"
            case .bool: kind = "boolean"
            default: kind = value.typeName
            }
            guard kinds.contains(kind) else {
                throw EventError(.invalidField, field: field.path.description, reason: "\(context) must be \(kinds.sorted().joined(separator: " or ")), got \(value.excerpt)")
            }
            // Ids given as numbers keep their exact text.
            if (field.name == "contactId" || field.name == "transactionId"), case let .number(text) = value {
                members.append((field.name, .string(text)))
            } else {
                members.append((field.name, value))
            }
        }
        var properties: [(key: String, value: JSONValue)] = []
        // A property the message does not carry is left out, as a default-format message leaves it out of its
        // `properties`: the contact keeps what it holds (a null is passed on, as written).
        for property in rule.properties {
            guard let value = property.path.value(in: payload) else { continue }
            properties.append((property.name, value))
        }
        if !properties.isEmpty { members.append(("properties", .object(properties))) }
        return (.object(members), rule)
    }

    /// Case-insensitive lookup (header names are).
    static func lookup(_ values: [String: String], _ name: String) -> String? {
        if let exact = values[name] { return exact }
        let lowered = name.lowercased()
        return values.first { $0.key.lowercased() == lowered }?.value
    }

    /// Rewrites a default-decoder error (`DEPOSIT_APPROVED.amount`) to name the payload's path.
    func pathError(_ error: EventError, rule: Rule) -> EventError {
        let prefix = rule.type.rawValue + "."
        guard error.field.hasPrefix(prefix) else { return error }
        let name = String(error.field.dropFirst(prefix.count))
        if let field = rule.fields.first(where: { $0.name == name }) {
            return EventError(error.code, field: field.path.description, reason: error.reason)
        }
        return error
    }
}

/// How a source's message bodies become typed events.
public enum EventFormat: Sendable {
    /// Symplify's default format.
    case standard
    /// A converter from the configuration.
    case custom(CustomConverter)
    /// Proca's action and event messages.
    case proca(ProcaFormat)
    /// Jomablue's push payloads.
    case jomablue(JomablueFormat)
    /// Altcraft's profile import requests, answered with a reply each.
    case altcraftImport(AltcraftImportFormat)
    /// Chosen per message by a header or message attribute: `formats` by the value found there, `otherwise` for
    /// a message without it or with another value (nil: such a message is refused).
    indirect case perMessage(by: CustomConverter.TypeSource, formats: [String: EventFormat], otherwise: EventFormat?)

    /// The format one message is written in.
    public func resolve(headers: [String: String], attributes: [String: String]) throws(EventError) -> EventFormat {
        guard case let .perMessage(selector, formats, otherwise) = self else { return self }
        let value: String?
        switch selector {
        case let .header(name): value = CustomConverter.lookup(headers, name)
        case let .attribute(name): value = CustomConverter.lookup(attributes, name)
        case .body: value = nil // the loader accepts header: and attribute: only
        }
        if let value, let format = formats[value] { return format }
        if let otherwise { return otherwise }
        let known = formats.keys.sorted().joined(separator: ", ")
        guard let value else {
            throw EventError(.missingField, field: selector.description, reason: "required: it names the message's format (\(known))")
        }
        throw EventError(.unknownType, field: selector.description, reason: "unknown format \(JSONValue.string(value).excerpt) (formats: \(known))")
    }

    /// Parses and decodes one message; `json` is the parsed body (for content-hash keys).
    public func decode(
        _ body: some Collection<UInt8>, headers: [String: String], attributes: [String: String], decoder: DefaultFormatDecoder
    ) throws(EventError) -> (event: CRMEvent, json: JSONValue) {
        switch self {
        case .standard:
            return try decoder.decode(body)
        case .proca, .jomablue, .altcraftImport, .perMessage:
            // EventProcessor.prepare resolves per-message formats and decodes Proca itself.
            throw EventError(.unresolvable, field: "", reason: "resolved by EventProcessor.prepare")
        case let .custom(converter):
            let json: JSONValue
            do {
                json = try decoder.parser.parse(body)
            } catch {
                throw EventError(.invalidJSON, field: "", reason: error.description)
            }
            let (converted, rule) = try converter.convertWithRule(json, headers: headers, attributes: attributes)
            do {
                return (try decoder.decode(converted), json)
            } catch {
                throw converter.pathError(error, rule: rule)
            }
        }
    }
}
