import CRMTestSupport
import Foundation

/// The `crm-ingest` binary built beside this test bundle.
let crmIngestBinary: String = {
    let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("crm-ingest").path
    if FileManager.default.isExecutableFile(atPath: besideTests) { return besideTests }
    return RabbitMQTestNode.repositoryRoot.appendingPathComponent(".build/debug/crm-ingest").path
}()

/// The real daemon as a child process, logging to a file.
final class DaemonProcess: @unchecked Sendable {
    // Set in init; the process is only signalled and waited for.
    let process = Process()
    let logPath: String

    init(config: String, folder: URL, environment: [String: String] = [:], arguments: [String] = []) throws {
        logPath = folder.appendingPathComponent("daemon-\(UUID().uuidString.prefix(4)).log").path
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: crmIngestBinary)
        process.arguments = ["run", "--config", config] + arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        process.standardOutput = FileHandle(forWritingAtPath: logPath)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// A test that failed half-way never leaves its daemon running.
    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits up to `timeout` for the process to end; true if it did.
    func waitForExit(timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        return !process.isRunning
    }

    func kill9() async throws {
        signal(SIGKILL)
        _ = try await waitForExit(timeout: .seconds(10))
    }
}

/// A daemon configuration for one queue and a SQLite file in `folder` (or the `store` section given), written to
/// `folder/<file>`. `sourceExtra` lines go into the source's `rabbitmq` section.
func daemonConfig(
    url: String, queue: String, folder: URL, extra: String = "", store: String? = nil, sourceExtra: [String] = [],
    file: String = "crm-ingest.yaml"
) throws -> String {
    let path = folder.appendingPathComponent(file).path
    let yaml = """
        store:
          \(store ?? #"sqlite: { path: "\#(folder.appendingPathComponent("crm.sqlite").path)" }"#)
        sources:
          - name: app-events
            rabbitmq:
              url: "\(url)"
              queue: \(queue)
              prefetch: 500
              lanes: 4
              heartbeat: 5s
        \(sourceExtra.map { "      " + $0 }.joined(separator: "\n"))
        \(extra)
        \(Workload.mappingYAML)
        """
    try yaml.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}
