import ArgumentParser
import CRMConfig

/// `crm-ingest validate-config [PATH]`: exit 0 and a summary, or exit 1 and one line per problem.
struct ValidateConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate-config",
        abstract: "Checks a configuration file and reports every problem with its YAML path."
    )

    @Argument(help: "Configuration file. Without it, the built-in defaults.")
    var path: String?

    func run() throws {
        let loader = ConfigLoader()
        do throws(ConfigError) {
            let config = if let path { try loader.load(path: path) } else { try loader.load(yaml: DefaultConfiguration.yaml) }
            print("ok: \(path ?? "built-in configuration"): \(config.summary)")
        } catch {
            for problem in error.problems { print(problem.description) }
            throw ExitCode(1)
        }
    }
}
