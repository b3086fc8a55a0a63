/// Opens Proca's encrypted `personalInfo` (NaCl box); implemented outside the core (ProcaCrypto, libsodium).
public protocol PersonalInfoOpener: Sendable {
    func hasKey(for publicKey: String) -> Bool
    /// The plaintext, or an error whose description says why not.
    func openPersonalInfo(payload: String, nonce: String, receiverPublicKey: String, senderPublicKey: String) throws -> [UInt8]
}

/// Proca's AMQP messages (`proca:action:2`, `proca:event:2`; ../shared/formats/proca.md), as contacts, subscriptions
/// and action history. Pure apart from the injected opener.
///
/// - An action merges its supporter into the contact keyed by email (newer records win), keeps `contactRef`, and
///   adds the action to the contact's history. A new contact starts unsubscribed; only `double_opt_in` subscribes.
/// - `email_status` events subscribe (`double_opt_in`) or unsubscribe with the reason (`bounce`, `blocked`, `spam`,
///   `unsub`, `inactive`); an event for an unknown contact changes nothing and is reported in the notes.
/// - A status applies as of `privacy.emailStatusChanged` (else the event's `timestamp`, or the action's `createdAt`):
///   one older than the status the contact holds is left out, whatever the order the messages arrive in.
/// - Test actions, `campaign_updated` and `confirm_created` are acknowledged and counted as skipped.
public struct ProcaFormat: Sendable {
    public static let actionType = EventType(rawValue: "PROCA_ACTION")
    public static let emailStatusType = EventType(rawValue: "PROCA_EMAIL_STATUS")
    /// The types its messages become, which a mapping may name.
    public static let eventTypes = [actionType, emailStatusType]

    public var list: Int
    public var opener: (any PersonalInfoOpener)?

    public init(list: Int, opener: (any PersonalInfoOpener)?) {
        self.list = list
        self.opener = opener
    }

    /// What a message asks for.
    public enum Decoded: Sendable {
        /// The contact, its properties (for the mapping's attributes and actions) and the format's own operations.
        case event(CRMEvent, operations: [StoreOperation], key: String?)
        /// Acknowledged and counted, not applied.
        case skipped(EventType, reason: String)
    }

    /// `mapping` names the attributes the supporter's fields fill.
    public func decode(_ json: JSONValue, source: String, mapping: Mapping) throws(EventError) -> Decoded {
        guard case .object = json else { throw EventError(.notAnObject, field: "", reason: "expected a JSON object, got \(json.typeName)") }
        guard case let .string(schema)? = json["schema"] else { throw EventError(.missingField, field: "schema", reason: "required: proca:action:2 or proca:event:2") }
        switch schema {
        case "proca:action:2": return try action(json, source: source, mapping: mapping)
        case "proca:event:2": return try event(json)
        default: throw EventError(.unknownType, field: "schema", reason: "unknown schema \(JSONValue.string(schema).excerpt) (known: proca:action:2, proca:event:2)")
        }
    }

    // MARK: proca:action:2

    func action(_ json: JSONValue, source: String, mapping: Mapping) throws(EventError) -> Decoded {
        let action = try object(json, "action")
        if action["testing"] == .bool(true) { return .skipped(Self.actionType, reason: "a test action") }
        let actionId = try idText(json, "actionId")
        let stage = (try? string(json, "stage")) ?? "deliver"
        let actionType = try string(action, "actionType", path: "action.actionType")
        let createdAt = try timestamp(action, "createdAt", path: "action.createdAt")
        let contact = try supporter(json, path: "")
        let privacy = json["privacy"] ?? .null
        let status = try emailStatus(privacy, path: "privacy")
        let fields = action["customFields"] ?? .object([])
        var operations: [StoreOperation] = [
            .mergeContact(list: list, contactId: contact.id, attributes: mapping.attributeValues(of: contact.properties).values, asOf: createdAt,
                          createWith: NewContactDefaults(emailSubscribed: false, mobileSubscribed: false)),
        ]
        if let status {
            // Read only with a status: an action without one is not refused over a time it does not use.
            let asOf = try statusChanged(privacy, path: "privacy") ?? createdAt
            operations.append(.setEmailSubscription(list: list, contactId: contact.id, subscribed: status.subscribed, reason: status.reason, asOf: asOf))
        }
        operations.append(.addActionRow(list: list, contactId: contact.id, row: ActionRow(
            key: "\(actionId)", actionType: actionType, campaign: json["campaign"]?["name"]?.stringText,
            actionPage: json["actionPage"]?["name"]?.stringText, fieldsJSON: JSONWriter.string(fields), occurredAt: createdAt
        )))
        let event = CRMEvent.custom(CustomEventPayload(type: Self.actionType, contactId: contact.id, properties: contact.properties, timestamp: createdAt))
        return .event(event, operations: operations, key: "proca:\(source):action:\(actionId):\(stage)")
    }

