import AMQPClient
import CRMCore
import CRMStoreSQLite
import Foundation
import Testing

/// `crm-ingest dlq list` and `dlq replay` against the real broker, next to the real daemon: dead letters listed
/// without being consumed, then replayed once the configuration was fixed, and applied.
extension RabbitMQSourceTests {
    /// Runs `crm-ingest ARGS` to its end; its standard output and exit status.
    static func runCommand(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: crmIngestBinary)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: errors, as: UTF8.self))
    }

    static func deadLetterConfig(url: String, queue: String, deadLetterQueue: String, folder: URL, fixed: Bool) -> String {
        """
        store:
          sqlite: { path: "\(folder.appendingPathComponent("crm.sqlite").path)" }
        http: { listen: "127.0.0.1:0" }
        reload: { watch_interval: 100ms }
        sources:
          - name: shop
            format:
              custom:
                type_from: $.kind
                types:
                  signup: { type: USER_REGISTRATION, contact_id: $.id }
        \(fixed ? "          purchase: { type: USER_UPDATE, contact_id: $.id, properties: { seq: $.seq } }" : "")
            rabbitmq: { url: "\(url)", queue: \(queue), prefetch: 100, heartbeat: 5s, dead_letter: { queue: \(deadLetterQueue) } }
        attributes:
          - { name: seq, headers: [seq] }
        mappings:
          USER_REGISTRATION: [ { create_contact: { list: 1 } } ]
          USER_UPDATE: [ { update_contact: { list: 1 } } ]
        """
    }

    static func jsonLines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
    }

    @Test func deadLettersAreListedWithoutBeingConsumedAndReplayedOnceTheConfigurationIsFixed() async throws {
        let node = try RabbitMQTestNode.shared()
        let tag = UUID().uuidString.prefix(6)
        let queue = "crm.test.dlq.\(tag)", deadLetterQueue = "crm.test.dlq.\(tag).dead"
        try node.freshQueue(queue)
        try node.freshQueue(deadLetterQueue)
        let folder = try Self.daemonFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let configPath = folder.appendingPathComponent("crm-ingest.yaml").path
        try Self.deadLetterConfig(url: node.url, queue: queue, deadLetterQueue: deadLetterQueue, folder: folder, fixed: false)
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        let daemon = try DaemonProcess(config: configPath, folder: folder)
        defer { if daemon.process.isRunning { daemon.signal(SIGKILL) } }

        // 20 sign-ups, 10 purchases the converter does not know yet, 5 messages that are not JSON.
        var messages: [AMQPPublisher.Message] = []
        func add(_ id: String, _ body: String) {
            var properties = AMQPProperties(contentType: "application/json", deliveryMode: 2)
            properties.messageId = id
            messages.append(.init(body: Array(body.utf8), routingKey: queue, properties: properties))
        }
        for index in 0..<20 { add("s-\(index)", #"{"kind":"signup","id":"d-\#(index)"}"#) }
        for index in 0..<10 { add("p-\(index)", #"{"kind":"purchase","id":"d-\#(index)","seq":\#(index)}"#) }
        for index in 0..<5 { add("j-\(index)", "not json \(index) {") }
        let publisher = try node.publisher()
        try publisher.publishAll(messages)
        publisher.close()
        #expect(try await waitFor(.seconds(60)) { try node.counts(deadLetterQueue) == (15, 0) && node.counts(queue) == (0, 0) })
        #expect(try await ledgerCount(folder) == 20)

        // Listing: each with its reason, delivery count and time; all of them still there afterwards.
        let list = try Self.runCommand(["dlq", "list", "--config", configPath, "--source", "shop", "--json"])
        #expect(list.status == 0, "\(list.errors)")
        let listed = Self.jsonLines(list.output)
        #expect(listed.count == 15)
        #expect(listed.allSatisfy { ($0["reason"] as? String)?.isEmpty == false && $0["deliveries"] as? Int == 1 && $0["deadLetteredAt"] is String })
        #expect(listed.allSatisfy { ($0["now"] as? String)?.hasPrefix("refused: ") == true })
        #expect(Set(listed.compactMap { $0["messageId"] as? String }) == Set(messages.compactMap(\.properties.messageId).filter { !$0.hasPrefix("s-") }))
        // The listing's deliveries go back to the queue when its connection closes: all 15 are there again soon.
        #expect(try await waitFor(.seconds(10)) { try node.counts(deadLetterQueue) == (15, 0) }, "listing consumed messages")
        let table = try Self.runCommand(["dlq", "list", "--config", configPath, "--source", "shop", "--limit", "3"])
        #expect(table.output.hasPrefix("3 dead letters of source shop in RabbitMQ queue \(deadLetterQueue) (--limit reached)"))
        #expect(table.output.split(separator: "\n").count == 5) // the summary, the header, three rows

        // The converter learns purchases; the daemon reloads; the listing now says they would apply.
        try Self.replace(configPath, with: Self.deadLetterConfig(url: node.url, queue: queue, deadLetterQueue: deadLetterQueue, folder: folder, fixed: true))
        #expect(try await waitFor(.seconds(30)) { Self.lines(daemon, message: "configuration reloaded").count == 1 })
        let relisted = Self.jsonLines(try Self.runCommand(["dlq", "list", "--config", configPath, "--source", "shop", "--json"]).output)
        #expect(relisted.filter { $0["now"] as? String == "applies" && $0["type"] as? String == "USER_UPDATE" }.count == 10)

        // Replaying the purchases only: 10 back to the source queue and applied, the 5 broken ones left.
        let replay = try Self.runCommand(["dlq", "replay", "--config", configPath, "--source", "shop", "--where", "USER_UPDATE"])
        #expect(replay.status == 0, "\(replay.errors)")
        #expect(replay.output.contains("replayed 10 messages of source shop from RabbitMQ queue \(deadLetterQueue); left 5 of other types"))
        #expect(try await waitFor(.seconds(30)) { try await ledgerCount(folder) == 30 })
        #expect(try await waitFor(.seconds(10)) { try node.counts(deadLetterQueue) == (5, 0) && node.counts(queue) == (0, 0) })
        let unknown = try Self.runCommand(["dlq", "list", "--config", configPath, "--source", "nope"])
        #expect(unknown.status != 0)
        #expect(unknown.errors.contains("no source \"nope\""))

        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit(timeout: .seconds(15)))
        let store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        defer { try? store.close() }
        guard case let .found(contact) = try await store.contact("d-7", list: 1) else {
            Issue.record("d-7 missing")
            return
        }
        #expect(contact.attribute("seq") == .number("7"))
    }
}
