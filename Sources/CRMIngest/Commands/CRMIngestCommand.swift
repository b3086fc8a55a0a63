import ArgumentParser
import CRMSourceSupport

/// `crm-ingest`: the command line.
public struct CRMIngestCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "crm-ingest",
        abstract: "Consumes events and applies them as CRM actions, driven by a mapping in a config file.",
        subcommands: [RunCommand.self, IngestCommand.self, ContactCommand.self, IntegrationsCommand.self, ValidateConfigCommand.self, DLQCommand.self, HealthCommand.self],
        defaultSubcommand: nil
    )

    public init() {}
}

/// The `--config` option shared by the commands that need a configuration.
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Configuration file (YAML). Without it, the built-in defaults (Config/crm-ingest.yaml).")
    var config: String?
}

extension CRMIngestCommand {
    /// Parses the process arguments and runs the chosen command, asynchronously when it is async.
    public static func runMain(_ arguments: [String]? = nil) async {
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                // A synchronous command may block (librabbitmq, libcurl): on a thread of its own, not the pool's.
                nonisolated(unsafe) var blocking = command
                try await onOwnThread { try blocking.run() }
            }
        } catch {
            exit(withError: error)
        }
    }
}
