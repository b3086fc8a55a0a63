import CRMTestSupport
import Foundation
import Testing

/// `crm-ingest run` with the PostgreSQL store at start-up: a server that refuses stops the daemon at once with the
/// server's reason (and never the password); a server that does not answer yet is waited for, and SIGTERM during
/// that wait ends the daemon cleanly.
@Suite("PostgreSQL start-up of the daemon")
struct PostgresStartupTests {
    /// Starts `crm-ingest run --config FILE`; output (stdout and stderr) to a file in `folder`.
    static func start(_ config: String, in folder: TemporaryFolder) throws -> (Process, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: crmIngestBinary)
        process.arguments = ["run", "--config", config, "--log-format", "json"]
        let log = folder.path("daemon.log")
        FileManager.default.createFile(atPath: log, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: log)
        process.standardError = FileHandle(forWritingAtPath: log)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return (process, log)
    }

    static func waitForExit(_ process: Process, timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        guard process.isRunning else { return true }
        // Ended here, so that the test can read its status (that of a running process crashes the test run).
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return false
    }

    @Test func aWrongPasswordStopsTheDaemonAtOnceWithTheServersReason() async throws {
        let server = try PostgresTestServer.shared()
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let secret = "definitely-not-\(UUID().uuidString.prefix(8))"
        let config = try folder.write("crm-ingest.yaml", """
            store:
              postgres: { url: "postgres://\(server.username):\(secret)@\(server.host):\(server.port)/\(server.database)", tls: disable, startup_timeout: 120s }
            """)
        let (process, log) = try Self.start(config, in: folder)
        let started = ContinuousClock.now
        let exited = try await Self.waitForExit(process, timeout: .seconds(90))
        let output = try String(contentsOfFile: log, encoding: .utf8)
        #expect(exited, "still running after 90 s; log: \(output.suffix(3_000))")
        // At once, not after the 120 s start-up budget.
        #expect(ContinuousClock.now - started < .seconds(60))
        #expect(process.terminationStatus != 0)
        #expect(output.contains("28P01"), "\(output)")
        #expect(!output.contains(secret))
    }

    @Test func sigtermWhileWaitingForTheServerExitsZero() async throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        // Nothing listens on port 1: the connection is refused, which waiting may cure.
        let config = try folder.write("crm-ingest.yaml", """
            store:
              postgres: { url: "postgres://crm:pw@127.0.0.1:1/crm", tls: disable, startup_timeout: 300s }
            """)
        let (process, log) = try Self.start(config, in: folder)
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline,
              !((try? String(contentsOfFile: log, encoding: .utf8))?.contains("PostgreSQL not reachable yet") ?? false) {
            try await Task.sleep(for: .milliseconds(100))
        }
        let output = try String(contentsOfFile: log, encoding: .utf8)
        #expect(output.contains("PostgreSQL not reachable yet"), "\(output)")
        #expect(!output.contains(":pw@"))
        kill(process.processIdentifier, SIGTERM)
        #expect(try await Self.waitForExit(process, timeout: .seconds(20)))
        #expect(process.terminationReason == .exit)
        let finalOutput = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "\(finalOutput)")
    }
}