    // MARK: proca:event:2

    func event(_ json: JSONValue) throws(EventError) -> Decoded {
        let eventType = try string(json, "eventType")
        switch eventType {
        case "email_status":
            let supporterValue = try object(json, "supporter")
            let contact = try supporter(supporterValue, path: "supporter.")
            let privacy = try object(supporterValue, "privacy", path: "supporter.privacy")
            let at = (try? timestamp(json, "timestamp", path: "timestamp")) ?? nil
            guard let status = try emailStatus(privacy, path: "supporter.privacy") else {
                return .skipped(Self.emailStatusType, reason: "email_status with no status")
            }
            let asOf = try statusChanged(privacy, path: "supporter.privacy") ?? at
            let event = CRMEvent.custom(CustomEventPayload(type: Self.emailStatusType, contactId: contact.id, properties: [], timestamp: at))
            return .event(event, operations: [
                .setEmailSubscription(list: list, contactId: contact.id, subscribed: status.subscribed, reason: status.reason, asOf: asOf),
            ], key: nil)
        case "campaign_updated", "confirm_created":
            return .skipped(EventType(rawValue: "PROCA_" + eventType.uppercased()), reason: "\(eventType) needs no CRM change")
        default:
            throw EventError(.unknownType, field: "eventType", reason: "unknown Proca event \(JSONValue.string(eventType).excerpt) (known: email_status, campaign_updated, confirm_created)")
        }
    }

    // MARK: Parts

    struct Supporter {
        var id: String
        var properties: [Property]
    }

    /// The supporter's contact, with encrypted personal data opened and merged over the clear values.
    func supporter(_ json: JSONValue, path: String) throws(EventError) -> Supporter {
        var contact = try object(json, "contact", path: path + "contact")
        if let info = json["personalInfo"], info != .null {
            contact = try merge(contact, try open(info, path: path + "personalInfo"))
        }
        guard case let .string(email)? = contact["email"], !email.trimmedWhitespace.isEmpty else {
            let field = path + "contact.email"
            if json["personalInfo"] == nil || json["personalInfo"] == .null {
                throw EventError(.missingField, field: field, reason: "required: the contact is keyed by email (null when personal data is encrypted: configure the keystore)")
            }
            throw EventError(.missingField, field: field, reason: "required: the contact is keyed by email")
        }
        let id = email.trimmedWhitespace.lowercased()
        return Supporter(id: id, properties: JSONFlattener.flatten(contact).filter { $0.value != .null })
    }

    func open(_ info: JSONValue, path: String) throws(EventError) -> JSONValue {
        guard let opener else {
            throw EventError(.unresolvable, field: path, reason: "the personal data is encrypted and no keystore is configured (format.proca.keystore)")
        }
        let payload = try string(info, "payload", path: path + ".payload")
        let nonce = try string(info, "nonce", path: path + ".nonce")
        let receiver = try string(info["encryptKey"] ?? .null, "public", path: path + ".encryptKey.public")
        let sender = try string(info["signKey"] ?? .null, "public", path: path + ".signKey.public")
        guard opener.hasKey(for: receiver) else {
            throw EventError(.unresolvable, field: path + ".encryptKey.public", reason: "no key in the keystore for \(receiver): not stored encrypted, dead-lettered")
        }
        let plain: [UInt8]
        do {
            plain = try opener.openPersonalInfo(payload: payload, nonce: nonce, receiverPublicKey: receiver, senderPublicKey: sender)
        } catch {
            throw EventError(.invalidField, field: path + ".payload", reason: "\(error)")
        }
        guard case let .object(members)? = try? JSONParser().parse(plain) else {
            throw EventError(.invalidField, field: path + ".payload", reason: "the decrypted personal data is not a JSON object")
        }
        return .object(members)
    }

