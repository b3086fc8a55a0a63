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
        try launch(["run", "--config", config, "--log-format", "json"], log: "daemon.log", in: folder)
    }

    /// Starts `crm-ingest` with `arguments`; output (stdout and stderr) to the file `log` in `folder`.
    static func launch(_ arguments: [String], log name: String, in folder: TemporaryFolder) throws -> (Process, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: crmIngestBinary)
        process.arguments = arguments
        let log = folder.path(name)
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

/// `crm-ingest ingest` into PostgreSQL: a batch larger than the store takes in one transaction goes in parts.
@Suite("ingest into PostgreSQL")
struct PostgresIngestTests {
    /// A server whose lock table holds about 420 locks (10 per transaction × its 42 backends): one transaction of
    /// 3,000 contacts takes 3,000 advisory locks and fails with 53200, "out of shared memory", on every try (the
    /// run ended with it before the store cut batches at `maxEventsPerTransaction`). In parts of 250 every line goes in.
    @Test func aBatchLargerThanTheLockTableGoesInInParts() async throws {
        let server = try PostgresTestServer.startPrivate(options: "-c max_connections=20 -c max_locks_per_transaction=10")
        defer { server.stopPrivate() }
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let config = try folder.write("crm-ingest.yaml", """
            store:
              postgres: { url: "\(server.url)", tls: disable, pool: 4 }
            mappings:
              USER_REGISTRATION:
                - create_contact: { list: 1 }
            """)
        let lines = (0..<3_000).map { #"{"type":"USER_REGISTRATION","contactId":"c\#($0)"}"# }.joined(separator: "\n")
        let file = try folder.write("events.jsonl", lines + "\n")
        let (process, log) = try PostgresStartupTests.launch(["ingest", "--config", config, "--batch-size", "3000", file], log: "ingest.log", in: folder)
        let exited = try await PostgresStartupTests.waitForExit(process, timeout: .seconds(240))
        let output = try String(contentsOfFile: log, encoding: .utf8)
        #expect(exited, "still running after 240 s; log: \(output.suffix(3_000))")
        #expect(process.terminationStatus == 0, "\(output.suffix(3_000))")
        #expect(output.contains("applied=3000 duplicate=0"), "\(output.suffix(3_000))")
        #expect(try server.psql("SELECT count(*) FROM contacts") == "3000")
        #expect(try server.psql("SELECT count(*) FROM ledger") == "3000")
    }
}
