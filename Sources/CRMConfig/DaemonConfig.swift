import CRMCore
import Foundation
import ProcaCrypto

/// The whole configuration of a daemon, as read from the YAML file.
public struct DaemonConfig: Sendable {
    public var store: StoreConfig
    /// The HTTP server; nil: none (no http sources, no operational endpoints).
    public var http: HTTPServerConfig?
    public var sources: [SourceConfig]
    public var attributes: [AttributeDefinition]
    public var mappings: [EventType: [Action]]
    public var idempotency: IdempotencyConfig
    /// How the running daemon notices a changed configuration file.
    public var reload: ReloadConfig
    /// What every message must keep (size, nesting, members, properties, string length).
    public var limits: InputLimits

    public init(
        store: StoreConfig = .sqlite(SQLiteStoreConfig()), sources: [SourceConfig] = [],
        attributes: [AttributeDefinition] = [], mappings: [EventType: [Action]] = [:],
        idempotency: IdempotencyConfig = IdempotencyConfig(), http: HTTPServerConfig? = nil, reload: ReloadConfig = ReloadConfig(),
        limits: InputLimits = InputLimits()
    ) {
        self.reload = reload
        self.limits = limits
        self.store = store
        self.http = http
        self.sources = sources
        self.attributes = attributes
        self.mappings = mappings
        self.idempotency = idempotency
    }

    /// What decides what an event does.
    public var mapping: Mapping { Mapping(attributes: attributes, actions: mappings) }

    /// The processor for this configuration's mapping (default format).
    public var processor: EventProcessor {
        EventProcessor(mapping: mapping, limits: limits, redeliveryWindowSeconds: idempotency.redeliveryWindowSeconds)
    }

    /// The processor for one source: the mapping, and the source's format.
    public func processor(for source: SourceConfig) -> EventProcessor {
        EventProcessor(
            mapping: mapping, limits: limits, format: source.format.eventFormat, redeliveryWindowSeconds: idempotency.redeliveryWindowSeconds
        )
    }

    /// The SQS sources' dead-letter files and how long their records are kept.
    public var deadLetterFiles: [(path: String, retentionSeconds: Int64)] {
        sources.compactMap { source in
            guard case let .sqs(sqs) = source.transport else { return nil }
            return (sqs.deadLetterFile, sqs.deadLetterRetentionSeconds)
        }
    }

    /// One line for `validate-config`.
    public var summary: String {
        let actionCount = mappings.values.reduce(0) { $0 + $1.count }
        return "store=\(store.kind) sources=\(sources.count) attributes=\(attributes.count) "
            + "mapped_event_types=\(mappings.count) actions=\(actionCount)"
    }
}

public enum StoreConfig: Sendable, Equatable {
    case sqlite(SQLiteStoreConfig)
    case postgres(PostgresStoreConfig)

    public var kind: String {
        switch self {
        case .sqlite: return "sqlite"
        case .postgres: return "postgres"
        }
    }
}

