import CRMCore
import Foundation
import Yams

/// Reads and validates the YAML configuration. Every problem is collected with its YAML path, so an operator sees
/// all of them at once; a configuration with any problem is refused whole.
public struct ConfigLoader: Sendable {
    /// Where `${NAME}` and `${NAME:-default}` are looked up. Injected, so tests control it.
    public var environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    public func load(path: String) throws(ConfigError) -> DaemonConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(problems: [ConfigProblem(path: "", message: "cannot read \(path): \(error.localizedDescription)")])
        }
        return try load(yaml: text, baseDirectory: (path as NSString).deletingLastPathComponent)
    }

    /// `baseDirectory`: where relative file names in the configuration (`public_key_file`) are looked up.
    public func load(yaml: String, baseDirectory: String = FileManager.default.currentDirectoryPath) throws(ConfigError) -> DaemonConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigError(problems: [ConfigProblem(path: "", message: "not valid YAML: \(error)")])
        }
        guard let root else {
            // An emptied file (a truncating redirect, an editor's empty save) would otherwise reload as a daemon
            // with no sources, stopping every one of them.
            throw ConfigError(problems: [ConfigProblem(
                path: "", message: "the configuration is empty; write at least its sources, or run without --config for the built-in configuration"
            )])
        }
        var reader = ConfigReader(environment: environment, baseDirectory: baseDirectory.isEmpty ? "." : baseDirectory)
        let config = reader.readDaemon(root)
        guard reader.problems.isEmpty else { throw ConfigError(problems: reader.problems) }
        return config
    }
}

/// Walks the YAML tree, collecting problems instead of stopping at the first.
struct ConfigReader {
    let environment: [String: String]
    let baseDirectory: String
    var problems: [ConfigProblem] = []
    /// Event types http sources declare, kept even when the source has other problems (so its mapping is not
    /// also reported as unknown).
    var declaredHTTPEventTypes: [IncomingEventType] = []

    init(environment: [String: String], baseDirectory: String = ".") {
        self.environment = environment
        self.baseDirectory = baseDirectory
    }

    mutating func problem(_ path: String, _ message: String) {
        problems.append(ConfigProblem(path: path, message: message))
    }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    // MARK: Generic readers

