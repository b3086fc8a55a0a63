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

    /// New ledger keys go to `ledger_recent`; once it holds the limit, each transaction moves a slice of it into
    /// `ledger`. A key is found in either table, moving keeps every key, and a reopened store counts the recent rows.
    @Test func theRecentLedgerIsMergedAndEveryKeyStaysKnown() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-ledger-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("crm.sqlite").path
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        var store = try SQLiteCRMStore(path: path, recentLedgerLimit: 5)
        func tables() async throws -> (main: Int, recent: Int) {
            try await store.database.read { db in
                (try Int.fetchOne(db, sql: "SELECT count(*) FROM ledger") ?? -1, try Int.fetchOne(db, sql: "SELECT count(*) FROM ledger_recent") ?? -1)
            }
        }
        // Forty transactions of one event each: past 5 recent rows, every transaction moves a slice.
        for index in 0..<40 {
            let outcomes = try await store.apply([try h.plan(registration("c\(index)"), id: "m-\(index)")], now: StoreHarness.t0)
            #expect(outcomes == [.applied(notes: [])])
        }
        // How many of them merged depends on where the random keys fall (a step that moves many rows can leave the
        // recent table under the limit for the next one); the sizes below are what must hold.
        #expect(store.counters.ledgerMerges.load(ordering: .relaxed) >= 5)
        let afterwards = try await tables()
        #expect(afterwards.main > 20)
        #expect(afterwards.recent < 12)
        #expect(afterwards.main + afterwards.recent == 40)
        #expect(try await store.count("ledger") == 40)
        // Every key is a duplicate, wherever it is, and a batch holding old and new keys applies the new ones only.
        let again = try (0..<42).map { try h.plan(registration("c\($0)"), id: "m-\($0)") }
        #expect(try await store.apply(again, now: StoreHarness.t0) == Array(repeating: .duplicate, count: 40) + [.applied(notes: []), .applied(notes: [])])
        #expect(try await store.count("contacts") == 42)
        #expect(try await store.count("ledger") == 42)
        // A reopened store counts the recent rows from the table.
        let recent = try await tables().recent
        try store.close()
        store = try SQLiteCRMStore(path: path, recentLedgerLimit: 5)
        #expect(store.counters.recentLedgerRows.load(ordering: .relaxed) == recent)
        // Pruning forgets keys in both tables.
        #expect(try await store.pruneLedger(before: StoreHarness.t0.adding(1, .minutes)) == 42)
        #expect(try await tables() == (main: 0, recent: 0))
        try store.close()
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

    /// A merge step takes about twice its transaction's events in rows, as whole buckets of the first key byte, and
    /// goes round the key space.
    @Test func mergeStepsCoverTheKeySpaceInSlices() {
        let small = LedgerMerge.Step(firstBucket: 0, recentRows: 100_000, events: 200)
        #expect(small.buckets == 2)
        #expect(small.ranges.map { [$0.lower, $0.upper] } == [[Data([0]), Data([2])]])
        #expect(small.nextBucket == 2)
        #expect(!small.completesRound)
        // A big transaction near the end wraps round to the start.
        let big = LedgerMerge.Step(firstBucket: 250, recentRows: 100_000, events: 20_000)
        #expect(big.buckets == 103)
        #expect(big.ranges.map { [$0.lower, $0.upper] } == [[Data([250]), nil], [Data([0]), Data([97])]])
        #expect(big.nextBucket == 97)
        #expect(big.completesRound)
        // Never more than the whole key space.
        let all = LedgerMerge.Step(firstBucket: 7, recentRows: 10, events: 1_000)
        #expect(all.buckets == 256)
        #expect(all.nextBucket == 7)
        #expect(all.ranges.map { [$0.lower, $0.upper] } == [[Data([7]), nil], [Data([0]), Data([7])]])
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
