import Foundation

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
            directory = dir
        } else {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("crm-postgres-\(UUID().uuidString.prefix(8))").path
            let status = system("bash '\(Self.script)' start '\(directory)' </dev/null >'\(directory).start.log' 2>&1")
            guard status == 0 else {
                throw ServerError(description: "postgres start failed: " + ((try? String(contentsOfFile: directory + ".start.log", encoding: .utf8)) ?? ""))
            }
            Self.ownedDirectory = directory
            atexit {
                guard let dir = PostgresTestServer.ownedDirectory else { return }
                _ = system("bash '\(PostgresTestServer.script)' stop '\(dir)' >/dev/null 2>&1; rm -rf '\(dir)' '\(dir).start.log'")
            }
        }
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
}
