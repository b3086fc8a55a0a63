import AMQPClient
import CRMCore
import CRMSourceSupport
import CRMTestSupport
import Foundation
import Testing

/// Several `crm-ingest run` processes on one RabbitMQ queue and one PostgreSQL database (issue 9): started at once
/// on an empty database, one SIGKILLed halfway. An extension of the source's suite, so it is serialized with the
/// tests that pause the shared broker.
extension RabbitMQSourceTests {
    /// A daemon configuration for `queue` on the PostgreSQL database `database`, HTTP on a free port.
    static func postgresDaemonConfig(
        url: String, queue: String, database: String, server: PostgresTestServer, folder: URL, name: String, shards: Int? = nil
    ) throws -> String {
        try daemonConfig(
            url: url, queue: queue, folder: folder, extra: #"http: { listen: "127.0.0.1:0" }"#,
            store: #"postgres: { url: "\#(server.url(database: database))", pool: 8, tls: disable }"#,
            sourceExtra: shards.map { ["shards: \($0)"] } ?? [], file: "\(name).yaml"
        )
    }

    /// Events applied so far by all of `daemons` together (from their /metrics).
    static func appliedSoFar(_ daemons: [DaemonProcess]) -> Int {
        daemons.reduce(0) { $0 + ((try? appliedSoFar($1)) ?? 0) }
    }

    /// Two daemons on one queue and an empty database, started together: the migrations run once; one daemon is
    /// SIGKILLed once the two applied half the events, the other takes over its unacknowledged messages. Nothing is
    /// lost and nothing applied twice: the ledger has every message once, and deposits (no transaction id, so
    /// nothing but the ledger keeps them single) have exactly one row each. Per-contact order is not asserted: with
    /// competing consumers it is not guaranteed (Docs/SCALING.md); the sharded test below asserts it.
    @Test func twoDaemonsOnOneQueueAndOneDatabaseSurviveASigkill() async throws {
        let node = try RabbitMQTestNode.shared()
        let server = try PostgresTestServer.shared()
        let database = try server.createDatabase()
        let queue = "crm.test.scaleout.\(UUID().uuidString.prefix(6))"
        try node.freshQueue(queue)
        let workload = Workload(contacts: 2_000, perContact: 10)
        let publisher = try node.publisher()
        try publisher.publishAll(workload.messages(queue: queue, withIds: true))
        publisher.close()
        let folder = try Self.daemonFolder()
        defer { try? FileManager.default.removeItem(at: folder) }

        let daemons = try ["a", "b"].map { name in
            try DaemonProcess(
                config: try Self.postgresDaemonConfig(url: node.url, queue: queue, database: database, server: server, folder: folder, name: name),
                folder: folder
            )
        }
        // Watch from a thread of its own (see `signal(_:_:whenApplied:)`); kill whichever applied more so far.
        let killed = try await onOwnThread { () -> Int? in
            guard Self.pollBlocking(until: { Self.appliedSoFar(daemons) >= workload.total / 2 }) else { return nil }
            let victim = (try? Self.appliedSoFar(daemons[0])) ?? 0 >= (try? Self.appliedSoFar(daemons[1])) ?? 0 ? 0 : 1
            daemons[victim].signal(SIGKILL)
            return victim
        }
        let victim = try #require(killed, "the daemons did not apply half the events in time")
        let survivor = daemons[1 - victim]
        _ = try await daemons[victim].waitForExit(timeout: .seconds(10))
        #expect(try await waitFor(.seconds(180)) { try node.counts(queue) == (0, 0) })
        #expect(Self.appliedSoFar([survivor]) > 0)
        survivor.signal(SIGTERM)
        #expect(try await survivor.waitForExit(timeout: .seconds(20)))
        #expect(survivor.process.terminationStatus == 0)

        // One daemon migrated the empty database (a line per migration), the other found it migrated.
        let migrationLines = daemons.map { Self.lines($0, message: "store migration applied").count }
        let migrations = try server.psql("SELECT count(*) FROM schema_migrations", database: database)
        #expect(migrationLines.filter { $0 > 0 }.count == 1, "migration log lines per daemon: \(migrationLines)")
        #expect(migrations != "0" && String(migrationLines.reduce(0, +)) == migrations, "\(migrations) migrations, lines \(migrationLines)")
        #expect(try server.psql("SELECT count(*) FROM ledger", database: database) == String(workload.total))
        #expect(try server.psql("SELECT count(*) FROM purchases", database: database) == String(workload.contacts * workload.depositSteps.count))
        #expect(try server.psql("SELECT count(*) FROM contacts", database: database) == String(workload.contacts))

        // The commands read the same database: `contact show` through the PostgreSQL store.
        let config = folder.appendingPathComponent("a.yaml").path
        let shown = try Self.runCommand(["contact", "show", workload.contactId(7), "--config", config])
        #expect(shown.status == 0, "\(shown.errors)")
        let contact = try JSONParser().parse(Array(shown.output.utf8))
        #expect(contact["contactId"] == .string(workload.contactId(7)))
        guard case let .array(purchases)? = contact["purchases"] else { Issue.record("no purchases in \(shown.output)"); return }
        #expect(purchases.count == workload.depositSteps.count)
    }

