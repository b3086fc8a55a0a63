import CRMConfig
import Foundation

/// Loads the configuration a command names, or the built-in one; prints every problem and exits 1 on failure.
enum ConfigLoading {
    static func load(_ path: String?) throws -> DaemonConfig {
        let loader = ConfigLoader()
        do {
            if let path { return try loader.load(path: path) }
            return try loader.load(yaml: DefaultConfiguration.yaml)
        } catch {
            let name = path ?? "built-in configuration"
            for problem in error.problems { printError("\(name): \(problem)") }
            throw ExitCodeError.configuration
        }
    }
}

enum ExitCodeError: Error {
    case configuration
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
