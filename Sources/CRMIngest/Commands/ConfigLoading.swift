import CRMConfig
import Foundation

/// Loads the configuration a command names, or the built-in one; prints every problem and exits 1 on failure.
enum ConfigLoading {
    static func load(_ path: String?) throws -> DaemonConfig {
        try loadFile(path).loaded.config
    }

    /// The file with what was read from it (the daemon keeps the file to reload it).
    static func loadFile(_ path: String?) throws -> (file: ConfigFile, loaded: ConfigFile.Loaded) {
        let file = ConfigFile(path: path)
        do {
            return (file, try file.load())
        } catch {
            for problem in error.problems { printError("\(file.displayName): \(problem)") }
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
