import CRMConfig
import CRMCore
import CRMSourceRabbitMQ
import CRMSourceSQS
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

    public func run() async throws {
        let store = try StoreFactory.open(config.store)
        let pruner = LedgerPruner(
            store: store, retentionSeconds: config.idempotency.ledgerRetentionSeconds, interval: .seconds(3600),
            now: now, logger: logger
        )
        let processor = config.processor
        let sources: [ServiceGroupConfiguration.ServiceConfiguration] = config.sources.map { source in
            switch source.transport {
            case let .rabbitmq(rabbitmq):
                let service = RabbitMQSource(
                    name: source.name, config: rabbitmq, processor: { processor }, store: store, logger: logger, now: now
                )
                return .init(service: service, serviceName: "source \(source.name)")
            case let .sqs(sqs):
                let service = SQSSource(name: source.name, config: sqs, processor: { processor }, store: store, logger: logger, now: now)
                return .init(service: service, serviceName: "source \(source.name)")
            }
        }
        // Stopped in reverse order: sources (last) stop taking work before the store's services end.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [
                .init(service: pruner, serviceName: "ledger-pruner"),
            ] + sources + [
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