    /// The members of a mapping node, refusing keys outside `allowed`.
    mutating func members(_ node: Node?, at path: String, allowed: [String]) -> [String: Node]? {
        guard let node else { return nil }
        guard case let .mapping(mapping) = node else {
            problem(path, "expected a mapping (key: value), got \(describe(node))")
            return nil
        }
        var result: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard case let .scalar(key) = keyNode else {
                problem(path, "keys must be plain names")
                continue
            }
            guard allowed.contains(key.string) else {
                let known = allowed.joined(separator: ", ")
                problem(Self.join(path, key.string), "unknown key (expected one of: \(known))")
                continue
            }
            result[key.string] = value
        }
        return result
    }

    /// A scalar's text with `${NAME}` and `${NAME:-default}` expanded.
    mutating func string(_ node: Node?, at path: String) -> String? {
        guard let node else { return nil }
        guard case let .scalar(scalar) = node else {
            problem(path, "expected a single value, got \(describe(node))")
            return nil
        }
        return expand(scalar.string, at: path)
    }

    mutating func requiredString(_ node: Node?, at path: String) -> String? {
        guard node != nil else {
            problem(path, "required")
            return nil
        }
        return string(node, at: path)
    }

    mutating func int(_ node: Node?, at path: String, required: Bool, positive: Bool = true) -> Int? {
        guard let node else {
            if required { problem(path, "required") }
            return nil
        }
        guard let text = string(node, at: path) else { return nil }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            problem(path, "expected a whole number, got \"\(text)\"")
            return nil
        }
        if positive && value <= 0 {
            problem(path, "must be greater than 0, got \(value)")
            return nil
        }
        return value
    }

    mutating func bool(_ node: Node?, at path: String, default defaultValue: Bool) -> Bool {
        guard let node, let text = string(node, at: path) else { return defaultValue }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            problem(path, "expected true or false, got \"\(text)\"")
            return defaultValue
        }
    }

    /// `30s`, `15m`, `1h`, `7d` (or a number of seconds) in seconds.
    mutating func duration(_ node: Node?, at path: String) -> Int64? {
        guard let node, let text = string(node, at: path) else { return nil }
        guard let seconds = DurationText.seconds(text) else {
            problem(path, "expected a duration such as 30s, 15m, 1h or 7d, got \"\(text)\"")
            return nil
        }
        return seconds
    }

    mutating func expand(_ text: String, at path: String) -> String {
        guard text.contains("${") else { return text }
        var result = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            result += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                problem(path, "unterminated ${ in \"\(text)\"")
                return text
            }
            let expression = rest[start.upperBound..<end]
            let name: Substring
            var fallback: Substring?
            if let separator = expression.range(of: ":-") {
                name = expression[..<separator.lowerBound]
                fallback = expression[separator.upperBound...]
            } else {
                name = expression
            }
            if let value = environment[String(name)], !(value.isEmpty && fallback != nil) {
                result += value
            } else if let fallback {
                result += fallback
            } else {
                problem(path, "environment variable \(name) is not set (write ${\(name):-default} to give a default)")
            }
            rest = rest[rest.index(after: end)...]
        }
        return result + rest
    }

    func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): return "\"\(scalar.string)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    // MARK: The daemon

    mutating func readDaemon(_ root: Node?) -> DaemonConfig {
        var config = DaemonConfig()
        guard let root else { return config }
        guard let top = members(root, at: "", allowed: ["store", "http", "sources", "attributes", "mappings", "idempotency", "reload", "limits"]) else {
            return config
        }
        if let store = readStore(top["store"]) { config.store = store }
        config.http = readHTTPServer(top["http"])
        config.sources = readSources(top["sources"])
        config.attributes = readAttributes(top["attributes"])
        config.mappings = readMappings(top["mappings"], attributes: config.attributes, sources: config.sources)
        config.idempotency = readIdempotency(top["idempotency"])
        config.reload = readReload(top["reload"])
        config.limits = readLimits(top["limits"])
        checkHTTPSources(config)
        return config
    }

    mutating func readStore(_ node: Node?) -> StoreConfig? {
        guard let store = members(node, at: "store", allowed: ["sqlite", "postgres"]) else { return nil }
        if store["sqlite"] != nil, store["postgres"] != nil {
            problem("store", "name one store: sqlite or postgres, not both")
            return nil
        }
        if let postgresNode = store["postgres"] { return readPostgres(postgresNode).map(StoreConfig.postgres) }
        guard let sqliteNode = store["sqlite"] else {
            problem("store", "name a store: sqlite or postgres")
            return nil
        }
        var sqlite = SQLiteStoreConfig()
        guard let fields = members(sqliteNode, at: "store.sqlite", allowed: ["path", "busy_timeout", "durability", "cache_size", "commit_interval"]) else { return .sqlite(sqlite) }
        if let durability = string(fields["durability"], at: "store.sqlite.durability") {
            switch durability {
            case "full": sqlite.synchronousFull = true
            case "normal": sqlite.synchronousFull = false
            default: problem("store.sqlite.durability", "expected full or normal, got \"\(durability)\"")
            }
        }
        if let path = string(fields["path"], at: "store.sqlite.path") {
            if path.isEmpty { problem("store.sqlite.path", "must not be empty") } else { sqlite.path = path }
        }
        if let seconds = duration(fields["busy_timeout"], at: "store.sqlite.busy_timeout") {
            sqlite.busyTimeoutMilliseconds = Int(seconds * 1000)
        }
        if let text = string(fields["cache_size"], at: "store.sqlite.cache_size") {
            if let bytes = ByteSizeText.bytes(text), bytes >= 256 << 10, bytes <= 4 << 30 {
                sqlite.cacheBytes = bytes
            } else {
                problem("store.sqlite.cache_size", "expected a size from 256KiB to 4GiB such as 4MiB, got \"\(text)\"")
            }
        }
        if let text = string(fields["commit_interval"], at: "store.sqlite.commit_interval") {
            if let milliseconds = DurationText.milliseconds(text), (0...1_000).contains(milliseconds) {
                sqlite.commitIntervalMilliseconds = Int(milliseconds)
            } else {
                problem("store.sqlite.commit_interval", "expected a duration from 0ms to 1s such as 5ms, got \"\(text)\"")
            }
        }
        return .sqlite(sqlite)
    }

    mutating func readPostgres(_ node: Node) -> PostgresStoreConfig? {
        guard let fields = members(node, at: "store.postgres", allowed: ["url", "pool", "tls", "startup_timeout"]) else { return nil }
        guard let url = string(fields["url"], at: "store.postgres.url") else {
            if fields["url"] == nil { problem("store.postgres.url", "required: postgres://USER:PASSWORD@HOST:PORT/DATABASE") }
            return nil
        }
        var postgres: PostgresStoreConfig
        switch PostgresStoreConfig.parse(url: url) {
        case let .success(parsed): postgres = parsed
        case let .failure(error):
            problem("store.postgres.url", error.description)
            return nil
        }
        if let pool = int(fields["pool"], at: "store.postgres.pool", required: false) {
            if (1...256).contains(pool) { postgres.pool = pool } else { problem("store.postgres.pool", "expected 1 to 256 connections, got \(pool)") }
        }
        if let tls = string(fields["tls"], at: "store.postgres.tls") {
            if let mode = PostgresStoreConfig.TLSMode(rawValue: tls) {
                postgres.tls = mode
            } else {
                problem("store.postgres.tls", "expected disable, prefer or require, got \"\(tls)\"")
            }
        }
        if let seconds = duration(fields["startup_timeout"], at: "store.postgres.startup_timeout") {
            postgres.startupTimeoutSeconds = max(0, Int(seconds))
        }
        return postgres
    }

    mutating func readSources(_ node: Node?) -> [SourceConfig] {
        guard let node else { return [] }
        guard case let .sequence(items) = node else {
            if node.null != nil || node.scalar?.string.isEmpty == true { return [] }
            problem("sources", "expected a list of sources, got \(describe(node))")
            return []
        }
        var sources: [SourceConfig] = []
        for (index, item) in items.enumerated() {
            let path = "sources[\(index)]"
            guard let fields = members(item, at: path, allowed: ["name", "format", "rabbitmq", "sqs", "http"]) else { continue }
            guard let name = requiredString(fields["name"], at: "\(path).name") else { continue }
            if name.isEmpty || !name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) {
                problem("\(path).name", "use letters, digits, '-', '_' and '.', got \"\(name)\"")
                continue
            }
            if sources.contains(where: { $0.name == name }) {
                problem("\(path).name", "source \"\(name)\" is defined twice")
                continue
            }
            let format = readFormat(fields["format"], at: "\(path).format")
            let transports = ["rabbitmq", "sqs", "http"].filter { fields[$0] != nil }
            guard transports.count == 1, let transport = transports.first, let node = fields[transport] else {
                problem(path, transports.isEmpty ? "name the transport: rabbitmq, sqs or http" : "one transport per source: rabbitmq, sqs or http")
                continue
            }
            if transport == "http" {
                if let format, format != .flattened {
                    problem("\(path).format", "an http source takes JSON bodies as format flattened, got \"\(format.name)\"")
                }
            } else if format == .flattened {
                problem("\(path).format", "the flattened format is for http sources; brokers carry the default format")
            }
            if transport != "rabbitmq", format?.altcraftImport != nil {
                problem("\(path).format", "altcraft_import replies on a RabbitMQ queue: it is for rabbitmq sources")
            }
            switch transport {
            case "rabbitmq":
                if var config = readRabbitMQ(node, at: "\(path).rabbitmq") {
                    if let altcraft = format?.altcraftImport {
                        config.replies = .init(queue: altcraft.replyQueue, ttlSeconds: altcraft.replyTTLSeconds)
                        if config.consumedQueues.contains(altcraft.replyQueue) {
                            problem("\(path).format.altcraft_import.reply_queue", "replies cannot go to the queue the requests come from (\(altcraft.replyQueue))")
                        }
                    }
                    sources.append(SourceConfig(name: name, format: format ?? .default, transport: .rabbitmq(config)))
                }
            case "sqs":
                if let config = readSQS(node, at: "\(path).sqs") {
                    sources.append(SourceConfig(name: name, format: format ?? .default, transport: .sqs(config)))
                }
            default:
                if let config = readHTTPSource(node, at: "\(path).http") {
                    sources.append(SourceConfig(name: name, format: .flattened, transport: .http(config)))
                }
            }
        }
        return sources
    }

    mutating func readIdempotency(_ node: Node?) -> IdempotencyConfig {
        var config = IdempotencyConfig()
        guard let fields = members(node, at: "idempotency", allowed: ["redelivery_window", "ledger_retention"]) else { return config }
        if let window = duration(fields["redelivery_window"], at: "idempotency.redelivery_window") {
            config.redeliveryWindowSeconds = window
        }
        if let retention = duration(fields["ledger_retention"], at: "idempotency.ledger_retention") {
            config.ledgerRetentionSeconds = retention
        }
        if config.ledgerRetentionSeconds < config.redeliveryWindowSeconds {
            problem("idempotency.ledger_retention", "must be at least the redelivery_window")
        }
        return config
    }

    /// `limits: { max_message_size: 1MiB, max_depth: 32, max_object_members: 1000, max_properties: 500, max_string_length: 64KiB }`
    mutating func readLimits(_ node: Node?) -> InputLimits {
        var limits = InputLimits()
        let names = ["max_message_size", "max_depth", "max_object_members", "max_properties", "max_string_length"]
        guard let fields = members(node, at: "limits", allowed: names) else { return limits }
        if let text = string(fields["max_message_size"], at: "limits.max_message_size") {
            if let bytes = ByteSizeText.bytes(text), bytes >= 1 << 10, bytes <= 64 << 20 {
                limits.maxMessageBytes = bytes
            } else {
                problem("limits.max_message_size", "expected a size from 1KiB to 64MiB such as 1MiB, got \"\(text)\"")
            }
        }
        if let text = string(fields["max_string_length"], at: "limits.max_string_length") {
            if let bytes = ByteSizeText.bytes(text), bytes >= 256, bytes <= 64 << 20 {
                limits.maxStringBytes = bytes
            } else {
                problem("limits.max_string_length", "expected a size from 256 bytes to 64MiB such as 64KiB, got \"\(text)\"")
            }
        }
        for (name, range, keyPath) in [
            ("max_depth", 2...512, \InputLimits.maxDepth),
            ("max_object_members", 16...1_000_000, \InputLimits.maxObjectMembers),
            ("max_properties", 1...1_000_000, \InputLimits.maxProperties),
        ] as [(String, ClosedRange<Int>, WritableKeyPath<InputLimits, Int>)] {
            guard let value = int(fields[name], at: "limits.\(name)", required: false) else { continue }
            if range.contains(value) {
                limits[keyPath: keyPath] = value
            } else {
                problem("limits.\(name)", "expected a whole number from \(range.lowerBound) to \(range.upperBound), got \(value)")
            }
        }
        return limits
    }

    mutating func readReload(_ node: Node?) -> ReloadConfig {
        var config = ReloadConfig()
        guard let fields = members(node, at: "reload", allowed: ["watch_file", "watch_interval"]) else { return config }
        config.watchFile = bool(fields["watch_file"], at: "reload.watch_file", default: config.watchFile)
        if let node = fields["watch_interval"], let text = string(node, at: "reload.watch_interval") {
            if let milliseconds = DurationText.milliseconds(text), (50...3_600_000).contains(milliseconds) {
                config.watchIntervalMilliseconds = milliseconds
            } else {
                problem("reload.watch_interval", "expected a duration from 50ms to 1h, such as 500ms or 2s, got \"\(text)\"")
            }
        }
        return config
    }

    // MARK: Attributes

    mutating func readAttributes(_ node: Node?) -> [AttributeDefinition] {
        guard let node else { return [] }
        guard case let .sequence(items) = node else {
            problem("attributes", "expected a list of { name, headers }, got \(describe(node))")
            return []
        }
        var result: [AttributeDefinition] = []
        var ownerOfHeader: [String: String] = [:]
        for (index, item) in items.enumerated() {
            let path = "attributes[\(index)]"
            guard let fields = members(item, at: path, allowed: ["name", "headers"]) else { continue }
            guard let name = requiredString(fields["name"], at: "\(path).name") else { continue }
            if name.isEmpty {
                problem("\(path).name", "must not be empty")
                continue
            }
            if result.contains(where: { $0.name == name }) {
                problem("\(path).name", "attribute \"\(name)\" is defined twice")
                continue
            }
            var headers: [String] = []
            switch fields["headers"] {
            case nil:
                headers = [name] // The seed's default: the header is the attribute's name.
            case let .sequence(headerNodes)?:
                for (headerIndex, headerNode) in headerNodes.enumerated() {
                    if let header = string(headerNode, at: "\(path).headers[\(headerIndex)]") {
                        headers.append(header)
                    }
                }
            case let other?:
                if let header = string(other, at: "\(path).headers") { headers = [header] }
            }
            for (headerIndex, header) in headers.enumerated() {
                let headerPath = "\(path).headers[\(headerIndex)]"
                if header.isEmpty {
                    problem(headerPath, "must not be empty")
                } else if let bad = header.first(where: { AttributeDefinition.forbiddenHeaderCharacters.contains($0) }) {
                    let shown = bad == " " ? "space" : "\"\(bad)\""
                    problem(headerPath, "\"\(header)\" contains \(shown); headers may not contain space, &, <, >, \" or '")
                } else if let owner = ownerOfHeader[header], owner != name {
                    problem(headerPath, "header \"\(header)\" already fills attribute \"\(owner)\"")
                } else {
                    ownerOfHeader[header] = name
                }
            }
            result.append(AttributeDefinition(name: name, headers: headers))
        }
        return result
    }

    // MARK: Mappings

    mutating func readMappings(_ node: Node?, attributes: [AttributeDefinition], sources: [SourceConfig] = []) -> [EventType: [Action]] {
        guard let node else { return [:] }
        guard case let .mapping(mapping) = node else {
            problem("mappings", "expected event types with their actions, got \(describe(node))")
            return [:]
        }
        var result: [EventType: [Action]] = [:]
        for (keyNode, value) in mapping {
            let typeName = keyNode.scalar?.string ?? ""
            let path = "mappings.\(typeName)"
            guard let type = knownEventType(typeName, sources: sources) else {
                let known = EventType.defaultFormatTypes.map(\.rawValue).joined(separator: ", ")
                problem(path, "unknown event type \"\(typeName)\" (known: \(known), or a custom type an http source declares as its event_type)")
                continue
            }
            guard case let .sequence(items) = value else {
                if value.null != nil || value.scalar?.string.isEmpty == true {
                    result[type] = []
                    continue
                }
                problem(path, "expected a list of actions, got \(describe(value))")
                continue
            }
            var actions: [Action] = []
            for (index, item) in items.enumerated() {
                if let action = readAction(item, at: "\(path)[\(index)]", type: type, attributes: attributes) {
                    actions.append(action)
                }
            }
            result[type] = actions
        }
        return result
    }

    /// A default-format type, a type of a format a source uses (`PROCA_ACTION`, `JOMABLUE_PERSON`,
    /// `ALTCRAFT_IMPORT`…), a type an http source fixes, or any well-formed name when an http source reads its type
    /// from the request.
    func knownEventType(_ name: String, sources: [SourceConfig]) -> EventType? {
        if let type = EventType.defaultFormat(named: name) { return type }
        for source in sources {
            if let type = source.format.formatEventTypes.first(where: { $0.rawValue == name }) { return type }
        }
        for declared in declaredHTTPEventTypes {
            switch declared {
            case let .fixed(type) where type.rawValue == name: return type
            case .field where Self.isEventTypeName(name): return EventType(rawValue: name)
            default: continue
            }
        }
        return nil
    }

    /// Checks that need the whole configuration: the server for http sources, endpoints, contact ids, retention.
    mutating func checkHTTPSources(_ config: DaemonConfig) {
        var endpoints: [String: String] = [:]
        for (index, source) in config.sources.enumerated() {
            guard case let .http(http) = source.transport else { continue }
            let path = "sources[\(index)].http"
            if config.http == nil { problem("http", "required: source \"\(source.name)\" receives over HTTP (http: { listen: 127.0.0.1:8080 })") }
            if let endpoint = http.endpoint {
                if let other = endpoints[endpoint] { problem("\(path).endpoint", "source \"\(other)\" already uses this endpoint") }
                endpoints[endpoint] = source.name
            }
            if case let .fixed(type) = http.eventType, !(config.mappings[type] ?? []).isEmpty, http.contactId == nil {
                problem("\(path).contact_id", "required: mappings.\(type.rawValue) has actions, and they need the contact (such as body.customer_email)")
            }
            if case .field = http.eventType, http.contactId == nil,
               config.mappings.contains(where: { !$0.key.isDefaultFormat && !$0.value.isEmpty }) {
                problem("\(path).contact_id", "required: the event type comes from the request and custom types have actions, which need the contact")
            }
            if let dedup = http.deduplication, dedup.windowSeconds > config.idempotency.ledgerRetentionSeconds {
                problem("\(path).deduplication.window", "longer than idempotency.ledger_retention (\(config.idempotency.ledgerRetentionSeconds)s): hashes would be pruned inside their window")
            }
        }
    }

    static let actionParameters: [String: [String]] = [
        "create_contact": ["list", "email_subscribed", "mobile_subscribed"],
        "update_contact": ["list"],
        "set_property": ["list", "property", "value"],
        "create_purchase_row": ["list"],
        "enter_journey": ["journey"],
        "anonymize_contact": ["list", "find_by"],
        "temp_block_contact": ["list", "find_by", "for", "unit"],
    ]

    mutating func readAction(_ node: Node, at path: String, type: EventType, attributes: [AttributeDefinition]) -> Action? {
        let names = Self.actionParameters.keys.sorted()
        guard case let .mapping(mapping) = node, mapping.count == 1, let (keyNode, parametersNode) = mapping.first.map({ ($0.key, $0.value) }),
              let name = keyNode.scalar?.string else {
            problem(path, "expected one action such as `create_contact: { list: 1 }` (actions: \(names.joined(separator: ", ")))")
            return nil
        }
        let actionPath = "\(path).\(name)"
        guard let allowed = Self.actionParameters[name] else {
            problem(actionPath, "unknown action (actions: \(names.joined(separator: ", ")))")
            return nil
        }
        let parameters: [String: Node]
        if parametersNode.null != nil || parametersNode.scalar?.string.isEmpty == true {
            parameters = [:]
        } else {
            guard let fields = members(parametersNode, at: actionPath, allowed: allowed) else { return nil }
            parameters = fields
        }
        func at(_ key: String) -> String { "\(actionPath).\(key)" }
        let problemsBefore = problems.count

        switch name {
        case "create_contact":
            let list = int(parameters["list"], at: at("list"), required: true)
            let email = bool(parameters["email_subscribed"], at: at("email_subscribed"), default: true)
            let mobile = bool(parameters["mobile_subscribed"], at: at("mobile_subscribed"), default: true)
            guard let list, problems.count == problemsBefore else { return nil }
            return .createContact(list: list, emailSubscribed: email, mobileSubscribed: mobile)
        case "update_contact":
            guard let list = int(parameters["list"], at: at("list"), required: true) else { return nil }
            return .updateContact(list: list)
        case "set_property":
            let list = int(parameters["list"], at: at("list"), required: true)
            let property = requiredString(parameters["property"], at: at("property"))
            if let property, !attributes.contains(where: { $0.name == property }) {
                problem(at("property"), "no attribute named \"\(property)\" (define it under attributes)")
            }
            guard let valueNode = parameters["value"] else {
                problem(at("value"), "required")
                return nil
            }
            let value = propertyValue(valueNode, at: at("value"))
            guard let list, let property, let value, problems.count == problemsBefore else { return nil }
            return .setProperty(list: list, property: property, value: value)
        case "create_purchase_row":
            let list = int(parameters["list"], at: at("list"), required: true)
            if type.transaction == nil {
                problem(actionPath, "only deposit and withdrawal events carry a purchase; \(type.rawValue) does not")
            }
            guard let list, problems.count == problemsBefore else { return nil }
            return .createPurchaseRow(list: list)
        case "enter_journey":
            guard let journey = int(parameters["journey"], at: at("journey"), required: true) else { return nil }
            return .enterJourney(journey: journey)
        case "anonymize_contact", "temp_block_contact":
            let list = int(parameters["list"], at: at("list"), required: true)
            var lookup = ContactLookup.originalId
            if let text = string(parameters["find_by"], at: at("find_by")) {
                if let parsed = ContactLookup(rawValue: text) {
                    lookup = parsed
                } else {
                    problem(at("find_by"), "expected original_id or email, got \"\(text)\"")
                }
            }
            if lookup == .email, !attributes.contains(where: { $0.name == "email" }) {
                problem(at("find_by"), "email needs an attribute named \"email\" (define it under attributes)")
            }
            if name == "anonymize_contact" {
                guard let list, problems.count == problemsBefore else { return nil }
                return .anonymizeContact(list: list, findBy: lookup)
            }
            let duration = int(parameters["for"], at: at("for"), required: true)
            var unit: CalendarUnit?
            if let text = requiredString(parameters["unit"], at: at("unit")) {
                unit = CalendarUnit(rawValue: text)
                if unit == nil {
                    problem(at("unit"), "expected one of minutes, hours, days, months, years, got \"\(text)\"")
                }
            }
            // At most a century: a block longer than that is a mistake, and far larger ones overflow the clock.
            let centuryLimits: [CalendarUnit: Int] = [.minutes: 52_560_000, .hours: 876_000, .days: 36_500, .months: 1_200, .years: 100]
            if let duration, let unit, let limit = centuryLimits[unit], duration > limit {
                problem(at("for"), "at most \(limit) \(unit.rawValue)\(unit == .years ? "" : " (100 years)"), got \(duration)")
            }
            guard let list, let duration, let unit, problems.count == problemsBefore else { return nil }
            return .tempBlockContact(list: list, findBy: lookup, duration: duration, unit: unit)
        default:
            return nil
        }
    }

    mutating func propertyValue(_ node: Node, at path: String) -> PropertyValue? {
        guard case let .scalar(scalar) = node else {
            problem(path, "expected a single value (text, number, true/false or null), got \(describe(node))")
            return nil
        }
        let text = expand(scalar.string, at: path)
        guard scalar.style == .plain, !scalar.string.contains("${") else { return .string(text) }
        if node.null != nil { return .null }
        if let flag = dataBool(node, text: text, at: path) { return .bool(flag) }
        // YAML numbers that are also JSON numbers keep their exact text; others (0x1F, .inf) stay text.
        if node.int != nil || node.float != nil, case let .number(literal)? = try? JSONParser().parse(text) {
            return .number(literal)
        }
        return .string(text)
    }
}

/// Durations as operators write them.
public enum DurationText {
    /// `500ms` is rounded up to whole seconds; `30s`, `15m`, `1h`, `7d`, `2w`, or bare seconds.
    public static func seconds(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400), ("w", 604_800)]
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            guard let number = Double(trimmed.dropLast(suffix.count)), number >= 0, number < 1e9 else { return nil }
            return Int64((number * factor).rounded(.up))
        }
        guard let number = Int64(trimmed), number >= 0 else { return nil }
        return number
    }

    /// The same texts in milliseconds (`500ms` stays 500); bare numbers are seconds.
    public static func milliseconds(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if trimmed.hasSuffix("ms") {
            guard let number = Double(trimmed.dropLast(2)), number >= 0, number < 1e12 else { return nil }
            return Int64(number.rounded(.up))
        }
        return seconds(trimmed).flatMap { $0 < Int64.max / 1_000 ? $0 * 1_000 : nil }
    }
}
