import ArgumentParser
import CRMConfig
import Logging

/// `crm-ingest run`: the daemon. SIGTERM or SIGINT drain in-flight work and exit 0.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Runs the daemon.")

    @OptionGroup var options: ConfigOption

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            printError("--log-level: expected one of trace, debug, info, notice, warning, error, critical, got \"\(logLevel)\"")
            throw ExitCode(1)
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let config: DaemonConfig
        do { config = try ConfigLoading.load(options.config) } catch { throw ExitCode(1) }
        let logger = Logger(label: "crm-ingest")
        do {
            try await Daemon(config: config, logger: logger).run()
        } catch {
            logger.critical("crm-ingest failed: \(error)")
            throw ExitCode(1)
        }
    }
}
