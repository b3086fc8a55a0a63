import CRMConfig
import CRMCore
import CRMSourceHTTP
import CRMSourceSupport
import Foundation
import Logging
import Prometheus

/// The configuration a running daemon uses, and the switch to another one (a reload). Reloads run one at a time.
///
/// A valid new configuration takes effect for work that starts after the switch: mappings, attributes and the
/// HTTP integrations are swapped in place (a batch or a request in process finishes with what it started with); a
/// source whose settings changed is stopped gracefully (its deliveries in process settled) and started again alone.
/// A configuration with a problem, or one that changes what needs a restart (the store, the HTTP server), is refused
/// whole: the running one stays.
actor LiveConfiguration {
    /// What a reload did.
    enum Outcome: Sendable {
        case applied(ConfigChange)
        /// The file's text is the running one's.
        case unchanged
        case refused([ConfigProblem])
    }

    private(set) var config: DaemonConfig
    private(set) var sha256: String
    private(set) var loadedAt: Date
    let supervisor: SourceSupervisor
    /// The HTTP integrations and the mapping they feed, swapped as one (a request reads both once).
    let httpRouting: ReloadableValue<IncomingHTTPServer.Routing>
    let ledgerRetentionSeconds: ReloadableValue<Int64>
    /// The SQS sources' dead-letter files, which an anonymization cleans.
    let deadLetterPaths: ReloadableValue<[String]>
    private let store: any CRMStore
    private let statusBoard: SourceStatusBoard
    private let logger: Logger
    private let metrics: ConfigMetrics

    init(
        loaded: ConfigFile.Loaded, supervisor: SourceSupervisor, httpIntegrations: [HTTPIntegration], store: any CRMStore,
        statusBoard: SourceStatusBoard, registry: PrometheusCollectorRegistry, deadLetterPaths: ReloadableValue<[String]>, logger: Logger
    ) {
        self.deadLetterPaths = deadLetterPaths
        config = loaded.config
        sha256 = loaded.sha256
        loadedAt = Date()
        self.supervisor = supervisor
        httpRouting = ReloadableValue(IncomingHTTPServer.Routing(
            integrations: IncomingHTTPServer.table(httpIntegrations), processor: loaded.config.processor
        ))
        ledgerRetentionSeconds = ReloadableValue(loaded.config.idempotency.ledgerRetentionSeconds)
        self.store = store
        self.statusBoard = statusBoard
        self.logger = logger
        metrics = ConfigMetrics(registry: registry)
        metrics.loaded(sha256: loaded.sha256, at: loadedAt)
    }

    /// Reads the configuration again and switches to it when it is valid and can change at runtime.
    /// - Parameter evenIfTextUnchanged: compare what was read even when the text is the running one's (a SIGHUP:
    ///   a key file or keystore it names may have changed).
    func reload(from file: ConfigFile, trigger: String, evenIfTextUnchanged: Bool = false) async -> Outcome {
        let loaded: ConfigFile.Loaded
        do {
            loaded = try file.load()
        } catch {
            return refuse(error.problems, file: file, trigger: trigger)
        }
        let change = ConfigChange(from: config, to: loaded.config)
        guard loaded.sha256 != sha256 || (evenIfTextUnchanged && !change.isEmpty) else {
            logger.info("configuration reload: nothing changed", metadata: ["trigger": "\(trigger)", "sha256": "\(sha256)"])
            return .unchanged
        }
        guard change.refusals.isEmpty else { return refuse(change.refusals, file: file, trigger: trigger) }

        // Everything that can fail comes first, so a refused reload changes nothing.
        var integrations: [HTTPIntegration]?
        if change.httpIntegrationsChanged || change.limitsChanged, let server = loaded.config.http {
            do {
                let resolved = try await HTTPIntegrations.endpoints(loaded.config, store: store)
                integrations = try await HTTPIntegrations.make(resolved, server: server, limits: loaded.config.limits)
            } catch {
                return refuse([ConfigProblem(path: "sources", message: "\(error)")], file: file, trigger: trigger)
            }
        }

        let new = loaded.config
        let before = httpRouting.current.integrations
        let table = integrations.map(IncomingHTTPServer.table) ?? before
        httpRouting.replace(with: IncomingHTTPServer.Routing(integrations: table, processor: new.processor))
        ledgerRetentionSeconds.replace(with: new.idempotency.ledgerRetentionSeconds)
        deadLetterPaths.replace(with: new.deadLetterFiles.map(\.path))
        await supervisor.apply(new.sources.map { ($0, new.processor(for: $0)) })
        for name in change.removedSources {
            statusBoard.remove(name)
            EventMetrics(source: name).setUp(false)
        }
        if integrations != nil {
            for (endpoint, integration) in before where table[endpoint] == nil {
                integration.metrics.setUp(false)
                if !new.sources.contains(where: { $0.name == integration.integration.source }) {
                    statusBoard.remove(integration.integration.source)
                }
            }
            for integration in table.values {
                integration.metrics.setUp(true)
                statusBoard.set(integration.integration.source, .up)
            }
        }
        config = new
        sha256 = loaded.sha256
        loadedAt = Date()
        metrics.loaded(sha256: sha256, at: loadedAt)
        metrics.reloads.increment()
        logger.notice("configuration reloaded", metadata: [
            "trigger": "\(trigger)", "file": "\(file.displayName)", "sha256": "\(sha256)",
            "effects": "\(change.effects.joined(separator: "; "))",
        ])
        return .applied(change)
    }

    private func refuse(_ problems: [ConfigProblem], file: ConfigFile, trigger: String) -> Outcome {
        metrics.failures.increment()
        for problem in problems {
            logger.error("configuration reload refused: \(problem.message)", metadata: [
                "trigger": "\(trigger)", "file": "\(file.displayName)", "yaml_path": "\(problem.path)",
            ])
        }
        logger.warning("configuration reload refused; the running configuration stays", metadata: [
            "problem_count": "\(problems.count)", "sha256": "\(sha256)",
        ])
        return .refused(problems)
    }
}

/// The configuration's metrics: reloads, refused reloads, and which configuration is active since when.
///
/// - `crm_ingest_config_reloads_total`, `crm_ingest_config_reload_failures_total`
/// - `crm_ingest_config_info{sha256}`: 1 for the active configuration's SHA-256 (one series at a time).
/// - `crm_ingest_config_load_timestamp_seconds`: when the active configuration was loaded (Unix time).
final class ConfigMetrics: Sendable {
    let reloads: Counter
    let failures: Counter
    private let loadTime: Gauge
    private let registry: PrometheusCollectorRegistry
    private let info: ReloadableValue<Gauge?>

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        reloads = registry.makeCounter(descriptor: Self.name("crm_ingest_config_reloads_total", "Configuration reloads that took effect."))
        failures = registry.makeCounter(descriptor: Self.name(
            "crm_ingest_config_reload_failures_total", "Configuration reloads refused (invalid, or a change that needs a restart)."
        ))
        loadTime = registry.makeGauge(descriptor: Self.name(
            "crm_ingest_config_load_timestamp_seconds", "When the active configuration was loaded, in Unix seconds."
        ))
        info = ReloadableValue(nil)
    }

    func loaded(sha256: String, at date: Date) {
        if let previous = info.current { registry.unregisterGauge(previous) }
        let gauge = registry.makeGauge(
            descriptor: Self.name("crm_ingest_config_info", "The active configuration: its file's SHA-256 as a label."),
            labels: [("sha256", sha256)]
        )
        gauge.set(to: 1.0)
        info.replace(with: gauge)
        loadTime.set(date.timeIntervalSince1970)
    }

    private static func name(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
