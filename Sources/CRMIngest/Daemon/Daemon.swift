import CRMConfig
import CRMCore
import CRMSourceHTTP
import CRMSourceRabbitMQ
import CRMSourceSQS
import CRMSourceSupport
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// The long-running daemon: every part is a `Service` in one `ServiceGroup`. Services stop in reverse order, so
/// the systemd notifier says STOPPING first, reloads end, and sources stop taking work before the store's services end.
public struct Daemon: Sendable {
    public let file: ConfigFile
    public let loaded: ConfigFile.Loaded
    public let logger: Logger
    public let now: @Sendable () -> Timestamp
    /// systemd's notify socket, when the environment names one.
    public let notifier: SystemdNotifier?

    public var config: DaemonConfig { loaded.config }

    public init(
        file: ConfigFile, loaded: ConfigFile.Loaded, logger: Logger, now: @escaping @Sendable () -> Timestamp = Timestamp.now,
        notifier: SystemdNotifier? = SystemdNotifier(environment: ProcessInfo.processInfo.environment)
    ) {
        self.file = file
        self.loaded = loaded
        self.logger = logger
        self.now = now
        self.notifier = notifier
    }

    /// Runs until SIGTERM/SIGINT. `onHTTPListening` gets the HTTP server's bound port.
    public func run(onHTTPListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        // SIGHUP's default action ends the process: trapped first, before anything slow (store, migrations).
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        // Prometheus first, so that the store's metrics go to /metrics too.
        _ = PrometheusMetrics.registry
        let opened = try StoreFactory.open(config.store, logger: logger)
        guard let pool = opened.service else {
            try await runServices(store: opened.store, hangups: hangups, shutdownSignals: [.sigterm, .sigint], onHTTPListening: onHTTPListening)
            return
        }
        // A store with a connection pool (PostgreSQL): the pool is a service of the outer group, started first and
        // stopped last; the daemon's own services run in a group nested in the second service, once the store is
        // ready, and stop before the pool does.
        let daemon = StartAfter(logger: logger) {
            try await opened.prepare()
        } then: {
            try await runServices(store: opened.store, hangups: hangups, shutdownSignals: [], onHTTPListening: onHTTPListening)
        }
        let outer = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: pool, serviceName: "store-pool"), .init(service: daemon, serviceName: "daemon")],
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger
        ))
        try await outer.run()
    }

    /// Every service but the store's pool, in one group; returns once they all stopped.
    private func runServices(
        store baseStore: any CRMStore, hangups: UnixSignalsSequence, shutdownSignals: [UnixSignal],
        onHTTPListening: @escaping @Sendable (Int) -> Void
    ) async throws {
        // Metrics made from here on go to Prometheus (served at /metrics).
        let registry = PrometheusMetrics.registry
        let config = self.config
        let statusBoard = SourceStatusBoard()
        let (logger, now) = (self.logger, self.now)
        // Every source and the HTTP server use the store through this: an anonymization also erases the contact's
        // records from the dead-letter files the daemon keeps.
        let deadLetterPaths = ReloadableValue(config.deadLetterFiles.map(\.path))
        // Writes report to `writeHealth`: readiness fails while commits do (disk full, read-only database).
        let writeHealth = StoreWriteHealth()
        let store = DeadLetterErasingStore(
            base: WriteHealthReportingStore(base: baseStore, health: writeHealth), deadLetterFiles: { deadLetterPaths.current }, logger: logger
        )
        let supervisor = SourceSupervisor(
            sources: config.sources.map { ($0, config.processor(for: $0)) }, logger: logger
        ) { source, processor in
            switch source.transport {
            case let .rabbitmq(rabbitmq):
                return RabbitMQSource(
                    name: source.name, config: rabbitmq, processor: { processor.current }, store: store, logger: logger, now: now,
                    statusBoard: statusBoard
                )
            case let .sqs(sqs):
                return SQSSource(
                    name: source.name, config: sqs, processor: { processor.current }, store: store, logger: logger, now: now,
                    statusBoard: statusBoard
                )
            case .http:
                return nil // Served by the HTTP server; the supervisor is given broker sources only.
            }
        }
        var integrations: [HTTPIntegration] = []
        var resolved: [HTTPIntegrations.Resolved] = []
        if let server = config.http {
            resolved = try await HTTPIntegrations.endpoints(config, store: store)
            for item in resolved {
                statusBoard.set(item.source, .starting)
                // The endpoint id is the only secret of an `auth: none` integration: `crm-ingest integrations` prints it.
                logger.info("http integration", metadata: [
                    "source": "\(item.source)", "url": "\(HTTPIntegrations.url(server, endpoint: LogRedaction.endpoint(item.endpoint)))",
                    "auth": "\(item.config.auth == .none ? "none" : "jwt")",
                ])
            }
            integrations = try await HTTPIntegrations.make(resolved, server: server, limits: config.limits)
        }
        let live = LiveConfiguration(
            loaded: loaded, supervisor: supervisor, httpIntegrations: integrations, store: store, statusBoard: statusBoard,
            registry: registry, deadLetterPaths: deadLetterPaths, logger: logger
        )
        let pruner = LedgerPruner(
            store: store, retentionSeconds: { live.ledgerRetentionSeconds.current },
            deadLetterFiles: { await live.config.deadLetterFiles }, interval: .seconds(3600), now: now, logger: logger
        )
        let readinessProblems: @Sendable () async -> [String] = {
            var problems: [String] = []
            do { try await store.ping() } catch { problems.append("store: \(error)") }
            if let failure = writeHealth.failure { problems.append("store: writes failing: \(failure)") }
            for (source, state) in statusBoard.snapshot {
                switch state {
                case .up: break
                case .starting: problems.append("source \(source): not connected yet")
                case let .down(reason): problems.append("source \(source): \(reason)")
                }
            }
            return problems
        }
        var http: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let server = config.http {
            let probes = OperationalProbes(readinessProblems: readinessProblems, metricsText: PrometheusMetrics.text)
            let httpRouting = live.httpRouting
            let server = IncomingHTTPServer(
                config: server, routing: { httpRouting.current }, store: store,
                probes: probes, logger: logger, now: now, onListening: { port in
                    for integration in httpRouting.current.integrations.values { statusBoard.set(integration.integration.source, .up) }
                    onHTTPListening(port)
                }
            )
            http = [.init(service: server, serviceName: "http")]
        }
        let announcedReady = ReloadableValue(false)
        let reloader = ConfigReloader(
            file: file, live: live,
            watchInterval: config.reload.watchFile ? .milliseconds(config.reload.watchIntervalMilliseconds) : nil,
            notifier: notifier, announcedReady: announcedReady, hangups: hangups, initialStatus: loaded.fileStatus, logger: logger
        )
        var systemd: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let notifier {
            systemd = [.init(service: SystemdNotifyService(
                notifier: notifier, announcedReady: announcedReady, readinessProblems: readinessProblems, healthProblems: {
                    do { try await store.ping(); return [] } catch { return ["store: \(error)"] }
                }, logger: logger
            ), serviceName: "systemd-notify")]
        }
        var trimmer: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if StartupPageTrimmer.isEnabled(environment: ProcessInfo.processInfo.environment) {
            let started: @Sendable () -> Bool = {
                statusBoard.snapshot.allSatisfy { $0.state == .up }
            }
            trimmer = [.init(service: StartupPageTrimmer(isStarted: started, logger: logger), serviceName: "startup-page-trimmer")]
        }
        // Stopped in reverse order: the notifier says STOPPING, reloads end, then sources (the supervisor and the HTTP
        // server) stop taking work before the store's services end.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [
                .init(service: pruner, serviceName: "ledger-pruner"),
                .init(service: supervisor, serviceName: "sources"),
            ] + http + [
                .init(service: reloader, serviceName: "config-reloader"),
                .init(service: ReadinessAnnouncer(logger: logger, metadata: [
                    "store": "\(config.store.kind)", "sources": "\(config.sources.count)",
                    "mapped_event_types": "\(config.mappings.count)", "config_sha256": "\(loaded.sha256)",
                ]), serviceName: "readiness"),
            ] + systemd + trimmer,
            gracefulShutdownSignals: shutdownSignals,
            cancellationSignals: [],
            logger: logger
        ))
        // Nested in an outer group (see `run`), this group shuts down when that one does.
        try await withGracefulShutdownHandler {
            try await group.run()
        } onGracefulShutdown: {
            Task { await group.triggerGracefulShutdown() }
        }
        logger.info("crm-ingest stopped")
    }
}

/// A service that readies something first (`prepare`), then runs `body`. A graceful shutdown during `prepare`
/// ends it without running `body` and without an error; during `body`, `body` sees it.
struct StartAfter: Service {
    let logger: Logger
    let prepare: @Sendable () async throws -> Void
    let body: @Sendable () async throws -> Void

    init(logger: Logger, _ prepare: @escaping @Sendable () async throws -> Void, then body: @escaping @Sendable () async throws -> Void) {
        self.logger = logger
        self.prepare = prepare
        self.body = body
    }

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await prepare() }
        } catch where Task.isShuttingDownGracefully {
            logger.notice("stopped while the store was starting")
            return
        }
        try await body()
    }
}
