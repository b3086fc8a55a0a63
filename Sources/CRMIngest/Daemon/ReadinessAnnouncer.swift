import Logging
import ServiceLifecycle

/// Says the daemon is up once the service group runs, that is after it trapped SIGTERM and SIGINT, so a
/// supervisor that signals right after the message gets a graceful stop, not a killed process.
struct ReadinessAnnouncer: Service {
    let logger: Logger
    let metadata: Logger.Metadata

    func run() async throws {
        logger.info("crm-ingest running", metadata: metadata)
        try? await gracefulShutdown()
    }
}
