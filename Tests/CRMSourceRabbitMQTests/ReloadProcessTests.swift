import AMQPClient
import CRMCore
import CRMStoreSQLite
import CRMSourceSupport
import CRMTestSupport
import CurlHTTP
import Foundation
import Testing

/// Runtime configuration changes on the real `crm-ingest run` binary against the real broker: the file rewritten
/// through a rename while events flow, SIGHUP with an invalid file, and what systemd hears about it all.
extension RabbitMQSourceTests {
    /// The daemon's log, one decoded JSON object a line (the binary logs JSON when its output is not a terminal).
    static func logLines(_ daemon: DaemonProcess) -> [[String: Any]] {
        daemon.log.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    static func lines(_ daemon: DaemonProcess, message: String, source: String? = nil) -> [[String: Any]] {
        logLines(daemon).filter { line in
            (line["message"] as? String)?.contains(message) == true && (source == nil || line["source"] as? String == source)
        }
    }

    /// The HTTP port from the "http server listening" line.
    static func httpPort(_ daemon: DaemonProcess) -> Int? {
        lines(daemon, message: "http server listening").first.flatMap { $0["address"] as? String }
            .flatMap { $0.split(separator: ":").last }.flatMap { Int($0) }
    }

    /// The HTTP port once the daemon logged it, waiting up to 30 s: READY=1 and the drained queues say nothing of
    /// the HTTP server, which may start listening a moment later.
    func listeningHTTPPort(_ daemon: DaemonProcess) async throws -> Int? {
        _ = try await waitFor(.seconds(30)) { Self.httpPort(daemon) != nil }
        return Self.httpPort(daemon)
    }

    static func metrics(port: Int) throws -> String {
        let response = try CurlHTTPClient().send(HTTPRequest(method: "GET", url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(10))
        return String(decoding: response.body, as: UTF8.self)
    }

    /// A metric's value, summed over the series whose labels contain every `labels` pair.
    static func metric(_ text: String, _ name: String, _ labels: [String] = []) -> Double {
        text.split(separator: "\n").filter { line in
            line.hasPrefix(name) && (line.dropFirst(name.count).first == "{" || line.dropFirst(name.count).first == " ")
                && labels.allSatisfy { line.contains($0) }
        }.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }

    /// Writes the file through a temporary file and a rename, as editors and configuration managers do.
    static func replace(_ path: String, with text: String) throws {
        let temporary = path + ".tmp-\(UUID().uuidString.prefix(4))"
        try text.write(toFile: temporary, atomically: false, encoding: .utf8)
        guard rename(temporary, path) == 0 else { throw POSIXError(.EIO) }
    }

    static func reloadConfig(url: String, queues: (String, String), folder: URL, prefetchA: Int = 100, attribute: String = "seq",
                             watch: Bool = true, storeFile: String = "crm.sqlite", lanes: String = "4") -> String {
        """
        store:
          sqlite: { path: "\(folder.appendingPathComponent(storeFile).path)" }
        http: { listen: "127.0.0.1:0" }
        reload: { watch_file: \(watch), watch_interval: 100ms }
        sources:
          - name: a
            rabbitmq: { url: "\(url)", queue: \(queues.0), prefetch: \(prefetchA), lanes: \(lanes), heartbeat: 5s }
          - name: b
            rabbitmq: { url: "\(url)", queue: \(queues.1), prefetch: 100, lanes: 2, heartbeat: 5s }
        attributes:
          - { name: firstName, headers: [firstName] }
          - { name: \(attribute), headers: [seq] }
        mappings:
          USER_REGISTRATION: [ { create_contact: { list: 1 } } ]
          DEPOSIT_APPROVED: [ { create_purchase_row: { list: 1 } } ]
          USER_UPDATE: [ { update_contact: { list: 1 } } ]
          USER_CONSENT_UPDATE: [ { update_contact: { list: 1 } } ]
        """
    }

    static func registrations(_ count: Int, queue: String, prefix: String) -> [AMQPPublisher.Message] {
        (0..<count).map { index in
            var properties = AMQPProperties(contentType: "application/json", deliveryMode: 2)
            properties.messageId = "\(prefix)-\(index)"
            let body = #"{"type":"USER_REGISTRATION","contactId":"\#(prefix)-\#(index)","properties":{"seq":\#(index)}}"#
            return AMQPPublisher.Message(body: Array(body.utf8), routingKey: queue, properties: properties)
        }
    }

    /// A mapping change and a source change, each written through a rename while 15,000 events flow in and drain:
    /// every event
    /// applied exactly once, nothing redelivered, events after the switch use the new mapping, and only the changed
    /// source restarts.
    @Test func reloadsSwitchTheMappingInPlaceAndRestartOnlyTheChangedSourceWhileEventsFlow() async throws {
        let node = try RabbitMQTestNode.shared()
        let tag = UUID().uuidString.prefix(6)
        let queues = ("crm.test.reload-a.\(tag)", "crm.test.reload-b.\(tag)")
        try node.freshQueue(queues.0)
        try node.freshQueue(queues.1)
        let workload = Workload(contacts: 500, perContact: 30)
        let publisher = try node.publisher()
        defer { publisher.close() }
        // Published at about 3,000 a second for 5 s, from a thread of its own, so that both switches fall while
        // events still flow however fast the machine drains them (a queue published whole beforehand could drain
        // before the second switch).
        async let published: Void = onOwnThread {
            let paced = try node.publisher()
            defer { paced.close() }
            let messages = workload.messages(queue: queues.0, withIds: true, idPrefix: "reload")
            for start in stride(from: 0, to: messages.count, by: 300) {
                try paced.publishAll(messages[start..<min(start + 300, messages.count)])
                usleep(100_000)
            }
        }
        let folder = try Self.daemonFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let configPath = folder.appendingPathComponent("crm-ingest.yaml").path
        try Self.reloadConfig(url: node.url, queues: queues, folder: folder).write(toFile: configPath, atomically: true, encoding: .utf8)

        let daemon = try DaemonProcess(config: configPath, folder: folder)
        let (url, total) = (node.url, workload.total)
        // Both switches from a thread of its own, which a loaded machine cannot keep waiting for a pool thread while
        // the daemon drains: 1. the mapping (the header seq now fills the attribute "stage") once 1,000 events are
        // in, 2. source a's prefetch (a restarts alone) once the first reload is done. Each notes how many events
        // were applied when its reload took effect.
        let appliedAtReloads = try await onOwnThread { () -> [Int] in
            var applied: [Int] = []
            guard Self.pollBlocking(until: { ((try? Self.appliedSoFar(daemon)) ?? 0) >= 1_000 }) else { return applied }
            try Self.replace(configPath, with: Self.reloadConfig(url: url, queues: queues, folder: folder, attribute: "stage"))
            guard Self.pollBlocking(timeout: .seconds(30), until: { Self.lines(daemon, message: "configuration reloaded").count == 1 }) else { return applied }
            applied.append((try? Self.appliedSoFar(daemon)) ?? total)
            try Self.replace(configPath, with: Self.reloadConfig(url: url, queues: queues, folder: folder, prefetchA: 80, attribute: "stage"))
            guard Self.pollBlocking(timeout: .seconds(30), until: { Self.lines(daemon, message: "configuration reloaded").count == 2 }) else { return applied }
            applied.append((try? Self.appliedSoFar(daemon)) ?? total)
            return applied
        }
        #expect(appliedAtReloads.count == 2, "the reloads did not both happen")
        #expect(appliedAtReloads.allSatisfy { $0 < total }, "the queue drained before a reload: \(appliedAtReloads) of \(total)")
        try await published
        // Published after the first switch.
        try publisher.publishAll(Self.registrations(200, queue: queues.1, prefix: "late"))

        #expect(try await waitFor { try node.counts(queues.0) == (0, 0) && node.counts(queues.1) == (0, 0) })
        #expect(try await waitFor(.seconds(30)) { try await ledgerCount(folder) == workload.total + 200 })
        let port = try #require(try await listeningHTTPPort(daemon))
        let metrics = try Self.metrics(port: port)
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit(timeout: .seconds(15)))
        #expect(daemon.process.terminationStatus == 0, "\(daemon.log.suffix(3_000))")

        // Nothing redelivered, nothing applied twice.
        #expect(Self.metric(metrics, "crm_ingest_events_total", ["outcome=\"duplicate\""]) == 0)
        #expect(Self.metric(metrics, "crm_ingest_events_total", ["outcome=\"applied\""])
            + Self.metric(metrics, "crm_ingest_events_total", ["outcome=\"incomplete\""]) == Double(workload.total + 200))
        // The store's writer metrics reach /metrics too: every applied event was in a timed transaction.
        #expect(Self.metric(metrics, "crm_ingest_store_transaction_events_total") == Double(workload.total + 200))
        #expect(Self.metric(metrics, "crm_ingest_store_transaction_seconds_count") > 0)
        #expect(Self.metric(metrics, "crm_ingest_config_reloads_total") == 2)
        #expect(Self.metric(metrics, "crm_ingest_config_reload_failures_total") == 0)
        let store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        defer { try? store.close() }
        #expect(try await store.count("ledger") == workload.total + 200)
        #expect(try await store.count("purchases") == workload.contacts * workload.depositSteps.count)
        // Published after the first switch: the new mapping, and only it.
        for index in [0, 99, 199] {
            guard case let .found(contact) = try await store.contact("late-\(index)", list: 1) else {
                Issue.record("late-\(index) missing")
                continue
            }
            #expect(contact.attribute("stage") == .number("\(index)"))
            #expect(contact.attribute("seq") == nil)
        }
        // Source b was never restarted; a was, once.
        #expect(Self.lines(daemon, message: "source started", source: "b").count == 1)
        #expect(Self.lines(daemon, message: "source started", source: "a").count == 2)
        #expect(Self.lines(daemon, message: "source stopped", source: "a").count == 2) // the reload and SIGTERM
        let effects = Self.lines(daemon, message: "configuration reloaded").compactMap { $0["effects"] as? String }
        #expect(effects.first?.hasPrefix("mapping: switched in place") == true)
        #expect(effects.last?.hasPrefix("source a: restarted alone") == true)
    }

