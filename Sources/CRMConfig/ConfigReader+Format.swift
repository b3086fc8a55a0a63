import CRMCore
import Foundation
import ProcaCrypto
import Yams

extension ConfigReader {
    /// `format: default | flattened | { custom: { type_from, types } }`; nil when absent or broken.
    mutating func readFormat(_ node: Node?, at path: String) -> MessageFormat? {
        guard let node else { return nil }
        if let text = node.scalar?.string {
            switch expand(text, at: path) {
            case "default": return .default
            case "flattened": return .flattened
            case let other:
                problem(path, "unknown format \"\(other)\" (formats: default, flattened, { custom: { type_from, types } }, { proca: { list, keystore } }, { jomablue: { list } } or { altcraft_import: { reply_queue, reply_ttl, account_id } })")
                return nil
            }
        }
        guard let format = members(node, at: path, allowed: ["custom", "proca", "jomablue", "altcraft_import", "by", "formats", "otherwise"]) else { return nil }
        if format["by"] != nil || format["formats"] != nil || format["otherwise"] != nil {
            return readPerMessageFormat(format, at: path)
        }
        if let jomablueNode = format["jomablue"] {
            guard let fields = members(jomablueNode, at: "\(path).jomablue", allowed: ["list"]),
                  let list = int(fields["list"], at: "\(path).jomablue.list", required: true) else { return nil }
            return .jomablue(list: list)
        }
        if let altcraftNode = format["altcraft_import"] {
            return readAltcraftImport(altcraftNode, at: "\(path).altcraft_import").map(MessageFormat.altcraftImport)
        }
        if let procaNode = format["proca"] {
            return readProca(procaNode, at: "\(path).proca").map(MessageFormat.proca)
        }
        guard let customNode = format["custom"] else {
            problem(path, "expected default, flattened, { custom: { type_from, types } }, { proca: { list, keystore } }, { jomablue: { list } } or { altcraft_import: { reply_queue, reply_ttl, account_id } }")
            return nil
        }
        return readCustomConverter(customNode, at: "\(path).custom").map(MessageFormat.custom)
    }

    /// `{ by: header:NAME | attribute:NAME, formats: { value: format, … }, otherwise: format }`.
    mutating func readPerMessageFormat(_ fields: [String: Node], at path: String) -> MessageFormat? {
        let before = problems.count
        if fields["custom"] != nil || fields["proca"] != nil || fields["jomablue"] != nil || fields["altcraft_import"] != nil {
            problem(path, "a per-message format names its formats under formats:, not beside by:")
        }
        var selector: CustomConverter.TypeSource?
        if let text = requiredString(fields["by"], at: "\(path).by") {
            if text.hasPrefix("header:"), text.count > 7 {
                selector = .header(String(text.dropFirst(7)))
            } else if text.hasPrefix("attribute:"), text.count > 10 {
                selector = .attribute(String(text.dropFirst(10)))
            } else {
                problem("\(path).by", "expected header:NAME or attribute:NAME, got \"\(text)\"")
            }
        }
        var formats: [String: MessageFormat] = [:]
        if case let .mapping(mapping)? = fields["formats"], !mapping.isEmpty {
            for (keyNode, formatNode) in mapping {
                let value = keyNode.scalar?.string ?? ""
                if let format = readFormat(formatNode, at: "\(path).formats.\(value)") {
                    if case .perMessage = format { problem("\(path).formats.\(value)", "formats do not nest") } else { formats[value] = format }
                }
            }
        } else {
            problem("\(path).formats", "required: the value of \(fields["by"]?.scalar?.string ?? "by") and the format it names, such as { proca: { proca: { list: 1 } }, app: default }")
        }
        var otherwise: MessageFormat?
        if let node = fields["otherwise"] { otherwise = readFormat(node, at: "\(path).otherwise") }
        guard problems.count == before, let selector else { return nil }
        return .perMessage(by: selector, formats: formats, otherwise: otherwise)
    }

    /// `altcraft_import: { reply_queue: database_import_result, reply_ttl: 24h, account_id: 1 }`, every key optional
    /// (`altcraft_import: {}` takes the defaults).
    mutating func readAltcraftImport(_ node: Node, at path: String) -> AltcraftImportSettings? {
        if case let .scalar(scalar) = node, scalar.string.isEmpty || scalar.string == "~" || scalar.string == "null" { return AltcraftImportSettings() }
        guard let fields = members(node, at: path, allowed: ["reply_queue", "reply_ttl", "account_id"]) else { return nil }
        let before = problems.count
        var settings = AltcraftImportSettings()
        if let queue = string(fields["reply_queue"], at: "\(path).reply_queue") {
            if queue.isEmpty || queue.utf8.count > 255 { problem("\(path).reply_queue", "a queue name of 1 to 255 bytes") } else { settings.replyQueue = queue }
        }
        if let ttl = duration(fields["reply_ttl"], at: "\(path).reply_ttl") {
            let seconds = Int(ttl)
            if seconds < 1 || seconds > Int(UInt32.max / 1000) { problem("\(path).reply_ttl", "from 1s to 49d") } else { settings.replyTTLSeconds = seconds }
        }
        settings.accountId = int(fields["account_id"], at: "\(path).account_id", required: false)
        return problems.count == before ? settings : nil
    }

