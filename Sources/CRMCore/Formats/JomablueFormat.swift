/// Jomablue's push payloads (`../shared/formats/jomablue.md`), after the SQS source unwrapped the SNS envelope:
/// people become contacts, and every resource is kept as a linked record so later messages can be joined.
///
/// - A `person` is the contact keyed by `identifiers.organisation_uid` when present (the sender's own CRM id),
///   otherwise by its Jomablue id; both ids are kept as the attributes `organisation_uid` and `jomablue_id`.
///   Its category ids are kept on its record; names come from the latest `event` record, so a renamed category
///   (which republishes only the event) shows the new name for every person.
/// - `event`, `lead` and `session_participation` payloads are kept as records, leads and participations linked to
///   the person's contact id (even before the person arrives: the id is derived the same way).
/// - An identical republication changes nothing and is counted as `unchanged`; an older version never replaces a
///   newer one. Unknown resource types are acknowledged and counted as skipped. Values are kept byte-exact.
public struct JomablueFormat: Sendable, Hashable {
    public static let personType = EventType(rawValue: "JOMABLUE_PERSON")
    /// The types its payloads become, which a mapping may name.
    public static let eventTypes = [personType] + ["EVENT", "LEAD", "SESSION_PARTICIPATION"].map { EventType(rawValue: "JOMABLUE_" + $0) }

    public var list: Int

    public init(list: Int) {
        self.list = list
    }

    public enum Decoded: Sendable {
        case event(CRMEvent, operations: [StoreOperation])
        case skipped(EventType)
    }

    public func decode(_ json: JSONValue, mapping: Mapping) throws(EventError) -> Decoded {
        guard case .object = json else { throw EventError(.notAnObject, field: "", reason: "expected a JSON object, got \(json.typeName)") }
        guard case let .string(resource)? = json["resource_type"] else {
            throw EventError(.missingField, field: "resource_type", reason: "required: person, event, lead or session_participation")
        }
        let generatedAt = try timestamp(json, "generated_at")
        let identifiers = json["identifiers"] ?? .null
        let id = try idValue(identifiers["id"], field: "identifiers.id")
        let canonical = String(decoding: JSONWriter.canonicalBytes(json), as: UTF8.self)
        let type = EventType(rawValue: "JOMABLUE_" + resource.uppercased().replacingSpaces)
        switch resource {
        case "person":
            let uid = nonEmpty(identifiers["organisation_uid"])
            let contactId = uid ?? id
            var properties = JSONFlattener.flatten(.object([("identifiers", identifiers)]), prefix: "").map { Property(key: String($0.key.dropFirst("identifiers.".count)), value: $0.value) }
            if case let .object(data)? = json["data"] {
                properties += JSONFlattener.flatten(.object(data.filter { $0.key != "categories" && $0.key != "metadata" }))
            }
            var attributes = mapping.attributeValues(of: properties).values.filter { $0.name != "jomablue_id" && $0.name != "organisation_uid" }
            attributes.append(AttributeValue(name: "jomablue_id", value: .string(id)))
            if let uid { attributes.append(AttributeValue(name: "organisation_uid", value: .string(uid))) }
            let categories = try categoryList(json["data"]?["categories"] ?? json["categories"], field: "data.categories", names: false)
            let record = LinkedRecord(kind: "person", id: id, contactId: contactId, eventId: nonEmpty(json["context"]?["event_id"]),
                                      generatedAt: generatedAt, json: canonical, categories: categories)
            let event = CRMEvent.custom(CustomEventPayload(type: Self.personType, contactId: contactId, properties: properties, timestamp: generatedAt))
            return .event(event, operations: [
                .upsertRecord(record),
                .mergeContact(list: list, contactId: contactId, attributes: attributes, asOf: generatedAt,
                              createWith: NewContactDefaults(emailSubscribed: false, mobileSubscribed: false)),
            ])
        case "event":
            let categories = try categoryList(json["data"]?["categories"] ?? json["categories"], field: "data.categories", names: true)
            let record = LinkedRecord(kind: "event", id: id, contactId: nil, eventId: id, generatedAt: generatedAt, json: canonical, categories: categories)
            return .event(.custom(CustomEventPayload(type: type, contactId: "", timestamp: generatedAt)), operations: [.upsertRecord(record)])
        case "lead", "session_participation", "session participation":
            let context = json["context"] ?? .null
            guard let person = nonEmpty(context["person_organisation_uid"]) ?? nonEmpty(context["person_id"]) else {
                throw EventError(.missingField, field: "context.person_id", reason: "required: a \(resource) names its person")
            }
            let kind = resource.replacingSpaces
            let record = LinkedRecord(kind: kind, id: id, contactId: person, eventId: nonEmpty(context["event_id"]), generatedAt: generatedAt, json: canonical)
            return .event(.custom(CustomEventPayload(type: type, contactId: person, timestamp: generatedAt)), operations: [.upsertRecord(record)])
        default:
            return .skipped(type)
        }
    }

    /// `[{id, name}]`; an empty or missing list is none.
    func categoryList(_ value: JSONValue?, field: String, names: Bool) throws(EventError) -> [(id: String, name: String?)] {
        guard let value, value != .null else { return [] }
        guard case let .array(items) = value else { throw EventError(.invalidField, field: field, reason: "expected a list of { id, name }, got \(value.excerpt)") }
        var result: [(id: String, name: String?)] = []
        for (index, item) in items.enumerated() {
            let id = try idValue(item["id"], field: "\(field).\(index).id")
            result.append((id, names ? nonEmpty(item["name"]) : nil))
        }
        return result
    }

    func idValue(_ value: JSONValue?, field: String) throws(EventError) -> String {
        switch value {
        case let .string(text)? where !text.isEmpty && !text.contains(where: \.isWhitespace): return text
        case let .number(text)?: return text
        case nil, .null?, .string("")?: throw EventError(.missingField, field: field, reason: "required")
        case let other?: throw EventError(.invalidField, field: field, reason: "expected an id such as acme/event/5, got \(other.excerpt)")
        }
    }

    /// A string value, "" and null meaning "not given".
    func nonEmpty(_ value: JSONValue?) -> String? {
        if case let .string(text)? = value, !text.isEmpty { return text }
        return nil
    }

    func timestamp(_ json: JSONValue, _ key: String) throws(EventError) -> Timestamp {
        guard case let .string(text)? = json[key] else { throw EventError(.missingField, field: key, reason: "required") }
        switch Timestamp.parseISO8601(text) {
        case let .success(value): return value
        case let .failure(error): throw EventError(.invalidField, field: key, reason: error.description)
        }
    }
}

extension String {
    /// Spaces as underscores (`session participation` is spelt both ways).
    var replacingSpaces: String { String(map { $0 == " " ? "_" : $0 }) }
}
