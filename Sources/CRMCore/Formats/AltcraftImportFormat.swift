import Crypto

/// Altcraft's profile import requests (the `database_import` queue, `../shared/seeds/altcraft-import-profile-rabbitmq.txt`).
///
/// A request names a database (`db_id`, our list), a profile by `matching` (`email` by default, `phone`,
/// `profile_id`, or `custom` with `field_name`/`field_value`) and its fields (`data`). The profile is found in the
/// store, or created unless `update_only`; the mapping's actions for `ALTCRAFT_IMPORT` then run on it, without
/// `enter_journey` when `skip_triggers` is set. Every request gets a reply (`ImportReplyRequest`) once its effects
/// are committed, an invalid one too.
public struct AltcraftImportFormat: Sendable, Hashable {
    /// The event type a request becomes: map actions to it to run them on every imported profile.
    public static let importType = EventType(rawValue: "ALTCRAFT_IMPORT")

    /// When set, requests for another `account_id` are refused.
    public var accountId: Int?

    public init(accountId: Int? = nil) {
        self.accountId = accountId
    }

    /// One decoded request.
    public struct Request: Sendable, Hashable {
        /// The import, without the mapping's operations yet.
        public var profile: ProfileImport
        /// The event the mapping sees: type `ALTCRAFT_IMPORT`, the profile's data as properties.
        public var event: CRMEvent
        public var skipTriggers: Bool
        public var reply: ImportReplyRequest
    }

    /// Decodes a request; `mapping` names the attributes its data fields fill.
    public func decode(_ json: JSONValue, mapping: Mapping) throws(EventError) -> Request {
        guard case .object = json else { throw EventError(.notAnObject, field: "", reason: "expected a JSON object, got \(json.typeName)") }
        let account = try Self.integer(json, "account_id", required: true)!
        if let accountId, account != accountId {
            throw EventError(.invalidField, field: "account_id", reason: "this source imports for account \(accountId), got \(account)")
        }
        let database = try Self.integer(json, "db_id", required: true)!
        guard database > 0, database <= Int(Int32.max) else { throw EventError(.invalidField, field: "db_id", reason: "expected a positive database id, got \(database)") }
        _ = try Self.integer(json, "resource_id", required: false)
        let mode = try Self.text(json, "matching") ?? "email"
        let match: ProfileImport.Match
        switch mode {
        case "email":
            guard let email = try Self.text(json, "email")?.trimmedWhitespace, !email.isEmpty else {
                throw EventError(.missingField, field: "email", reason: "required when matching by email (the default)")
            }
            guard email.contains("@"), !email.contains(" ") else { throw EventError(.invalidField, field: "email", reason: "not an email address: \(JSONValue.string(email).excerpt)") }
            match = .email(email)
        case "phone":
            guard let raw = try Self.text(json, "phone"), !raw.isEmpty else { throw EventError(.missingField, field: "phone", reason: "required when matching by phone") }
            guard let phone = Self.normalizedPhone(raw) else {
                throw EventError(.invalidField, field: "phone", reason: "expected digits with an optional leading +, got \(JSONValue.string(raw).excerpt)")
            }
            match = .phone(phone)
        case "profile_id":
            guard let id = try Self.text(json, "profile_id"), !id.isEmpty else { throw EventError(.missingField, field: "profile_id", reason: "required when matching by profile_id") }
            match = .profileId(id)
        case "custom":
            guard let name = try Self.text(json, "field_name"), !name.isEmpty else { throw EventError(.missingField, field: "field_name", reason: "required when matching by a custom field") }
            guard let value = try Self.text(json, "field_value") else { throw EventError(.missingField, field: "field_value", reason: "required when matching by a custom field") }
            match = .field(name: name, value: value)
        default:
            throw EventError(.invalidField, field: "matching", reason: "expected email, phone, profile_id or custom, got \(JSONValue.string(mode).excerpt)")
        }
        guard let data = json["data"] else { throw EventError(.missingField, field: "data", reason: "required: the profile's fields") }
        guard case .object = data else { throw EventError(.invalidField, field: "data", reason: "expected an object of profile fields, got \(data.typeName)") }
        let updateOnly = try Self.flag(json, "update_only")
        let skipTriggers = try Self.flag(json, "skip_triggers")
        let feedbackId = try Self.text(json, "feedback_id") ?? ""

        let properties = JSONFlattener.flatten(data)
        var attributes = mapping.attributeValues(of: properties).values
        if let matched = ProfileImport(list: database, match: match, attributes: [], updateOnly: false, newContactId: "", createWith: .init(emailSubscribed: true, mobileSubscribed: true)).matchAttribute {
            // The value the request matched on is the profile's, whatever its data says.
            attributes.removeAll { $0.name == matched.name }
        }
        let newContactId: String
        if case let .profileId(id) = match {
            newContactId = id
        } else {
            newContactId = Self.profileId(database: database, match: match)
        }
        let profile = ProfileImport(
            list: database, match: match, attributes: attributes, updateOnly: updateOnly, newContactId: newContactId,
            createWith: NewContactDefaults(emailSubscribed: true, mobileSubscribed: true)
        )
        let event = CRMEvent.custom(CustomEventPayload(type: Self.importType, contactId: newContactId, properties: properties))
        return Request(profile: profile, event: event, skipTriggers: skipTriggers, reply: ImportReplyRequest(feedbackId: feedbackId, matchingField: mode))
    }

