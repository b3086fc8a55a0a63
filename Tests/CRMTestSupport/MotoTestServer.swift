import AWSSigV4
import CRMCore
import SQSClient
import Foundation

/// A real local SQS for the tests: moto_server with authentication enforced, the one `make test` started
/// (CRM_TEST_MOTO_DIR) or one this process starts on first use with scripts/moto-server.sh.
public final class MotoTestServer: @unchecked Sendable {
    // Immutable after init.
    public let directory: String
    public let url: String
    public let credentials: AWSCredentials
    public let region: String
    /// The moto_server process (to freeze it with SIGSTOP in a fault test).
    public let pid: Int32
    public static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let script = repositoryRoot.appendingPathComponent("scripts/moto-server.sh").path

    private static let lock = NSLock()
    nonisolated(unsafe) private static var instance: Result<MotoTestServer, any Error>?
    nonisolated(unsafe) private static var ownedDirectory: String?

    public static func shared() throws -> MotoTestServer {
        try lock.withLock {
            if instance == nil { instance = Result { try MotoTestServer() } }
            return try instance!.get()
        }
    }

    struct ServerError: Error, CustomStringConvertible {
        var description: String
    }

    private convenience init() throws {
        if let dir = ProcessInfo.processInfo.environment["CRM_TEST_MOTO_DIR"] {
            try self.init(directory: dir)
        } else {
            let directory = try Self.start()
            Self.ownedDirectory = directory
            atexit {
                guard let dir = MotoTestServer.ownedDirectory else { return }
                _ = system("bash '\(MotoTestServer.script)' stop '\(dir)' >/dev/null 2>&1; rm -rf '\(dir)' '\(dir).start.log'")
            }
            try self.init(directory: directory)
        }
    }

    /// Starts a moto_server with scripts/moto-server.sh; its state directory.
    private static func start() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("crm-moto-\(UUID().uuidString.prefix(8))").path
        // system(3), output to a file: the server runs on in the background.
        let status = system("bash '\(Self.script)' start '\(directory)' </dev/null >'\(directory).start.log' 2>&1")
        guard status == 0 else {
            throw ServerError(description: "moto start failed: " + ((try? String(contentsOfFile: directory + ".start.log", encoding: .utf8)) ?? ""))
        }
        return directory
    }

    /// A moto_server of the caller's own, for a test that freezes or stops it (the shared one serves other tests
    /// at the same time). The caller ends it with `stop()`.
    public static func startOwn() throws -> MotoTestServer {
        try MotoTestServer(directory: try start())
    }

    /// Stops a server from `startOwn()` and removes its state directory.
    public func stop() {
        _ = system("bash '\(Self.script)' stop '\(directory)' >/dev/null 2>&1; rm -rf '\(directory)' '\(directory).start.log'")
    }

    private init(directory: String) throws {
        self.directory = directory
        var env: [String: String] = [:]
        for line in try String(contentsOfFile: directory + "/env", encoding: .utf8).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            env[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        guard let url = env["MOTO_URL"], let key = env["AWS_ACCESS_KEY_ID"], let secret = env["AWS_SECRET_ACCESS_KEY"],
              let pid = env["MOTO_PID"].flatMap(Int32.init) else {
            throw ServerError(description: "incomplete env in \(directory)")
        }
        self.url = url
        self.pid = pid
        credentials = AWSCredentials(accessKeyId: key, secretAccessKey: secret)
        region = env["AWS_REGION"] ?? "us-east-1"
    }
}

extension MotoTestServer {
    /// Creates a queue (with its attributes, e.g. a RedrivePolicy) and returns its URL.
    public func createQueue(_ name: String, attributes: [String: String] = [:]) throws -> String {
        let admin = SQSClient(queueURL: "", region: region, credentials: credentials, endpoint: url)
        var body: [(key: String, value: JSONValue)] = [("QueueName", .string(name))]
        if !attributes.isEmpty {
            body.append(("Attributes", .object(attributes.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) })))
        }
        guard case let .string(queueURL)? = try admin.call("CreateQueue", .object(body), timeout: .seconds(10))["QueueUrl"] else {
            throw SQSError(code: "NoQueueUrl", message: "CreateQueue answered without a QueueUrl", httpStatus: 200)
        }
        return queueURL
    }
}
