import AMQPClient
import CRMStoreSQLite
import CRMSourceSupport
import Foundation
import Testing

/// The real `crm-ingest run` binary against the real broker: killed, restarted, stopped. An extension of the
/// source's suite, so it is serialized with the tests that pause and freeze the shared broker.
extension RabbitMQSourceTests {
    static func daemonFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("crm-daemon-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    func ledgerCount(_ folder: URL) async throws -> Int {
        let path = folder.appendingPathComponent("crm.sqlite").path
        guard FileManager.default.fileExists(atPath: path) else { return 0 }
        let store = try SQLiteCRMStore(path: path)
        defer { try? store.close() }
        return try await store.count("ledger")
    }

    /// Events the daemon committed so far (applied, or incomplete: some action had nothing to act on), from its
    /// /metrics (cheap enough to poll every few milliseconds, unlike opening the store).
    static func appliedSoFar(_ daemon: DaemonProcess) throws -> Int {
        guard let port = httpPort(daemon) else { return 0 }
        let text = try metrics(port: port)
        return Int(metric(text, "crm_ingest_events_total", ["outcome=\"applied\""]) + metric(text, "crm_ingest_events_total", ["outcome=\"incomplete\""]))
    }

    /// Polls `condition` every 2 ms on the calling thread, for at most `timeout`. For `onOwnThread` only.
    static func pollBlocking(timeout: Duration = .seconds(120), until condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(2_000)
        }
        return condition()
    }

    /// Signals the daemon as soon as it applied `count` events, watching from a thread of its own: on a loaded
    /// machine the test's own tasks can wait longer for a pool thread than the daemon takes to drain the queue.
    static func signal(_ daemon: DaemonProcess, _ signal: Int32, whenApplied count: Int) async -> Bool {
        (try? await onOwnThread { () -> Bool in
            guard pollBlocking(until: { ((try? appliedSoFar(daemon)) ?? 0) >= count }) else { return false }
            daemon.signal(signal)
            return true
        }) ?? false
    }

    func waitFor(_ timeout: Duration = .seconds(120), every interval: Duration = .milliseconds(100), _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return true }
            try await Task.sleep(for: interval)
        }
        return try await condition()
    }

    @Test func sigkillHalfwayThenRestartLosesNothingAndAppliesNothingTwice() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = "crm.test.sigkill.\(UUID().uuidString.prefix(6))"
        try node.freshQueue(queue)
        // 20,000 events, progress polled every 2 ms through /metrics from a thread: the daemon drains 20,000+
        // events/s here, so a smaller queue could be empty before the signal.
        let workload = Workload(contacts: 1_000, perContact: 20)
        let publisher = try node.publisher()
        try publisher.publishAll(workload.messages(queue: queue, withIds: true))
        publisher.close()
        let folder = try Self.daemonFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = try daemonConfig(url: node.url, queue: queue, folder: folder, extra: #"http: { listen: "127.0.0.1:0" }"#)

        let first = try DaemonProcess(config: config, folder: folder)
        #expect(await Self.signal(first, SIGKILL, whenApplied: 2_000))
        _ = try await first.waitForExit(timeout: .seconds(10))
        let afterKill = try await ledgerCount(folder)
        #expect(afterKill < workload.total, "the daemon finished before it was killed")

        let second = try DaemonProcess(config: config, folder: folder)
        #expect(try await waitFor { try node.counts(queue) == (0, 0) })
        second.signal(SIGTERM)
        #expect(try await second.waitForExit(timeout: .seconds(15)))
        #expect(second.process.terminationStatus == 0)

        let store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        defer { try? store.close() }
        #expect(try await store.count("ledger") == workload.total)
        // Deposits carry no transaction id: one applied twice would be a second row.
        #expect(try await store.count("purchases") == workload.contacts * workload.depositSteps.count)
        #expect(try await workload.problems(in: store) == [])
    }

    @Test func sigtermMidStreamExitsZeroAndLeavesNothingHalfDone() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = "crm.test.sigterm.\(UUID().uuidString.prefix(6))"
        try node.freshQueue(queue)
        // 20,000 events, progress polled every 2 ms through /metrics from a thread: the daemon drains 20,000+
        // events/s here, so a smaller queue could be empty before the signal.
        let workload = Workload(contacts: 1_000, perContact: 20)
        let publisher = try node.publisher()
        try publisher.publishAll(workload.messages(queue: queue, withIds: true))
        publisher.close()
        let folder = try Self.daemonFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = try daemonConfig(url: node.url, queue: queue, folder: folder, extra: #"http: { listen: "127.0.0.1:0" }"#)

        let first = try DaemonProcess(config: config, folder: folder)
        #expect(await Self.signal(first, SIGTERM, whenApplied: 2_000))
        let signalled = ContinuousClock.now
        #expect(try await first.waitForExit(timeout: .seconds(10)))
        #expect(ContinuousClock.now - signalled < .seconds(10))
        #expect(first.process.terminationReason == .exit)
        #expect(first.process.terminationStatus == 0)
        // Every committed event was acked, every other one is back in the queue: nothing half-way.
        let applied = try await ledgerCount(folder)
        let counts = try node.counts(queue)
        #expect(applied < workload.total, "the daemon finished before SIGTERM")
        #expect(counts.unacked == 0)
        #expect(counts.ready + applied == workload.total)
        #expect(first.log.contains("every delivery settled"))

        let second = try DaemonProcess(config: config, folder: folder)
        #expect(try await waitFor { try node.counts(queue) == (0, 0) })
        second.signal(SIGTERM)
        #expect(try await second.waitForExit(timeout: .seconds(15)))
        let store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        defer { try? store.close() }
        #expect(try await store.count("ledger") == workload.total)
        #expect(try await workload.problems(in: store) == [])
    }
}