    /// SIGHUP with an invalid file, then with a store change: both refused whole with their YAML paths, the running
    /// configuration keeps consuming; systemd hears READY, RELOADING/READY around each reload, watchdog pings and
    /// STOPPING, in that order.
    @Test func refusedReloadsKeepTheRunningConfigurationAndSystemdHearsEveryStep() async throws {
        let node = try RabbitMQTestNode.shared()
        let tag = UUID().uuidString.prefix(6)
        let queues = ("crm.test.refused-a.\(tag)", "crm.test.refused-b.\(tag)")
        try node.freshQueue(queues.0)
        try node.freshQueue(queues.1)
        let folder = try Self.daemonFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let configPath = folder.appendingPathComponent("crm-ingest.yaml").path
        try Self.reloadConfig(url: node.url, queues: queues, folder: folder, watch: false).write(toFile: configPath, atomically: true, encoding: .utf8)
        let socket = try NotifySocket()
        let daemon = try DaemonProcess(config: configPath, folder: folder, environment: [
            "NOTIFY_SOCKET": socket.address, "WATCHDOG_USEC": "1000000",
        ])
        defer { if daemon.process.isRunning { daemon.signal(SIGKILL) } }
        var heard: [String] = []
        func next(_ prefix: String) -> Bool {
            while let message = socket.receive(timeout: .seconds(20)) {
                heard.append(message)
                if message.hasPrefix(prefix) { return true }
            }
            return false
        }
        #expect(next("READY=1"), "heard \(heard)")
        let port = try #require(try await listeningHTTPPort(daemon))
        let activeHash = Self.lines(daemon, message: "crm-ingest running").first?["config_sha256"] as? String
        #expect(activeHash != nil)

        // An invalid file: two problems, each logged with its path.
        try Self.replace(configPath, with: Self.reloadConfig(url: node.url, queues: queues, folder: folder, watch: false, lanes: "4x")
            .replacingOccurrences(of: "create_purchase_row: { list: 1 }", with: "create_purchase_row: { list: one }"))
        daemon.signal(SIGHUP)
        #expect(next("RELOADING=1"), "heard \(heard)")
        #expect(next("READY=1"), "heard \(heard)")
        let problems = Self.logLines(daemon).filter { ($0["message"] as? String)?.hasPrefix("configuration reload refused:") == true }
        #expect(problems.compactMap { $0["yaml_path"] as? String }.sorted() == [
            "mappings.DEPOSIT_APPROVED[0].create_purchase_row.list", "sources[0].rabbitmq.lanes",
        ])
        #expect(problems.allSatisfy { $0["level"] as? String == "error" })
        // A store change: refused, it needs a restart.
        try Self.replace(configPath, with: Self.reloadConfig(url: node.url, queues: queues, folder: folder, watch: false, storeFile: "other.sqlite"))
        daemon.signal(SIGHUP)
        #expect(next("RELOADING=1"), "heard \(heard)")
        #expect(next("READY=1"), "heard \(heard)")
        #expect(Self.logLines(daemon).contains { $0["yaml_path"] as? String == "store" && ($0["message"] as? String)?.contains("needs a restart") == true })

        let metrics = try Self.metrics(port: port)
        #expect(Self.metric(metrics, "crm_ingest_config_reload_failures_total") == 2)
        #expect(Self.metric(metrics, "crm_ingest_config_info", ["sha256=\"\(activeHash ?? "-")\""]) == 1)
        #expect(Self.metric(metrics, "crm_ingest_config_reloads_total") == 0)
        #expect(Self.metric(metrics, "crm_ingest_config_load_timestamp_seconds") > 1_700_000_000)

        // The running configuration still consumes, into the first store.
        let publisher = try node.publisher()
        try publisher.publishAll(Self.registrations(100, queue: queues.0, prefix: "kept"))
        publisher.close()
        #expect(try await waitFor(.seconds(30)) { try await ledgerCount(folder) == 100 })
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("other.sqlite").path))

        #expect(next("WATCHDOG=1"), "heard \(heard)")
        daemon.signal(SIGTERM)
        #expect(next("STOPPING=1"), "heard \(heard)")
        #expect(try await daemon.waitForExit(timeout: .seconds(15)))
        #expect(daemon.process.terminationStatus == 0)
        let order = heard.compactMap { message -> String? in
            let first = message.split(separator: "\n").first.map(String.init) ?? ""
            return first == "WATCHDOG=1" || first.hasPrefix("STATUS=") ? nil : first.split(separator: "=").first.map(String.init)
        }
        #expect(order == ["READY", "RELOADING", "READY", "RELOADING", "READY", "STOPPING"])
    }
}