    /// `proca: { list: 1, keystore: keys.json }`; the keystore (a @proca/crypto file) is read now.
    mutating func readProca(_ node: Node, at path: String) -> ProcaSettings? {
        guard let fields = members(node, at: path, allowed: ["list", "keystore"]) else { return nil }
        guard let list = int(fields["list"], at: "\(path).list", required: true) else { return nil }
        var settings = ProcaSettings(list: list)
        if let file = string(fields["keystore"], at: "\(path).keystore") {
            let resolved = file.hasPrefix("/") ? file : (baseDirectory as NSString).appendingPathComponent(file)
            guard let data = FileManager.default.contents(atPath: resolved) else {
                problem("\(path).keystore", "cannot read \(resolved)")
                return nil
            }
            do {
                settings.privateKeys = try ProcaDecryptor(keystoreJSON: [UInt8](data)).privateKeys
            } catch {
                problem("\(path).keystore", "\(resolved): \(error)")
                return nil
            }
        }
        return settings
    }

    /// YAML names of the default-format fields a rule fills.
    static let converterFields: [String: String] = [
        "contact_id": "contactId", "amount": "amount", "timestamp": "timestamp", "currency": "currency",
        "transaction_id": "transactionId", "vendor": "vendor", "payment_type": "paymentType", "channel": "channel",
        "consented": "consented",
    ]

    mutating func readCustomConverter(_ node: Node, at path: String) -> CustomConverter? {
        guard let fields = members(node, at: path, allowed: ["type_from", "types"]) else { return nil }
        let before = problems.count
        var typeFrom: CustomConverter.TypeSource?
        if let text = requiredString(fields["type_from"], at: "\(path).type_from") {
            if text.hasPrefix("header:"), text.count > 7 {
                typeFrom = .header(String(text.dropFirst(7)))
            } else if text.hasPrefix("attribute:"), text.count > 10 {
                typeFrom = .attribute(String(text.dropFirst(10)))
            } else if text.hasPrefix("$") {
                if let jsonPath = jsonPath(text, at: "\(path).type_from") { typeFrom = .body(jsonPath) }
            } else {
                problem("\(path).type_from", "expected header:NAME, attribute:NAME or a body path such as $.event, got \"\(text)\"")
            }
        }
        var rules: [String: CustomConverter.Rule] = [:]
        guard case let .mapping(types)? = fields["types"], !types.isEmpty else {
            problem("\(path).types", "required: the message types and how each becomes an event")
            return nil
        }
        for (keyNode, ruleNode) in types {
            let name = keyNode.scalar?.string ?? ""
            let rulePath = "\(path).types.\(name)"
            if let rule = readConverterRule(ruleNode, at: rulePath) { rules[name] = rule }
        }
        guard problems.count == before, let typeFrom else { return nil }
        return CustomConverter(typeFrom: typeFrom, rules: rules)
    }

    mutating func readConverterRule(_ node: Node, at path: String) -> CustomConverter.Rule? {
        let allowed = ["type", "properties"] + Self.converterFields.keys.sorted()
        guard let fields = members(node, at: path, allowed: allowed) else { return nil }
        let before = problems.count
        guard let typeName = requiredString(fields["type"], at: "\(path).type") else { return nil }
        guard let type = EventType.defaultFormat(named: typeName) else {
            problem("\(path).type", "expected one of the default types (\(EventType.defaultFormatTypes.map(\.rawValue).joined(separator: ", "))), got \"\(typeName)\"")
            return nil
        }
        var required = ["contact_id"]
        if type.transaction != nil { required += ["amount", "timestamp"] }
        if type == .userConsentUpdate { required += ["channel", "consented"] }
        var paths: [CustomConverter.FieldPath] = []
        for key in Self.converterFields.keys.sorted() {
            guard let valueNode = fields[key] else {
                if required.contains(key) { problem("\(path).\(key)", "required for \(type.rawValue): a path such as $.user.id") }
                continue
            }
            let fieldName = Self.converterFields[key]!
            if type.transaction == nil, ["amount", "timestamp", "currency", "transaction_id", "vendor", "payment_type"].contains(key) {
                problem("\(path).\(key)", "\(type.rawValue) carries no \(key)")
                continue
            }
            if type != .userConsentUpdate, ["channel", "consented"].contains(key) {
                problem("\(path).\(key)", "only USER_CONSENT_UPDATE carries \(key)")
                continue
            }
            if let text = string(valueNode, at: "\(path).\(key)"), let jsonPath = jsonPath(text, at: "\(path).\(key)") {
                paths.append(CustomConverter.FieldPath(name: fieldName, path: jsonPath))
            }
        }
        // contactId first, so its errors come first.
        paths.sort { ($0.name == "contactId" ? 0 : 1, $0.name) < ($1.name == "contactId" ? 0 : 1, $1.name) }
        var properties: [CustomConverter.FieldPath] = []
        if let propertiesNode = fields["properties"] {
            guard case let .mapping(mapping) = propertiesNode else {
                problem("\(path).properties", "expected property names with their paths, such as { email: $.user.email }")
                return nil
            }
            for (keyNode, valueNode) in mapping {
                let name = keyNode.scalar?.string ?? ""
                if let text = string(valueNode, at: "\(path).properties.\(name)"), let jsonPath = jsonPath(text, at: "\(path).properties.\(name)") {
                    properties.append(CustomConverter.FieldPath(name: name, path: jsonPath))
                }
            }
        }
        guard problems.count == before else { return nil }
        return CustomConverter.Rule(type: type, fields: paths, properties: properties)
    }

    mutating func jsonPath(_ text: String, at path: String) -> JSONPath? {
        do {
            return try JSONPath(text)
        } catch {
            problem(path, error.description)
            return nil
        }
    }
}