/// The PostgreSQL store: where the server is and how many connections a daemon keeps (`store.postgres`).
public struct PostgresStoreConfig: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    /// Connections this daemon opens at most; batches beyond it wait for a free one.
    public var pool: Int
    public var tls: TLSMode
    /// How long the daemon waits at start-up for a server that does not answer yet.
    public var startupTimeoutSeconds: Int

    public enum TLSMode: String, Sendable, Equatable, CaseIterable {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it, plain TCP otherwise, the certificate not checked (libpq's default, `prefer`).
        case prefer
        /// TLS with the server's certificate verified against the system's trust store and the host name (libpq's
        /// `verify-full`).
        case require
    }

    public init(
        host: String = "127.0.0.1", port: Int = 5432, username: String = "crm", password: String? = nil, database: String = "crm",
        pool: Int = 8, tls: TLSMode = .prefer, startupTimeoutSeconds: Int = 60
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.pool = pool
        self.tls = tls
        self.startupTimeoutSeconds = startupTimeoutSeconds
    }

    /// The URL with its password masked, for messages and logs.
    public var redactedURL: String {
        "postgres://\(username)\(password == nil ? "" : ":***")@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)"
    }

    /// Reads `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require]` (also `postgresql://`).
    /// The user information ends at the last `@`, so a password from the environment may hold `@`, `/` or `:` as is;
    /// percent-escapes in user, password and database are decoded (as libpq does: write a literal `%` as `%25`).
    /// The error says what is wrong, never the password.
    public static func parse(url text: String) -> Result<PostgresStoreConfig, PostgresURLError> {
        guard let schemeEnd = text.range(of: "://") else {
            return .failure(PostgresURLError("expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"))
        }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "postgres" || scheme == "postgresql" else {
            return .failure(PostgresURLError("expected the postgres:// scheme, got \(scheme)://"))
        }
        var rest = text[schemeEnd.upperBound...]
        var config = PostgresStoreConfig()
        guard let at = rest.lastIndex(of: "@") else { return .failure(PostgresURLError("names no user (postgres://USER@HOST/DATABASE)")) }
        let userInfo = rest[..<at]
        rest = rest[rest.index(after: at)...]
        let user = userInfo.firstIndex(of: ":").map { userInfo[..<$0] } ?? userInfo
        guard !user.isEmpty else { return .failure(PostgresURLError("names no user (postgres://USER@HOST/DATABASE)")) }
        config.username = String(user).removingPercentEncoding ?? String(user)
        config.password = userInfo.firstIndex(of: ":").map { String(userInfo[userInfo.index(after: $0)...]) }.map { $0.removingPercentEncoding ?? $0 }
        var query: Substring = ""
        if let question = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: question)...]
            rest = rest[..<question]
        }
        guard let slash = rest.firstIndex(of: "/") else { return .failure(PostgresURLError("names no database (postgres://USER@HOST/DATABASE)")) }
        var hostPort = rest[..<slash]
        let database = rest[rest.index(after: slash)...]
        guard !database.isEmpty, !database.contains("/") else { return .failure(PostgresURLError("names no database (postgres://USER@HOST/DATABASE)")) }
        config.database = String(database).removingPercentEncoding ?? String(database)
        // [v6 address]:port, host:port, host
        if hostPort.hasPrefix("["), let close = hostPort.firstIndex(of: "]") {
            config.host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            hostPort = hostPort[hostPort.index(after: close)...]
            if hostPort.hasPrefix(":") { hostPort = hostPort.dropFirst() } else if !hostPort.isEmpty { return .failure(PostgresURLError("cannot read the host")) }
        } else if let colon = hostPort.lastIndex(of: ":") {
            config.host = String(hostPort[..<colon])
            hostPort = hostPort[hostPort.index(after: colon)...]
        } else {
            config.host = String(hostPort)
            hostPort = ""
        }
        guard !config.host.isEmpty else { return .failure(PostgresURLError("names no host")) }
        if !hostPort.isEmpty {
            guard let port = Int(hostPort), (1...65535).contains(port) else { return .failure(PostgresURLError("port \(hostPort) is not a port number")) }
            config.port = port
        }
        for item in query.split(separator: "&") where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1)
            let name = String(parts[0]), value = parts.count > 1 ? String(parts[1]) : ""
            switch name {
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else {
                    return .failure(PostgresURLError("sslmode must be disable, prefer or require, got \(value.isEmpty ? "nothing" : value)"))
                }
                config.tls = mode
            default:
                return .failure(PostgresURLError("unknown parameter \(name) (known: sslmode)"))
            }
        }
        return .success(config)
    }
}

/// Why a PostgreSQL URL was refused (never quoting the password).
public struct PostgresURLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

public struct SQLiteStoreConfig: Sendable, Equatable {
    /// Path of the database file; its folder is created if missing.
    public var path: String
    /// How long a writer waits for a lock held by another process before the batch fails as busy.
    public var busyTimeoutMilliseconds: Int

    /// `full`: every commit is synced to disk (acked messages survive power loss); `normal`: faster, survives
    /// process crashes only.
    public var synchronousFull: Bool
    /// SQLite's page cache for the writer (`cache_size`).
    public var cacheBytes: Int
    /// The least time from the start of one transaction to the start of the next (`commit_interval`): at moderate
    /// rates, events wait up to this long to share a commit.
    public var commitIntervalMilliseconds: Int
    /// A bulk load (`crm-ingest ingest`, not read from the file): waits for another process's write lock by backing
    /// off, so that a daemon writing the same file, which tries every millisecond, gets the lock first.
    public var yieldsTheWriteLock: Bool

    public init(
        path: String = "./data/crm.sqlite", busyTimeoutMilliseconds: Int = 5_000, synchronousFull: Bool = true, cacheBytes: Int = 16 << 20,
        commitIntervalMilliseconds: Int = SQLiteStoreConfig.defaultCommitIntervalMilliseconds, yieldsTheWriteLock: Bool = false
    ) {
        self.path = path
        self.yieldsTheWriteLock = yieldsTheWriteLock
        self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
        self.synchronousFull = synchronousFull
        self.cacheBytes = cacheBytes
        self.commitIntervalMilliseconds = commitIntervalMilliseconds
    }

    public static let defaultCommitIntervalMilliseconds = 2
}

/// A message source: its name (unique; it keys message ids in the ledger and labels metrics), its format, and
/// where messages come from.
public struct SourceConfig: Sendable, Equatable {
    public var name: String
    public var format: MessageFormat
    public var transport: Transport

    public enum Transport: Sendable, Equatable {
        case rabbitmq(RabbitMQSourceConfig)
        case sqs(SQSSourceConfig)
        case http(HTTPSourceConfig)
    }

    public init(name: String, format: MessageFormat = .default, transport: Transport) {
        self.name = name
        self.format = format
        self.transport = transport
    }
}

