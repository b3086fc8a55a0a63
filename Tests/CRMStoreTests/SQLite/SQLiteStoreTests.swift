import CRMCore
@testable import CRMStoreSQLite
import Foundation
import GRDB
import Prometheus
import Synchronization
import Testing

/// What only the SQLite store has: its file, its lock, reopening.
@Suite("SQLite store: locking and reopening")
struct SQLiteStoreTests {
    @Test func aBusyDatabaseFailsTheWholeBatch() async throws {
        let h = try await StoreHarness(.sqlite, sqliteBusyTimeoutMilliseconds: 100)
        defer { h.remove() }
        var configuration = Configuration()
        configuration.journalMode = .wal
        let side = try DatabaseQueue(path: h.sqlitePath, configuration: configuration)
        let events = [try h.plan(registration("a"), id: "1"), try h.plan(registration("b"), id: "2")]
        // The other connection, on a thread of its own, holds the write lock while the store tries.
        let locked = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        Thread {
            try? side.writeWithoutTransaction { db in
                try db.execute(sql: "BEGIN IMMEDIATE")
                locked.signal()
                release.wait()
                try db.execute(sql: "ROLLBACK")
            }
            done.signal()
        }.start()
        locked.wait()
        do {
            _ = try await h.store.apply(events, now: StoreHarness.t0)
            Issue.record("applied while another writer held the lock")
        } catch let error as StoreError {
            #expect(error.code == .busy)
            #expect(error.isTransient)
        }
        release.signal()
        done.wait()
        try side.close()
        #expect(try await h.count("contacts") == 0)
        #expect(try await h.count("ledger") == 0)
        // Once the lock is gone the same batch applies.
        #expect(try await h.store.apply(events, now: StoreHarness.t0) == [.applied(notes: []), .applied(notes: [])])
    }

    /// Each committed transaction is timed and its events counted, for `/metrics`.
    @Test func committedTransactionsAreTimedAndTheirEventsCounted() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-metrics-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let registry = PrometheusCollectorRegistry()
        let store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path, metrics: PrometheusMetricsFactory(registry: registry))
        #expect(try await store.apply([try h.plan(registration("a"), id: "1")], now: StoreHarness.t0) == [.applied(notes: [])])
        let two = [try h.plan(registration("b"), id: "2"), try h.plan(registration("c"), id: "3")]
        #expect(try await store.apply(two, now: StoreHarness.t0) == [.applied(notes: []), .applied(notes: [])])
        #expect(try await store.count("contacts") == 3)
        let text = registry.emitToString()
        #expect(text.contains(#"crm_ingest_store_transaction_seconds_count{store="sqlite"} 2"#))
        #expect(text.contains(#"crm_ingest_store_transaction_events_total{store="sqlite"} 3"#))
        try store.close()
    }

    @Test func reopeningKeepsDataAndTheTombstoneKey() async throws {
        let h = try await StoreHarness(.sqlite, actions: [
            .userRegistration: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true)],
            .userBlocked: [.anonymizeContact(list: 1, findBy: .originalId)],
        ])
        defer { h.remove() }
        try await h.send(registration("keep"))
        try await h.send(registration("drop"))
        try await h.send(#"{"type":"USER_BLOCKED","contactId":"drop"}"#)
        try h.sqliteStore.close()
        let reopened = try SQLiteCRMStore(path: h.sqlitePath)
        #expect(try await reopened.contact("drop", list: nil) == .anonymized)
        if case .found = try await reopened.contact("keep", list: nil) {} else { Issue.record("keep is gone") }
        try reopened.close()
    }
}

@Suite("SQLite store: opening")
struct OpeningTests {
    /// A daemon and a `contact show` may open a new database file at the same moment: both must succeed.
    @Test func twoConnectionsOpeningANewFileAtOnceBothSucceed() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-open-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for round in 0..<15 {
            let path = folder.appendingPathComponent("race-\(round).sqlite").path
            let failures = await withTaskGroup(of: String?.self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        do {
                            let store = try SQLiteCRMStore(path: path)
                            try store.close()
                            return nil
                        } catch {
                            return "\(error)"
                        }
                    }
                }
                var failures: [String] = []
                for await failure in group { if let failure { failures.append(failure) } }
                return failures
            }
            #expect(failures == [], "round \(round)")
        }
    }
}
