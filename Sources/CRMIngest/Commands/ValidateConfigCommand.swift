import ArgumentParser
import CRMConfig

/// `crm-ingest validate-config [PATH] [--against RUNNING]`: exit 0 and a summary, or exit 1 and one line per
/// problem. With `--against`, also what a reload from RUNNING to PATH would do, or why it would be refused.
struct ValidateConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate-config",
        abstract: "Checks a configuration file and reports every problem with its YAML path.",
        discussion: """
            Reads the file exactly as the daemon does at start-up and on a reload (SIGHUP or a change on disk). \
            With --against, compares it with the configuration the daemon runs and reports what a reload would \
            switch in place, which sources it would restart, and what it would refuse (a change of the store or of \
            the HTTP server's address needs a restart).
            """
    )

    @Argument(help: "Configuration file. Without it, the built-in defaults.")
    var path: String?

    @Option(help: "The configuration the daemon runs now (a file, or \"builtin\"): report what a reload would do.")
    var against: String?

    func run() throws {
        let file = ConfigFile(path: path)
        let loaded: ConfigFile.Loaded
        do {
            loaded = try file.load()
        } catch {
            for problem in error.problems { print(problem.description) }
            throw ExitCode(1)
        }
        print("ok: \(file.displayName): \(loaded.config.summary) sha256=\(loaded.sha256)")
        guard let against else { return }
        let running = ConfigFile(path: against == "builtin" ? nil : against)
        let current: ConfigFile.Loaded
        do {
            current = try running.load()
        } catch {
            print("cannot compare: \(running.displayName) does not load:")
            for problem in error.problems { print(problem.description) }
            throw ExitCode(1)
        }
        guard current.sha256 != loaded.sha256 else {
            print("reload: the text is the running one's; nothing would change")
            return
        }
        let change = ConfigChange(from: current.config, to: loaded.config)
        guard change.refusals.isEmpty else {
            print("reload would be refused (the running configuration stays):")
            for problem in change.refusals { print(problem.description) }
            throw ExitCode(1)
        }
        for effect in change.effects { print("reload: \(effect)") }
    }
}
