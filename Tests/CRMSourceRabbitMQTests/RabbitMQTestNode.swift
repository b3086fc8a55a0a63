import AMQPClient
import Foundation

/// A real RabbitMQ node for the tests: the one `make test` started (CRM_TEST_RABBITMQ_DIR), or one this process
/// starts on first use with scripts/rabbitmq-node.sh and stops when it exits.
final class RabbitMQTestNode: @unchecked Sendable {
    // Immutable after init.
    let directory: String
    let url: String
    let endpoint: AMQPEndpoint
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let script = repositoryRoot.appendingPathComponent("scripts/rabbitmq-node.sh").path

    private static let lock = NSLock()
    nonisolated(unsafe) private static var instance: Result<RabbitMQTestNode, any Error>?

    /// The node, started on first use; every test of the process shares it (each uses its own queues).
    static func shared() throws -> RabbitMQTestNode {
        try lock.withLock {
            if instance == nil { instance = Result { try RabbitMQTestNode() } }
            return try instance!.get()
        }
    }

    private init() throws {
        if let dir = ProcessInfo.processInfo.environment["CRM_TEST_RABBITMQ_DIR"] {
            directory = dir
        } else {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("crm-rmq-\(UUID().uuidString.prefix(8))").path
            let result = try Self.run([Self.script, "start", directory])
            guard result.status == 0 else { throw NodeError("start failed: \(result.output)") }
            Self.ownedDirectory = directory
            atexit { RabbitMQTestNode.stopOwned() }
        }
        let env = try String(contentsOfFile: directory + "/env", encoding: .utf8)
        guard let line = env.split(separator: "\n").first(where: { $0.hasPrefix("AMQP_URL=") }) else { throw NodeError("no AMQP_URL in env") }
        url = String(line.dropFirst("AMQP_URL=".count))
        endpoint = try AMQPEndpoint.parse(url).get()
    }

    nonisolated(unsafe) private static var ownedDirectory: String?

    private static func stopOwned() {
        guard let dir = ownedDirectory else { return }
        // At exit Foundation's Process can no longer be waited for: plain system(3) instead.
        _ = system("bash '\(script)' stop '\(dir)' >/dev/null 2>&1; rm -rf '\(dir)'")
    }

    struct NodeError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Runs bash with arguments, output to a file. system(3) rather than Foundation's Process: the script starts a
    /// broker in the background, and Process was seen missing the script's own exit in that case.
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("crm-rmq-out-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let quoted = arguments.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let status = system("bash \(quoted) </dev/null >'\(outputPath)' 2>&1")
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        return ((status >> 8) & 0xFF, text)
    }

    func ctl(_ arguments: String...) throws -> String {
        let result = try Self.run([Self.script, "ctl", directory] + arguments)
        guard result.status == 0 else { throw NodeError("rabbitmqctl \(arguments) failed: \(result.output)") }
        return result.output
    }

    /// Ready and unacknowledged messages of a queue, as the broker counts them.
    func counts(_ queue: String) throws -> (ready: Int, unacked: Int) {
        let output = try ctl("-q", "--no-table-headers", "list_queues", "name", "messages_ready", "messages_unacknowledged")
        for line in output.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            if fields.count == 3, fields[0] == queue { return (Int(fields[1]) ?? -1, Int(fields[2]) ?? -1) }
        }
        throw NodeError("no queue \(queue) in \(output)")
    }

    /// The broker's Erlang VM process.
    func serverPid() throws -> Int32 {
        let env = try String(contentsOfFile: directory + "/env", encoding: .utf8)
        guard let line = env.split(separator: "\n").first(where: { $0.hasPrefix("SERVER_PID=") }),
              let pid = Int32(line.dropFirst("SERVER_PID=".count)) else { throw NodeError("no SERVER_PID in env") }
        return pid
    }

    func pause() throws {
        let result = try Self.run([Self.script, "pause", directory])
        guard result.status == 0 else { throw NodeError("pause failed: \(result.output)") }
    }

    func resume() throws {
        let result = try Self.run([Self.script, "resume", directory])
        guard result.status == 0 else { throw NodeError("resume failed: \(result.output)") }
    }

    /// A connection for the test's own publishing and inspection: a separate client from the daemon's.
    func publisher() throws -> AMQPPublisher {
        try AMQPPublisher(endpoint: endpoint, connectionName: "crm-ingest tests")
    }

    /// Declares a fresh durable queue (deleting any left-over of that name) with the given arguments.
    func freshQueue(_ name: String, arguments: AMQPTable = AMQPTable()) throws {
        let connection = try AMQPConnection(endpoint: endpoint, connectionName: "crm-ingest tests admin")
        defer { connection.close() }
        try connection.openChannel(1)
        try? connection.deleteQueue(name, channel: 1)
        if (try? connection.declareQueue(name, channel: 1, durable: true, arguments: arguments)) == nil {
            try connection.openChannel(2)
            try connection.deleteQueue(name, channel: 2)
            try connection.declareQueue(name, channel: 2, durable: true, arguments: arguments)
        }
    }

    /// Reads every message of a queue (acking them), waiting up to `timeout` for `expected` of them.
    func drain(_ queue: String, expected: Int, timeout: Duration = .seconds(30)) throws -> [AMQPDelivery] {
        let connection = try AMQPConnection(endpoint: endpoint, connectionName: "crm-ingest tests reader")
        defer { connection.close() }
        try connection.openChannel(1)
        try connection.setPrefetch(500, channel: 1)
        _ = try connection.consume(queue: queue, channel: 1)
        var deliveries: [AMQPDelivery] = []
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let wait: Duration = deliveries.count >= expected ? .milliseconds(300) : .milliseconds(200)
            guard let event = try connection.nextEvent(timeout: wait) else {
                if deliveries.count >= expected { break }
                continue
            }
            if case let .delivery(delivery) = event {
                deliveries.append(delivery)
                try connection.ack(delivery.deliveryTag, multiple: false, channel: 1)
            }
        }
        return deliveries
    }
}
