import AMQPClient
import CRMSourceSupport
import CRMStoreSQLite
import Foundation
import Testing

/// Faults injected into a running `crm-ingest run` against the real broker (issue 10): the process killed again and
/// again, the broker closing its connections. An extension of the source's suite, so it is serialized with the tests
/// that pause the shared broker.
extension RabbitMQSourceTests {
    /// 20 rounds: start the daemon on a queue of 20,000 events, SIGKILL it once it applied a growing share of them
    /// (every round kills it mid-stream, at a different point), start it again. After the rounds one daemon drains
    /// the rest: every event applied exactly once, in per-contact order.
    @Test func twentySigkillsAtDifferentMomentsLoseNothingAndApplyNothingTwice() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = "crm.test.kill20.\(UUID().uuidString.prefix(6))"
        try node.freshQueue(queue)
        let workload = Workload(contacts: 1_000, perContact: 20)
        let publisher = try node.publisher()
        try publisher.publishAll(workload.messages(queue: queue, withIds: true))
        publisher.close()
        let folder = try Self.daemonFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = try daemonConfig(url: node.url, queue: queue, folder: folder, extra: #"http: { listen: "127.0.0.1:0" }"#)

        var killedMidStream = 0
        for round in 1...20 {
            let daemon = try DaemonProcess(config: config, folder: folder)
            // Each round applies a few hundred events before the kill, a different number each time.
            let share = 200 + (round * 37) % 300
            let signalled = await Self.signal(daemon, SIGKILL, whenApplied: share)
            if !signalled { daemon.signal(SIGKILL) }
            _ = try await daemon.waitForExit(timeout: .seconds(10))
            if signalled { killedMidStream += 1 }
        }
        #expect(killedMidStream == 20, "rounds that were killed after applying events: \(killedMidStream)")
        let applied = try await ledgerCount(folder)
        #expect(applied < workload.total, "the rounds drained the queue: no round was killed mid-stream")

        let last = try DaemonProcess(config: config, folder: folder)
        #expect(try await waitFor { try node.counts(queue) == (0, 0) })
        last.signal(SIGTERM)
        #expect(try await last.waitForExit(timeout: .seconds(15)))
        let store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        defer { try? store.close() }
        #expect(try await store.count("ledger") == workload.total)
        // Deposits carry no transaction id: one applied twice would be a second row.
        #expect(try await store.count("purchases") == workload.contacts * workload.depositSteps.count)
        #expect(try await workload.problems(in: store) == [])
    }

    /// The broker closes every client connection (`rabbitmqctl close_all_connections`) three times while the
    /// daemon drains: each time it reconnects and goes on, and in the end every event is applied once, in order.
    /// Each cut waits for the reconnection after the one before (a cut during the reconnect back-off would close
    /// nothing). `rabbitmqctl` takes a second or two to start, long enough for a fast machine to drain the queue
    /// before the cut lands (a CI run did): so the daemon is stopped (SIGSTOP) from just before the cut until the
    /// queue was counted after it, and the cut always falls mid-run, with deliveries in the daemon's hands.
    @Test func brokerClosingTheConnectionThreeTimesMidRunLosesNothing() async throws {
        let node = try RabbitMQTestNode.shared()
        let queue = "crm.test.cut.\(UUID().uuidString.prefix(6))"
        try node.freshQueue(queue)
        let workload = Workload(contacts: 1_000, perContact: 80)
        let publisher = try node.publisher()
        try publisher.publishAll(workload.messages(queue: queue, withIds: true))
        publisher.close()
        let folder = try Self.daemonFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = try daemonConfig(url: node.url, queue: queue, folder: folder, extra: #"http: { listen: "127.0.0.1:0" }"#)

        let daemon = try DaemonProcess(config: config, folder: folder)
        @Sendable func connections() -> Int {
            Self.lines(daemon, message: "consuming").filter { ($0["message"] as? String) == "consuming" }.count
        }
        var cutsMidRun = 0
        for (cut, share) in [4_000, 12_000, 20_000].enumerated() {
            // Watched from a thread of its own (see `signal(_:_:whenApplied:)`), which stops the daemon, has the
            // broker cut the connection, counts what is still queued and lets the daemon go on.
            let outcome = try await onOwnThread { () -> (reached: Bool, cut: Bool, ready: Int) in
                guard Self.pollBlocking(until: { ((try? Self.appliedSoFar(daemon)) ?? 0) >= share && connections() == cut + 1 }) else {
                    return (false, false, 0)
                }
                daemon.signal(SIGSTOP)
                defer { daemon.signal(SIGCONT) }
                let closed = (try? node.ctl("close_all_connections", "crm-ingest fault test")) != nil
                return (true, closed, (try? node.counts(queue).ready) ?? 0)
            }
            guard outcome.reached else { break }
            if outcome.cut, outcome.ready > 0 { cutsMidRun += 1 }
            // One "consuming" line per connection: the first and one after each cut.
            #expect(try await waitFor(.seconds(60)) { connections() == cut + 2 }, "no reconnection after cut \(cut + 1)")
        }
        #expect(cutsMidRun == 3, "cuts made while events were still queued: \(cutsMidRun)")
        #expect(try await waitFor(.seconds(180)) { try node.counts(queue) == (0, 0) })
        #expect(connections() == 4)
        // SQLite takes each delivery batch in submission order: the line says so, and names no lanes.
        let consuming = Self.lines(daemon, message: "consuming").filter { ($0["message"] as? String) == "consuming" }
        #expect(consuming.allSatisfy { $0["order"] as? String == "submission" && $0["lanes"] == nil })
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit(timeout: .seconds(15)))
        #expect(daemon.process.terminationStatus == 0)
        let store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        defer { try? store.close() }
        #expect(try await store.count("ledger") == workload.total)
        #expect(try await store.count("purchases") == workload.contacts * workload.depositSteps.count)
        #expect(try await workload.problems(in: store) == [])
    }
}
