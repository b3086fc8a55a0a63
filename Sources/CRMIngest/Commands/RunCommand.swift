import ArgumentParser
import CRMConfig
import Foundation
import Logging

/// `crm-ingest run`: the daemon. SIGTERM or SIGINT drain in-flight work and exit 0.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Runs the daemon.")

    @OptionGroup var options: ConfigOption

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Log format: text, or json (one object a line). Default: json when standard output is not a terminal.")
    var logFormat: String?

    @Option(help: "CPU scheduling of the daemon's threads: batch (Linux's SCHED_BATCH: a waking thread does not preempt another process, so a broker on the same machine keeps its CPU; the default), normal (SCHED_OTHER), or inherit (the policy it was started with).")
    var cpuScheduling: CPUScheduling = .batch

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            printError("--log-level: expected one of trace, debug, info, notice, warning, error, critical, got \"\(logLevel)\"")
            throw ExitCode(1)
        }
        let json: Bool
        switch logFormat {
        case nil: json = isatty(STDOUT_FILENO) == 0
        case "json": json = true
        case "text": json = false
        case let other?:
            printError("--log-format: expected text or json, got \"\(other)\"")
            throw ExitCode(1)
        }
        LoggingSystem.bootstrap { label in
            if json { return JSONLogHandler(label: label, level: level) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let (file, loaded): (ConfigFile, ConfigFile.Loaded)
        do { (file, loaded) = try ConfigLoading.loadFile(options.config) } catch { throw ExitCode(1) }
        let logger = Logger(label: "crm-ingest")
        // Before the daemon starts its threads, so they inherit the policy.
        do {
            try cpuScheduling.apply()
        } catch {
            logger.warning("could not set the CPU scheduling; the daemon runs with its threads' current policy", metadata: [
                "cpu_scheduling": "\(cpuScheduling.rawValue)", "reason": "\(error)",
            ])
        }
        do {
            try await Daemon(file: file, loaded: loaded, logger: logger).run()
        } catch {
            logger.critical("crm-ingest failed: \(error)")
            throw ExitCode(1)
        }
    }
}

extension CPUScheduling: ExpressibleByArgument {}
