import CRMConfig
import Crypto
import Foundation

/// Where the daemon's configuration comes from: a file, or the built-in defaults. Read the same way at start-up,
/// on a reload and by `validate-config`, so the three agree.
public struct ConfigFile: Sendable {
    /// nil: the built-in configuration (`Config/crm-ingest.yaml`, embedded).
    public var path: String?
    public var loader: ConfigLoader

    public init(path: String?, loader: ConfigLoader = ConfigLoader()) {
        self.path = path
        self.loader = loader
    }

    /// A configuration as read, with the SHA-256 of its text (what `/metrics` reports as the active one).
    public struct Loaded: Sendable {
        public var config: DaemonConfig
        public var sha256: String
        /// The file's status just before it was read: the file watch's starting point (nil: built-in, or unreadable).
        var fileStatus: FileStatus?
    }

    /// The name problems are reported under.
    public var displayName: String { path ?? "built-in configuration" }

    /// Reads and validates the configuration; every problem is reported with its YAML path.
    public func load() throws(ConfigError) -> Loaded {
        let text: String
        let baseDirectory: String
        let status = path.flatMap(FileStatus.init(path:))
        if let path {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigError(problems: [ConfigProblem(path: "", message: "cannot read \(path): \(Self.readFailure(path))")])
            }
            guard let decoded = String(data: data, encoding: .utf8) else {
                throw ConfigError(problems: [ConfigProblem(path: "", message: "\(path) is not UTF-8 text")])
            }
            text = decoded
            baseDirectory = (path as NSString).deletingLastPathComponent
        } else {
            text = DefaultConfiguration.yaml
            baseDirectory = FileManager.default.currentDirectoryPath
        }
        let config = try loader.load(yaml: text, baseDirectory: baseDirectory)
        return Loaded(config: config, sha256: Self.sha256(text), fileStatus: status)
    }

    static func sha256(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    private static func readFailure(_ path: String) -> String {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) { return "no such file" }
        return isDirectory.boolValue ? "it is a directory" : "permission denied"
    }
}
