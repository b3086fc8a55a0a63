import CRMStorePostgres
import Foundation
import Logging

/// The PostgreSQL server the integration tests use: the one `scripts/test-with-servers.sh` started
/// (`CRM_TEST_POSTGRES_DIR`), or one started here on first use (`scripts/postgres-node.sh`) and stopped at exit.
public struct PostgresTestServer: Sendable {
    public let directory: String
    public let host = "127.0.0.1"
    public let port: Int
    public let username: String
    public let password: String
    public let database: String
    public let url: String

    private static let lock = NSLock()
    nonisolated(unsafe) private static var instance: Result<PostgresTestServer, any Error>?
    nonisolated(unsafe) private static var ownedDirectory: String?

    static let script = MotoTestServer.repositoryRoot.appendingPathComponent("scripts/postgres-node.sh").path

    public static func shared() throws -> PostgresTestServer {
        try lock.withLock {
            if instance == nil { instance = Result { try PostgresTestServer() } }
            return try instance!.get()
        }
    }

    struct ServerError: Error, CustomStringConvertible {
        var description: String
    }

    private init() throws {
        if let dir = ProcessInfo.processInfo.environment["CRM_TEST_POSTGRES_DIR"] {
            try self.init(directory: dir)
        } else {
            let dir = try Self.start(options: nil)
            Self.ownedDirectory = dir
            atexit {
                guard let dir = PostgresTestServer.ownedDirectory else { return }
                _ = system("bash '\(PostgresTestServer.script)' stop '\(dir)' >/dev/null 2>&1; rm -rf '\(dir)' '\(dir).start.log'")
            }
            try self.init(directory: dir)
        }
    }

    /// A server of the test's own with extra settings (`-c max_locks_per_transaction=10`), for a test of a server
    /// configured unlike the shared one. Stop it with `stopPrivate()` (a `defer` right after starting it).
    public static func startPrivate(options: String) throws -> PostgresTestServer {
        try PostgresTestServer(directory: start(options: options))
    }

    /// Stops a server `startPrivate` started and removes its folder.
    public func stopPrivate() {
        _ = system("bash '\(Self.script)' stop '\(directory)' >/dev/null 2>&1; rm -rf '\(directory)' '\(directory).start.log'")
    }

    /// Starts a server in a new temporary folder (`scripts/postgres-node.sh`); the folder.
    private static func start(options: String?) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("crm-postgres-\(UUID().uuidString.prefix(8))").path
        let settings = options.map { "POSTGRES_SERVER_OPTIONS='\($0)' " } ?? ""
        let status = system("\(settings)bash '\(Self.script)' start '\(directory)' </dev/null >'\(directory).start.log' 2>&1")
        guard status == 0 else {
            throw ServerError(description: "postgres start failed: " + ((try? String(contentsOfFile: directory + ".start.log", encoding: .utf8)) ?? ""))
        }
        return directory
    }

    private init(directory: String) throws {
        self.directory = directory
        var env: [String: String] = [:]
        for line in try String(contentsOfFile: directory + "/env", encoding: .utf8).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            env[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        guard let port = env["PG_PORT"].flatMap(Int.init), let user = env["PG_USER"], let password = env["PG_PASSWORD"],
              let database = env["PG_DATABASE"], let url = env["PG_URL"] else {
            throw ServerError(description: "incomplete env in \(directory)")
        }
        self.port = port
        username = user
        self.password = password
        self.database = database
        self.url = url
    }

    /// Runs SQL through the server's `psql` as the test role; the rows as text (`|` between columns, one per line).
    /// For set-up and for assertions on end state from tests that have no PostgreSQL client of their own.
    @discardableResult
    public func psql(_ sql: String, database: String? = nil) throws -> String {
        let process = Process()
        let bin = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql"))?.sorted().last.map { "/usr/lib/postgresql/\($0)/bin/psql" }
        process.executableURL = URL(fileURLWithPath: bin.flatMap { FileManager.default.isExecutableFile(atPath: $0) ? $0 : nil } ?? "/usr/bin/psql")
        process.arguments = ["-h", host, "-p", String(port), "-U", username, "-d", database ?? self.database, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]
        process.environment = ["PGPASSWORD": password, "PATH": "/usr/bin:/bin"]
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let problem = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ServerError(description: "psql failed: \(problem)") }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A new, empty database owned by the test role; its name.
    public func createDatabase() throws -> String {
        let name = "crm_\(UUID().uuidString.prefix(8).lowercased())"
        try psql("CREATE DATABASE \(name)")
        return name
    }

    /// The URL of `database` on this server, for a daemon's `store.postgres.url`.
    public func url(database: String) -> String {
        "postgres://\(username):\(password)@\(host):\(port)/\(database)"
    }

    /// A store on `database` (as a daemon opens it), its pool running until `body` returns.
    public func withStore<T: Sendable>(database: String, _ body: @Sendable (PostgresCRMStore) async throws -> T) async throws -> T {
        let store = PostgresCRMStore(
            host: host, port: port, username: username, password: password, database: database, tls: .disable, maximumConnections: 8,
            logger: Logger(label: "test.postgres")
        )
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            try await store.prepare(waitingAtMost: .seconds(20))
            return try await body(store)
        }
    }
}
