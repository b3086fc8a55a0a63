import Crypto

/// Decodes, validates and plans messages. Pure and `Sendable`: sources call it on their own threads, then hand the
/// planned events to the store in batches.
public struct EventProcessor: Sendable {
    public let decoder: DefaultFormatDecoder
    /// The limits every message must keep (`limits:`), in every format.
    public let limits: InputLimits
    /// How bodies become events: the default format or a configured converter.
    public let format: EventFormat
    public let planner: ActionPlanner
    /// How far back a message without id is compared with the ledger when it may be a redelivery.
    public let redeliveryWindowSeconds: Int64

    public init(
        mapping: Mapping, limits: InputLimits = InputLimits(), format: EventFormat = .standard,
        redeliveryWindowSeconds: Int64 = 3600
    ) {
        self.limits = limits
        self.decoder = limits.decoder
        self.format = format
        self.planner = ActionPlanner(mapping: mapping)
        self.redeliveryWindowSeconds = redeliveryWindowSeconds
    }

    /// Whether decoding reads the message's headers or attributes; when not, sources skip collecting them.
    public var readsMessageMetadata: Bool {
        switch format {
        case .custom, .perMessage: return true
        case .standard, .proca, .jomablue, .altcraftImport: return false
        }
    }

    /// Whether this source's messages are requests that each get a reply (Altcraft's profile import).
    public var repliesToMessages: Bool {
        switch format {
        case .altcraftImport: return true
        case let .perMessage(_, formats, otherwise):
            return formats.values.contains { if case .altcraftImport = $0 { true } else { false } }
                || { if case .altcraftImport? = otherwise { true } else { false } }()
        case .standard, .custom, .proca, .jomablue: return false
        }
    }

    /// The error reply to a message that is refused before it reaches the store (invalid, or delivered too often),
    /// when its format answers every request; nil otherwise.
    public func errorReply(to message: IncomingMessage, code: ImportReplyRequest.ErrorCode, text: String) -> [UInt8]? {
        guard case .altcraftImport? = try? format.resolve(headers: message.headers, attributes: message.attributes) else { return nil }
        return AltcraftImportFormat.errorReply(to: message.body, parser: decoder.parser, code: code, text: text)
    }

    public func prepare(_ message: IncomingMessage) -> PreparedMessage {
        let format: EventFormat
        do {
            format = try self.format.resolve(headers: message.headers, attributes: message.attributes)
        } catch {
            return .rejected(error)
        }
        if case let .proca(proca) = format { return prepareProca(message, proca) }
        if case let .jomablue(jomablue) = format { return prepareJomablue(message, jomablue) }
        if case let .altcraftImport(altcraft) = format { return prepareAltcraftImport(message, altcraft) }
        let event: CRMEvent
        let json: JSONValue
        do throws(EventError) {
            (event, json) = try format.decode(message.body, headers: message.headers, attributes: message.attributes, decoder: decoder)
            if let error = limits.tooManyProperties(event.properties.count, field: "\(event.type.rawValue).properties") { throw error }
        } catch {
            return .rejected(error)
        }
        let plan: ActionPlanner.Plan
        do {
            guard let planned = try planner.plan(event, receivedAt: message.receivedAt) else { return .skipped(event.type) }
            plan = planned
        } catch {
            return .rejected(error)
        }
        return .event(PlannedEvent(
            key: key(for: message, json: json), type: event.type, contactId: event.contactId,
            operations: plan.operations, unmatchedProperties: plan.unmatchedProperties
        ))
    }

    /// What a format with operations of its own (Proca, Jomablue) made of one message.
    enum FormatResult {
        /// The event, the format's operations, and its own idempotency key if it has one.
        case event(CRMEvent, operations: [StoreOperation], key: String?)
        case skipped(EventType)
    }

    /// Proca and Jomablue: the format's own operations (contact merge, subscription, history, records), then the
    /// mapping's actions for the event's type, if any.
    func prepareWithFormatOperations(_ message: IncomingMessage, _ decode: (JSONValue) throws(EventError) -> FormatResult) -> PreparedMessage {
        do throws(EventError) {
            let json = try parse(message)
            switch try decode(json) {
            case let .skipped(type):
                return .skipped(type)
            case let .event(event, operations, key):
                if let error = limits.tooManyProperties(event.properties.count, field: "\(event.type.rawValue).properties") { throw error }
                let plan = event.contactId.isEmpty ? nil : try planner.plan(event, receivedAt: message.receivedAt)
                let idempotency = key.map { IdempotencyKey(value: $0, check: .always) } ?? self.key(for: message, json: json)
                return .event(PlannedEvent(
                    key: idempotency, type: event.type, contactId: event.contactId,
                    operations: operations + (plan?.operations ?? []), unmatchedProperties: plan?.unmatchedProperties ?? 0
                ))
            }
        } catch {
            return .rejected(error)
        }
    }