    /// The reply to a request that could not be processed, with what can still be read of it.
    public static func errorReply(to body: [UInt8], parser: JSONParser, code: ImportReplyRequest.ErrorCode, text: String) -> [UInt8] {
        let json = (try? parser.parse(body)) ?? .null
        var feedbackId = ""
        var mode = "email"
        if case let .string(value)? = json["feedback_id"] { feedbackId = value } else if case let .number(value)? = json["feedback_id"] { feedbackId = value }
        if case let .string(value)? = json["matching"] { mode = value }
        return ImportReplyRequest(feedbackId: feedbackId, matchingField: mode).errorBody(code, text)
    }

    /// The id a created profile gets: derived from the database and the match, so a redelivered request creates the
    /// same profile, and 24 lower-case hex digits like Altcraft's own.
    static func profileId(database: Int, match: ProfileImport.Match) -> String {
        let key: String
        switch match {
        case let .email(value): key = "email:" + value.lowercased()
        case let .phone(value): key = "phone:" + value
        case let .profileId(value): return value
        case let .field(name, value): key = "field:\(name.utf8.count):\(name)=\(value)"
        }
        return SHA256.hash(data: Array("altcraft:\(database):\(key)".utf8)).withUnsafeBytes { hexString(UnsafeRawBufferPointer(rebasing: $0.prefix(12))) }
    }

    /// `+7 (900) 000-00-00` → `+79000000000`; nil when anything but digits, spaces, `()-.` and a leading `+`.
    static func normalizedPhone(_ raw: String) -> String? {
        var out = ""
        for (index, character) in raw.trimmedWhitespace.enumerated() {
            if character.isASCII, character.isNumber { out.append(character) }
            else if character == "+", index == 0 { out.append(character) }
            else if " ()-.".contains(character) { continue }
            else { return nil }
        }
        return out.contains(where: \.isNumber) ? out : nil
    }

    // MARK: Fields

    /// An int, or a string of digits (senders differ).
    static func integer(_ json: JSONValue, _ field: String, required: Bool) throws(EventError) -> Int? {
        switch json[field] {
        case nil, .null?:
            if required { throw EventError(.missingField, field: field, reason: "required: an integer") }
            return nil
        case let .number(text)?, let .string(text)?:
            guard let value = Int(text) else { throw EventError(.invalidField, field: field, reason: "expected an integer, got \(JSONValue.string(text).excerpt)") }
            return value
        case let value?:
            throw EventError(.invalidField, field: field, reason: "expected an integer, got \(value.typeName)")
        }
    }

    /// A string, or a number as its text; nil when absent or null.
    static func text(_ json: JSONValue, _ field: String) throws(EventError) -> String? {
        switch json[field] {
        case nil, .null?: return nil
        case let .string(text)?, let .number(text)?: return text
        case let value?: throw EventError(.invalidField, field: field, reason: "expected a string, got \(value.typeName)")
        }
    }

    static func flag(_ json: JSONValue, _ field: String) throws(EventError) -> Bool {
        switch json[field] {
        case nil, .null?: return false
        case let .bool(value)?: return value
        case let value?: throw EventError(.invalidField, field: field, reason: "expected true or false, got \(value.excerpt)")
        }
    }
}

/// What a reply to an import request needs besides the outcome: the request's `feedback_id` and matching mode.
public struct ImportReplyRequest: Sendable, Hashable {
    /// The `error` codes of a reply.
    public enum ErrorCode: Int, Sendable {
        case none = 0
        /// The request is not valid JSON, or a field is missing or of the wrong type: `error_text` names it.
        case invalidRequest = 1
        /// No profile matches and the request may not create one (`update_only`, or matching by `profile_id`).
        case noMatch = 2
        /// The profile was anonymized: nothing is imported for it.
        case anonymized = 3
        /// The store refused the request, or it was delivered too many times: it is dead-lettered.
        case notApplied = 4
    }

    public var feedbackId: String
    public var matchingField: String

    public init(feedbackId: String, matchingField: String) {
        self.feedbackId = feedbackId
        self.matchingField = matchingField
    }

    /// The reply for a committed (or refused) request.
    public func body(for outcome: EventOutcome) -> [UInt8] {
        switch outcome {
        case let .imported(result):
            switch result.failure {
            case let .noMatch(text)?: return errorBody(.noMatch, text)
            case let .anonymized(text)?: return errorBody(.anonymized, text)
            case nil: return reply(.none, "", profileId: result.profileId ?? "")
            }
        case let .applied(notes):
            // A store applies an import as `.imported`; `.applied` means the profile was anonymized and skipped.
            return errorBody(.anonymized, notes.first ?? "the profile was anonymized")
        case .duplicate, .unchanged:
            return reply(.none, "", profileId: "")
        case let .failed(error):
            return errorBody(.notApplied, error.description)
        }
    }

    public func errorBody(_ code: ErrorCode, _ text: String) -> [UInt8] { reply(code, text, profileId: "") }

    func reply(_ code: ErrorCode, _ text: String, profileId: String) -> [UInt8] {
        var out: [UInt8] = []
        JSONWriter.write(.object([
            ("error", .number(String(code.rawValue))),
            ("error_text", .string(text)),
            ("feedback_id", .string(feedbackId)),
            ("matching_field", .string(matchingField)),
            ("profile_id", .string(profileId)),
        ]), into: &out, sortKeys: false)
        return out
    }
}
