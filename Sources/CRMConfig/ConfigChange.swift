/// What switching a running daemon from one valid configuration to another does: which parts switch in place, which
/// sources restart, and what cannot change without a restart. The reload and `validate-config --against` both use
/// it, so they report the same thing.
public struct ConfigChange: Sendable, Equatable {
    /// Parts that cannot change at runtime (the store, the HTTP server's address and limits); non-empty: the reload
    /// is refused whole and the running configuration stays. Each problem names its YAML path.
    public var refusals: [ConfigProblem]
    /// Broker sources (RabbitMQ, SQS) whose settings changed: each is stopped gracefully and started again alone.
    public var restartedSources: [String]
    /// Broker sources that are new: started.
    public var addedSources: [String]
    /// Broker sources no longer configured: stopped gracefully.
    public var removedSources: [String]
    /// The HTTP integrations (http sources) differ: the endpoint table is swapped in place.
    public var httpIntegrationsChanged: Bool
    /// The attributes, the mappings or the idempotency settings differ: swapped in place; an event in process
    /// finishes with the mapping it started with.
    public var mappingChanged: Bool
    /// The `reload:` settings differ: they take effect at the next start (the watch runs with the start's).
    public var reloadSettingsChanged: Bool
    /// The `limits:` differ: swapped in place with the mapping (every source's processor and the HTTP integrations).
    public var limitsChanged: Bool

    public init(from old: DaemonConfig, to new: DaemonConfig) {
        var refusals: [ConfigProblem] = []
        if old.store != new.store {
            refusals.append(ConfigProblem(
                path: "store",
                message: "changed from \(old.store.summary) to \(new.store.summary); a store change needs a restart of the daemon"
            ))
        }
        if old.http != new.http {
            refusals.append(ConfigProblem(
                path: "http",
                message: "changed from \(old.http?.summary ?? "none") to \(new.http?.summary ?? "none"); the HTTP server's address and limits need a restart of the daemon"
            ))
        }
        let oldBroker = Dictionary(old.sources.filter(\.isBrokerSource).map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let newBroker = Dictionary(new.sources.filter(\.isBrokerSource).map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.refusals = refusals
        restartedSources = new.sources.filter { source in
            guard let before = oldBroker[source.name], source.isBrokerSource else { return false }
            return before != source
        }.map(\.name)
        addedSources = new.sources.filter { $0.isBrokerSource && oldBroker[$0.name] == nil }.map(\.name)
        removedSources = old.sources.filter { $0.isBrokerSource && newBroker[$0.name] == nil }.map(\.name)
        httpIntegrationsChanged = old.sources.filter { !$0.isBrokerSource } != new.sources.filter { !$0.isBrokerSource }
        mappingChanged = old.attributes != new.attributes || old.mappings != new.mappings || old.idempotency != new.idempotency
        reloadSettingsChanged = old.reload != new.reload
        limitsChanged = old.limits != new.limits
    }

    /// Nothing differs that the daemon uses.
    public var isEmpty: Bool {
        refusals.isEmpty && restartedSources.isEmpty && addedSources.isEmpty && removedSources.isEmpty
            && !httpIntegrationsChanged && !mappingChanged && !reloadSettingsChanged && !limitsChanged
    }

    /// One line per effect, for logs and `validate-config --against`.
    public var effects: [String] {
        var lines: [String] = []
        if mappingChanged { lines.append("mapping: switched in place (events in process finish with the mapping they started with)") }
        if limitsChanged { lines.append("limits: switched in place (messages in process finish under the limits they started with)") }
        if httpIntegrationsChanged { lines.append("http integrations: switched in place") }
        for name in restartedSources { lines.append("source \(name): restarted alone (stops gracefully, then consumes with its new settings)") }
        for name in addedSources { lines.append("source \(name): started") }
        for name in removedSources { lines.append("source \(name): stopped gracefully") }
        if reloadSettingsChanged { lines.append("reload: the new watch settings take effect at the next start") }
        if lines.isEmpty && refusals.isEmpty { lines.append("nothing the daemon uses changed") }
        return lines
    }
}

extension SourceConfig {
    /// RabbitMQ and SQS sources run as their own services; http sources are endpoints of the HTTP server.
    public var isBrokerSource: Bool {
        if case .http = transport { return false }
        return true
    }
}

extension StoreConfig {
    /// The store in a few words, for messages.
    public var summary: String {
        switch self {
        case let .sqlite(sqlite): return "sqlite at \(sqlite.path)"
        case let .postgres(postgres): return "postgres at \(postgres.redactedURL)"
        }
    }
}

extension HTTPServerConfig {
    /// The server in a few words, for messages.
    public var summary: String { "\(host):\(port) (max body \(maxBodyBytes) bytes, read timeout \(readTimeout.components.seconds)s)" }
}