    func prepareProca(_ message: IncomingMessage, _ proca: ProcaFormat) -> PreparedMessage {
        prepareWithFormatOperations(message) { json throws(EventError) in
            switch try proca.decode(json, source: message.source, mapping: planner.mapping) {
            case let .skipped(type, _): return .skipped(type)
            case let .event(event, operations, key): return .event(event, operations: operations, key: key)
            }
        }
    }

    func prepareJomablue(_ message: IncomingMessage, _ jomablue: JomablueFormat) -> PreparedMessage {
        prepareWithFormatOperations(message) { json throws(EventError) in
            switch try jomablue.decode(json, mapping: planner.mapping) {
            case let .skipped(type): return .skipped(type)
            case let .event(event, operations): return .event(event, operations: operations, key: nil)
            }
        }
    }

    /// An Altcraft request: one `importProfile` operation carrying the mapping's actions for `ALTCRAFT_IMPORT`
    /// (without `enter_journey` when `skip_triggers`), and the reply it asks for.
    func prepareAltcraftImport(_ message: IncomingMessage, _ altcraft: AltcraftImportFormat) -> PreparedMessage {
        do throws(EventError) {
            let json = try parse(message)
            let request = try altcraft.decode(json, mapping: planner.mapping)
            if let error = limits.tooManyProperties(request.event.properties.count, field: "\(request.event.type.rawValue).properties") { throw error }
            var profile = request.profile
            var unmatched = 0
            if let plan = try planner.plan(request.event, receivedAt: message.receivedAt) {
                profile.then = plan.operations.filter { operation in
                    if request.skipTriggers, case .enterJourney = operation { return false }
                    return true
                }
                unmatched = plan.unmatchedProperties
            }
            return .event(PlannedEvent(
                key: key(for: message, json: json), type: AltcraftImportFormat.importType, contactId: profile.newContactId,
                operations: [.importProfile(profile)], unmatchedProperties: unmatched, reply: request.reply
            ))
        } catch {
            return .rejected(error)
        }
    }

    func parse(_ message: IncomingMessage) throws(EventError) -> JSONValue {
        do {
            return try decoder.parser.parse(message.body)
        } catch {
            throw EventError(.invalidJSON, field: "", reason: error.description)
        }
    }

    func key(for message: IncomingMessage, json: JSONValue) -> IdempotencyKey {
        switch message.identity {
        case let .messageId(id):
            return IdempotencyKey(value: "m:\(message.source):\(id)", check: .always)
        case let .sourceKey(key):
            return IdempotencyKey(value: key, check: .always)
        case .content:
            let digest = SHA256.hash(data: JSONWriter.canonicalBytes(json))
            let value = "c:\(message.source):\(digest.withUnsafeBytes(hexString))"
            guard message.mayBeRedelivery else { return IdempotencyKey(value: value, check: .recordOnly) }
            let since = message.receivedAt.microsecondsSinceEpoch - redeliveryWindowSeconds * 1_000_000
            return IdempotencyKey(value: value, check: .since(Timestamp(microsecondsSinceEpoch: since)))
        }
    }
}

/// Lower-case hex of a digest or any bytes.
///
/// A digest should come as its bytes (`digest.withUnsafeBytes(hexString)`): iterating a swift-crypto digest as a
/// sequence reads it byte by byte through an index, which made this a sixth of `crm-ingest ingest`'s decoding CPU.
public func hexString(_ bytes: some Sequence<UInt8>) -> String {
    if let text = bytes.withContiguousStorageIfAvailable({ hexString(UnsafeRawBufferPointer($0)) }) { return text }
    return Array(bytes).withUnsafeBytes { hexString($0) }
}

/// Lower-case hex of `bytes`, written straight into the string's storage.
public func hexString(_ bytes: UnsafeRawBufferPointer) -> String {
    String(unsafeUninitializedCapacity: bytes.count * 2) { out in
        let digits: StaticString = "0123456789abcdef"
        let table = UnsafeRawBufferPointer(start: digits.utf8Start, count: 16)
        var index = 0
        for byte in bytes {
            out[index] = table[Int(byte >> 4)]
            out[index + 1] = table[Int(byte & 0x0F)]
            index += 2
        }
        return index
    }
}