/// How a source's messages are written.
public enum MessageFormat: Sendable, Equatable {
    /// Symplify's default event format.
    case `default`
    /// Any JSON object, flattened to dotted keys (http sources).
    case flattened
    /// A converter defined in the configuration (`format: { custom: … }`).
    case custom(CustomConverter)
    /// Proca's action queue (`format: { proca: { list, keystore } }`).
    case proca(ProcaSettings)
    /// Jomablue's push payloads (`format: { jomablue: { list } }`).
    case jomablue(list: Int)
    /// Altcraft's profile import requests, each answered on a reply queue (`format: { altcraft_import: { … } }`).
    case altcraftImport(AltcraftImportSettings)
    /// Chosen per message (`format: { by: header:x-format, formats: { … }, otherwise: default }`).
    indirect case perMessage(by: CustomConverter.TypeSource, formats: [String: MessageFormat], otherwise: MessageFormat?)

    /// The formats written by name.
    public static let names = ["default", "flattened", "custom", "proca", "jomablue", "altcraft_import"]

    public var name: String {
        switch self {
        case .default: return "default"
        case .flattened: return "flattened"
        case .custom: return "custom"
        case .proca: return "proca"
        case .jomablue: return "jomablue"
        case .altcraftImport: return "altcraft_import"
        case .perMessage: return "per-message"
        }
    }

    /// How the processor decodes bodies of this format.
    public var eventFormat: EventFormat {
        switch self {
        case .default, .flattened: return .standard
        case let .custom(converter): return .custom(converter)
        case let .proca(settings):
            // The loader checked the keys' sizes, so the decryptor cannot refuse them here.
            let opener = settings.privateKeys.isEmpty ? nil : try? ProcaDecryptor(privateKeys: settings.privateKeys)
            return .proca(ProcaFormat(list: settings.list, opener: opener))
        case let .jomablue(list):
            return .jomablue(JomablueFormat(list: list))
        case let .altcraftImport(settings):
            return .altcraftImport(AltcraftImportFormat(accountId: settings.accountId))
        case let .perMessage(selector, formats, otherwise):
            return .perMessage(by: selector, formats: formats.mapValues(\.eventFormat), otherwise: otherwise?.eventFormat)
        }
    }

    /// The event types of this format's own messages (Proca, Jomablue, Altcraft), which a mapping may name.
    public var formatEventTypes: [EventType] {
        switch self {
        case .default, .flattened, .custom: return []
        case .proca: return ProcaFormat.eventTypes
        case .jomablue: return JomablueFormat.eventTypes
        case .altcraftImport: return [AltcraftImportFormat.importType]
        case let .perMessage(_, formats, otherwise):
            return formats.keys.sorted().flatMap { formats[$0]?.formatEventTypes ?? [] } + (otherwise?.formatEventTypes ?? [])
        }
    }

    /// The Altcraft import settings this format uses, directly or among its per-message formats.
    public var altcraftImport: AltcraftImportSettings? {
        switch self {
        case let .altcraftImport(settings): return settings
        case let .perMessage(_, formats, otherwise):
            return formats.keys.sorted().lazy.compactMap { formats[$0]?.altcraftImport }.first ?? otherwise?.altcraftImport
        default: return nil
        }
    }
}

/// The Altcraft profile import's settings.
public struct AltcraftImportSettings: Sendable, Equatable {
    /// Requests for another account are refused (with an error reply); nil: any account.
    public var accountId: Int?
    /// The queue replies go to.
    public var replyQueue: String
    /// How long an unread reply lives (Altcraft: 24 hours by default).
    public var replyTTLSeconds: Int

    public init(accountId: Int? = nil, replyQueue: String = "database_import_result", replyTTLSeconds: Int = 86_400) {
        self.accountId = accountId
        self.replyQueue = replyQueue
        self.replyTTLSeconds = replyTTLSeconds
    }
}

/// The Proca format's settings.
public struct ProcaSettings: Sendable, Equatable {
    /// The list contacts are kept in.
    public var list: Int
    /// Private keys by public key, read from the keystore file; empty: encrypted personal data is refused.
    public var privateKeys: [String: [UInt8]]

    public init(list: Int, privateKeys: [String: [UInt8]] = [:]) {
        self.list = list
        self.privateKeys = privateKeys
    }
}

/// `reload:`: SIGHUP always reloads the configuration; this says whether a change of the file on disk does too.
public struct ReloadConfig: Sendable, Equatable {
    /// Reload when the file's status (inode, size, modification time) changed and then held still for one interval.
    public var watchFile: Bool
    public var watchIntervalMilliseconds: Int64

    public init(watchFile: Bool = true, watchIntervalMilliseconds: Int64 = 1_000) {
        self.watchFile = watchFile
        self.watchIntervalMilliseconds = watchIntervalMilliseconds
    }
}

public struct IdempotencyConfig: Sendable, Equatable {
    /// A message without id that may be a redelivery is compared with ledger entries this recent.
    public var redeliveryWindowSeconds: Int64
    /// Ledger entries older than this are pruned; a message id seen again after it applies again.
    public var ledgerRetentionSeconds: Int64

    public init(redeliveryWindowSeconds: Int64 = 3_600, ledgerRetentionSeconds: Int64 = 30 * 86_400) {
        self.redeliveryWindowSeconds = redeliveryWindowSeconds
        self.ledgerRetentionSeconds = ledgerRetentionSeconds
    }
}