    /// The ordered setup: a consistent-hash exchange in front of four shard queues, each consumed with
    /// single-active-consumer, declared by the daemons themselves (`shards: 4`). Daemon a starts first and is active
    /// on every shard, b waits as standby; a is SIGKILLed halfway and b takes over. Totals are exact, and every
    /// contact's events were applied in order: its deposits in sequence, its last update and consent winning.
    @Test func shardedTopologyKeepsPerContactOrderAcrossASigkill() async throws {
        let node = try RabbitMQTestNode.shared()
        let server = try PostgresTestServer.shared()
        let database = try server.createDatabase()
        let queue = "crm.test.sharded.\(UUID().uuidString.prefix(6))"
        let folder = try Self.daemonFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let configs = try ["a", "b"].map { name in
            try Self.postgresDaemonConfig(url: node.url, queue: queue, database: database, server: server, folder: folder, name: name, shards: 4)
        }
        let active = try DaemonProcess(config: configs[0], folder: folder)
        #expect(try await waitFor(.seconds(60)) { Self.lines(active, message: "consuming").count > 0 })
        // PostgreSQL applies a source's events in lanes, and the line says how many (the configuration's 4).
        #expect(Self.lines(active, message: "consuming").first.map { $0["lanes"] as? String == "4" && $0["order"] == nil } == true)
        let standby = try DaemonProcess(config: configs[1], folder: folder)
        #expect(try await waitFor(.seconds(60)) { Self.lines(standby, message: "consuming").count > 0 })

        let workload = Workload(contacts: 2_000, perContact: 10)
        let publisher = try node.publisher()
        try publisher.publishAll(workload.shardedMessages(exchange: queue))
        publisher.close()
        #expect(await Self.signal(active, SIGKILL, whenApplied: workload.total / 2))
        _ = try await active.waitForExit(timeout: .seconds(10))
        let shardQueues = (0..<4).map { "\(queue).shard.\($0)" }
        #expect(try await waitFor(.seconds(180)) { try shardQueues.allSatisfy { try node.counts($0) == (0, 0) } })
        #expect(Self.appliedSoFar([standby]) > 0)
        standby.signal(SIGTERM)
        #expect(try await standby.waitForExit(timeout: .seconds(20)))
        #expect(standby.process.terminationStatus == 0)

        #expect(try server.psql("SELECT count(*) FROM ledger", database: database) == String(workload.total))
        #expect(try server.psql("SELECT count(*) FROM purchases", database: database) == String(workload.contacts * workload.depositSteps.count))
        let problems = try await server.withStore(database: database) { store in try await workload.problems(in: store) }
        #expect(problems == [])
    }
}
