import AMQPClient
import CRMStoreSQLite
import CRMTestSupport
import CurlHTTP
import Foundation
import Testing

/// The store failing under a running `crm-ingest run` (issue 10): the SQLite file's disk full, the PostgreSQL
/// database read-only. While it lasts no message is acknowledged, `/readyz` answers 503 naming the store, and the
/// source retries; once it clears the daemon catches up, and in the end every event is applied exactly once. An
/// extension of the source's suite, so it is serialized with the tests that pause the shared broker.
extension RabbitMQSourceTests {
    /// Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN; not in most unprivileged containers).
    static let canMountTmpfs: Bool = {
        guard let probe = mountTmpfs(size: "1m") else { return false }
        unmount(probe)
        return true
    }()

    static func mountTmpfs(size: String) -> URL? {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-tmpfs-\(UUID().uuidString.prefix(8))")
        guard (try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)) != nil else { return nil }
        guard run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size),mode=0755", "tmpfs", folder.path]) == 0 else {
            try? FileManager.default.removeItem(at: folder)
            return nil
        }
        return folder
    }

    static func unmount(_ folder: URL) {
        _ = run("/bin/umount", ["-l", folder.path])
        try? FileManager.default.removeItem(at: folder)
    }

    static func run(_ tool: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Writes zeros to `path` until the file system is full; the bytes written.
    static func fillUp(_ path: String) -> Int {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0, count: 1 << 20)
        var written = 0
        for size in [1 << 20, 4_096, 512] {
            while true {
                let count = chunk.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, size) }
                if count <= 0 { break }
                written += count
            }
        }
        return written
    }

    /// `/readyz`'s status code and body, nil while the daemon has no HTTP port yet.
    static func readiness(_ daemon: DaemonProcess) -> (status: Int, body: String)? {
        guard let port = httpPort(daemon),
              let response = try? CurlHTTPClient().send(HTTPRequest(method: "GET", url: "http://127.0.0.1:\(port)/readyz"), timeout: .seconds(10))
        else { return nil }
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    /// What one store fault did to a running daemon: checks the daemon during the fault and after it.
    /// `inject` starts the fault, `clear` ends it; `storeProblem` is what `/readyz` must say meanwhile.
    func survivesAStoreFault(
        node: RabbitMQTestNode, queue: String, workload: Workload, daemon: DaemonProcess, storeProblem: String,
        inject: () throws -> Void, clear: () throws -> Void, diagnose: () -> String = { "" }
    ) async throws {
        // The daemon is stopped (SIGSTOP) from its 2,000th applied event until the fault is in place, so the fault
        // always lands mid-run: a fast machine drains the rest in the second or two `psql` takes to start.
        #expect(await Self.signal(daemon, SIGSTOP, whenApplied: 2_000), "the daemon did not start applying")
        do {
            defer { daemon.signal(SIGCONT) }
            try inject()
        }
        // Not ready, naming the store's error, while the fault lasts.
        var notReady: String?
        _ = try await waitFor(.seconds(60)) {
            guard let (status, body) = Self.readiness(daemon), status == 503, body.contains(storeProblem) else { return false }
            notReady = body
            return true
        }
        #expect(notReady != nil, "/readyz never said the store fails: \(Self.readiness(daemon).map { "\($0.status) \($0.body)" } ?? "no answer")")
        // The daemon stalls: a commit that needs no new space (a full disk) may still go through now and then,
        // but soon nothing more is applied, and what was not applied is still in the queue.
        var appliedAtFault = -1
        let stalled = try await waitFor(.seconds(60), every: .seconds(2)) {
            let before = try Self.appliedSoFar(daemon)
            try await Task.sleep(for: .seconds(2))
            guard try Self.appliedSoFar(daemon) == before, before == appliedAtFault else {
                appliedAtFault = try Self.appliedSoFar(daemon)
                return false
            }
            return true
        }
        #expect(stalled, "the daemon kept applying events during the fault")
        // Nothing acknowledged that is not applied: acked = total - (ready + unacked) <= applied. (Applied events may
        // wait for their ack: acks go out with `multiple` up to the lowest delivery still held by a failing batch.)
        let (ready, unacked) = try node.counts(queue)
        #expect(ready + unacked >= workload.total - appliedAtFault, "ready \(ready) + unacked \(unacked), applied \(appliedAtFault)")
        #expect(ready > 0, "nothing was left to consume")
        #expect(appliedAtFault < workload.total, "the queue drained before the fault")
        // A commit that needs no new space may clear the failure for a moment (see above): not ready again soon.
        #expect(try await waitFor(.seconds(20)) { Self.readiness(daemon)?.status == 503 })
        #expect(daemon.process.isRunning)
        try clear()
        // Catches up, and is ready again.
        let caughtUp = try await waitFor(.seconds(180)) { try node.counts(queue) == (0, 0) }
        let left = try node.counts(queue)
        #expect(caughtUp, "not caught up: \(left); \(diagnose()); log: \(daemon.log.split(separator: "\n").suffix(15).joined(separator: "\n"))")
        #expect(try await waitFor(.seconds(30)) { Self.readiness(daemon)?.status == 200 })
        daemon.signal(SIGTERM)
        let exited = try await daemon.waitForExit(timeout: .seconds(20))
        #expect(exited, "no exit within 20 s of SIGTERM; log: \(daemon.log.split(separator: "\n").suffix(15).joined(separator: "\n"))")
        if exited { #expect(daemon.process.terminationStatus == 0) }
        #expect(Self.lines(daemon, message: "store failed, retrying").count > 0)
    }

    /// The SQLite file on a small tmpfs that is filled up mid-run, then freed.
    @Test(.enabled(if: canMountTmpfs, "needs root to mount a tmpfs"))
    func theSQLiteDiskFullForAWhileLosesNothing() async throws {
        let node = try RabbitMQTestNode.shared()
        let workload = Workload(contacts: 2_000, perContact: 15)
        let queue = try node.queueHolding(workload, name: "diskfull")
        let folder = try Self.daemonFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let disk = try #require(Self.mountTmpfs(size: "64m"))
        defer { Self.unmount(disk) }
        let database = disk.appendingPathComponent("crm.sqlite").path
        let config = try daemonConfig(
            url: node.url, queue: queue, folder: folder, extra: #"http: { listen: "127.0.0.1:0" }"#, store: #"sqlite: { path: "\#(database)" }"#
        )
        let daemon = try DaemonProcess(config: config, folder: folder)
        let filler = disk.appendingPathComponent("filler").path
        try await survivesAStoreFault(
            node: node, queue: queue, workload: workload, daemon: daemon, storeProblem: "writes failing",
            inject: { #expect(Self.fillUp(filler) > 0) },
            clear: { try FileManager.default.removeItem(atPath: filler) }
        )
        #expect(Self.lines(daemon, message: "store failed, retrying").contains { ($0["error"] as? String)?.contains("full") == true })
        let store = try SQLiteCRMStore(path: database)
        defer { try? store.close() }
        #expect(try await store.count("ledger") == workload.total)
        #expect(try await store.count("purchases") == workload.contacts * workload.depositSteps.count)
        #expect(try await workload.problems(in: store) == [])
    }

    /// The PostgreSQL database made read-only mid-run, the way a failover to a standby looks: the database's
    /// default turned to read-only and its sessions ended, so the daemon reconnects to a database that refuses
    /// every write (SQLSTATE 25006); then writable again, with the sessions left alone: the daemon must close the
    /// sessions that answered read-only itself (it kept them in its pool, refusing every write for good, until
    /// 2026-12-07 afternoon).
    /// A transaction cut by the terminated session may never complete in the driver: the store gives its connection up
    /// after `PostgresCRMStore.defaultCallTimeout` (shown failing without it: the lanes stopped for good).
    /// `diagnose` prints the database's sessions when the daemon does not catch up.
    @Test func thePostgreSQLDatabaseReadOnlyForAWhileLosesNothing() async throws {
        let node = try RabbitMQTestNode.shared()
        let server = try PostgresTestServer.shared()
        let database = try server.createDatabase()
        let workload = Workload(contacts: 2_000, perContact: 10)
        let queue = try node.queueHolding(workload, name: "readonly")
        let folder = try Self.daemonFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = try Self.postgresDaemonConfig(url: node.url, queue: queue, database: database, server: server, folder: folder, name: "readonly")
        let daemon = try DaemonProcess(config: config, folder: folder)
        let endSessions = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '\(database)' AND pid <> pg_backend_pid()"
        try await survivesAStoreFault(
            node: node, queue: queue, workload: workload, daemon: daemon, storeProblem: "25006",
            inject: {
                try server.psql("ALTER DATABASE \"\(database)\" SET default_transaction_read_only = on")
                try server.psql(endSessions)
            },
            clear: {
                try server.psql("ALTER DATABASE \"\(database)\" RESET default_transaction_read_only")
            },
            diagnose: {
                (try? server.psql("SELECT pid, state, wait_event_type, wait_event, backend_xid, left(query, 80) FROM pg_stat_activity WHERE datname = '\(database)'")) ?? "?"
            }
        )
        #expect(try server.psql("SELECT count(*) FROM ledger", database: database) == String(workload.total))
        #expect(try server.psql("SELECT count(*) FROM purchases", database: database) == String(workload.contacts * workload.depositSteps.count))
        #expect(try server.psql("SELECT count(*) FROM contacts", database: database) == String(workload.contacts))
    }
}
