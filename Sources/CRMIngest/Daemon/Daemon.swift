import CRMConfig
import CRMCore
import CRMSourceHTTP
import CRMSourceRabbitMQ
import CRMSourceSQS
import CRMSourceSupport
import Logging
import ServiceLifecycle
import UnixSignals

/// The long-running daemon: every part is a `Service` in one `ServiceGroup`. Services stop in reverse order, so
/// sources (listed last) stop taking work before the store's services end.
public struct Daemon: Sendable {
    public let config: DaemonConfig
    public let logger: Logger
    public let now: @Sendable () -> Timestamp

    public init(config: DaemonConfig, logger: Logger, now: @escaping @Sendable () -> Timestamp = Timestamp.now) {
        self.config = config
        self.logger = logger
        self.now = now
    }

    /// Runs until SIGTERM/SIGINT. `onHTTPListening` gets the HTTP server's bound port.
    public func run(onHTTPListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        // Metrics made from here on go to Prometheus (served at /metrics).
        _ = PrometheusMetrics.registry
        let store = try StoreFactory.open(config.store, logger: logger)
        let statusBoard = SourceStatusBoard()
        let pruner = LedgerPruner(
            store: store, retentionSeconds: config.idempotency.ledgerRetentionSeconds, interval: .seconds(3600),
            now: now, logger: logger
        )
        let processor = config.processor
        let sources: [ServiceGroupConfiguration.ServiceConfiguration] = config.sources.flatMap { source -> [ServiceGroupConfiguration.ServiceConfiguration] in
            switch source.transport {
            case let .rabbitmq(rabbitmq):
                let processor = config.processor(for: source)
                let service = RabbitMQSource(
                    name: source.name, config: rabbitmq, processor: { processor }, store: store, logger: logger, now: now,
                    statusBoard: statusBoard
                )
                return [.init(service: service, serviceName: "source \(source.name)")]
            case let .sqs(sqs):
                let processor = config.processor(for: source)
                let service = SQSSource(
                    name: source.name, config: sqs, processor: { processor }, store: store, logger: logger, now: now,
                    statusBoard: statusBoard
                )
                return [.init(service: service, serviceName: "source \(source.name)")]
            case .http:
                return [] // Served by the HTTP server below.
            }
        }
        var http: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let server = config.http {
            let resolved = try await HTTPIntegrations.endpoints(config, store: store)
            for item in resolved {
                statusBoard.set(item.source, .starting)
                logger.info("http integration", metadata: [
                    "source": "\(item.source)", "url": "\(HTTPIntegrations.url(server, endpoint: item.endpoint))",
                    "auth": "\(item.config.auth == .none ? "none" : "jwt")",
                ])
            }
            let integrations = try await HTTPIntegrations.make(resolved, server: server)
            let probes = OperationalProbes(readinessProblems: {
                var problems: [String] = []
                do { try await store.ping() } catch { problems.append("store: \(error)") }
                for (source, state) in statusBoard.snapshot {
                    switch state {
                    case .up: break
                    case .starting: problems.append("source \(source): not connected yet")
                    case let .down(reason): problems.append("source \(source): \(reason)")
                    }
                }
                return problems
            }, metricsText: PrometheusMetrics.text)
            let server = IncomingHTTPServer(
                config: server, integrations: integrations, processor: { processor }, store: store, probes: probes,
                logger: logger, now: now, onListening: { port in
                    for item in resolved { statusBoard.set(item.source, .up) }
                    onHTTPListening(port)
                }
            )
            http = [.init(service: server, serviceName: "http")]
        }
        // Stopped in reverse order: sources (last) stop taking work before the store's services end.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [
                .init(service: pruner, serviceName: "ledger-pruner"),
            ] + sources + http + [
                .init(service: ReadinessAnnouncer(logger: logger, metadata: [
                    "store": "\(config.store.kind)", "sources": "\(config.sources.count)",
                    "mapped_event_types": "\(config.mappings.count)",
                ]), serviceName: "readiness"),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger
        ))
        try await group.run()
        logger.info("crm-ingest stopped")
    }
}