    func merge(_ base: JSONValue, _ overlay: JSONValue) throws(EventError) -> JSONValue {
        guard case var .object(members) = base, case let .object(extra) = overlay else { return base }
        for (key, value) in extra {
            if let index = members.firstIndex(where: { $0.key == key }) { members[index].value = value } else { members.append((key, value)) }
        }
        return .object(members)
    }

    /// `emailStatus`: nil when nothing is known (null, "none", "active"); else subscribe or unsubscribe with reason.
    func emailStatus(_ privacy: JSONValue, path: String) throws(EventError) -> (subscribed: Bool, reason: String?)? {
        guard let value = privacy["emailStatus"], value != .null else { return nil }
        guard case let .string(status) = value else {
            throw EventError(.invalidField, field: path + ".emailStatus", reason: "expected a string or null, got \(value.excerpt)")
        }
        switch status {
        case "none", "active": return nil
        case "double_opt_in", "doubleOptIn": return (true, nil)
        case "bounce", "blocked", "spam", "unsub", "inactive": return (false, status)
        default:
            throw EventError(.invalidField, field: path + ".emailStatus", reason: "unknown status \(value.excerpt) (known: null, double_opt_in, bounce, blocked, spam, unsub, inactive, active)")
        }
    }

    /// `emailStatusChanged`: when the status last changed; nil when absent or null.
    func statusChanged(_ privacy: JSONValue, path: String) throws(EventError) -> Timestamp? {
        guard let value = privacy["emailStatusChanged"], value != .null else { return nil }
        return try timestamp(privacy, "emailStatusChanged", path: path + ".emailStatusChanged")
    }

    func object(_ json: JSONValue, _ key: String, path: String? = nil) throws(EventError) -> JSONValue {
        guard let value = json[key], value != .null else { throw EventError(.missingField, field: path ?? key, reason: "required") }
        guard case .object = value else { throw EventError(.invalidField, field: path ?? key, reason: "expected an object, got \(value.excerpt)") }
        return value
    }

    func string(_ json: JSONValue, _ key: String, path: String? = nil) throws(EventError) -> String {
        guard let value = json[key], value != .null else { throw EventError(.missingField, field: path ?? key, reason: "required") }
        guard case let .string(text) = value else { throw EventError(.invalidField, field: path ?? key, reason: "expected a string, got \(value.excerpt)") }
        return text
    }

    func idText(_ json: JSONValue, _ key: String) throws(EventError) -> String {
        switch json[key] {
        case let .number(text)?: return text
        case let .string(text)? where !text.isEmpty: return text
        case nil, .null?: throw EventError(.missingField, field: key, reason: "required")
        case let other?: throw EventError(.invalidField, field: key, reason: "expected a number, got \(other.excerpt)")
        }
    }

    func timestamp(_ json: JSONValue, _ key: String, path: String) throws(EventError) -> Timestamp {
        let text = try string(json, key, path: path)
        switch Timestamp.parseISO8601(text) {
        case let .success(value): return value
        case let .failure(error): throw EventError(.invalidField, field: path, reason: error.description)
        }
    }
}

extension String {
    /// Without leading and trailing whitespace (no Foundation in the core).
    var trimmedWhitespace: String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}

extension JSONValue {
    /// The text of a string value; nil for anything else.
    var stringText: String? {
        if case let .string(text) = self { return text }
        return nil
    }
}
