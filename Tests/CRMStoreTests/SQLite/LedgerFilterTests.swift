import CRMCore
@testable import CRMStoreSQLite
import Foundation
import GRDB
import Synchronization
import Testing

/// The Bloom filter of `ledger`'s keys (`LedgerFilter`): it never says "no" to a key of `ledger`, says it to most
/// others once complete, and new events' keys then cost no lookup in `ledger`.
@Suite("SQLite store: ledger filter")
struct LedgerFilterTests {
    @Test func theFilterSaysNoOnlyOnceItHasScannedTheWholeLedger() throws {
        let database = try DatabaseQueue()
        let stored = RecentLedgerTests.randomKeys(5_000)
        try database.write { db in
            try db.execute(sql: "CREATE TABLE ledger (key BLOB PRIMARY KEY, processed_at INTEGER NOT NULL) WITHOUT ROWID")
            for key in stored { try db.execute(sql: "INSERT INTO ledger (key, processed_at) VALUES (?, 1)", arguments: [key]) }
            // A row the store never writes (a hand-made repair): skipped, not a failure of every transaction.
            try db.execute(sql: "INSERT INTO ledger (key, processed_at) VALUES (x'0102', 1)")
        }
        let absent = RecentLedgerTests.randomKeys(10_000, seed: 2).map { LedgerKey(stored: $0)! }
        let filter = LedgerFilter(bits: 1 << 16)

        // Not complete: every key is a "maybe".
        try database.read { db in try filter.scanStep(db, count: 1_000) }
        #expect(!filter.complete)
        #expect(absent.allSatisfy { filter.mayContain($0) })

        var steps = 1
        while !filter.complete {
            try database.read { db in try filter.scanStep(db, count: 1_000) }
            steps += 1
        }
        #expect(steps == 6)
        #expect(filter.malformedKeys.load(ordering: .relaxed) == 1)
        #expect(stored.allSatisfy { filter.mayContain(LedgerKey(stored: $0)!) })
        // 5,000 keys in 65,536 bits with 4 probes: about 1 absent key in 200 is a "maybe".
        let maybes = absent.filter { filter.mayContain($0) }.count
        #expect(maybes < 200, "\(maybes) of 10,000 absent keys were a maybe")

        // Another connection may have added keys: until a new scan is over, every key is a "maybe" again.
        filter.restartScan()
        #expect(absent.allSatisfy { filter.mayContain($0) })

        // Cleared after pruning: the deleted keys are no longer "maybe" once the scan is over.
        try database.write { db in try db.execute(sql: "DELETE FROM ledger") }
        filter.clear()
        try database.read { db in try filter.scanStep(db, count: 1_000) }
        #expect(filter.complete)
        #expect(stored.filter { filter.mayContain(LedgerKey(stored: $0)!) }.isEmpty)
    }

    /// In a store: merge rounds move keys into `ledger`; new keys then cost no lookup there, and every merged key is
    /// still a duplicate.
    @Test func newKeysCostNoLookupAndMergedKeysStayDuplicates() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let store = try SQLiteCRMStore(path: RecentLedgerTests.path(in: h, "filter"), recentLedgerLimit: 5)
        defer { try? store.close() }
        let events = try (0..<40).map { try h.plan(registration("c\($0)"), id: "m-\($0)") }
        for start in stride(from: 0, to: 40, by: 4) {
            let outcomes = try await store.apply(Array(events[start..<start + 4]), now: StoreHarness.t0)
            #expect(outcomes == Array(repeating: .applied(notes: []), count: 4))
        }
        #expect(try await RecentLedgerTests.tables(store).main >= 20)
        #expect(store.recentLedger.filter.lookupsLetThrough.load(ordering: .relaxed) == 0)

        let again = try await store.apply(events, now: StoreHarness.t0)
        #expect(again == Array(repeating: .duplicate, count: 40))
        #expect(store.recentLedger.filter.lookupsLetThrough.load(ordering: .relaxed) >= 20)
    }

    /// A key another connection wrote straight into `ledger` (its data version changes) is found: the filter scans
    /// again before it says "no".
    @Test func aKeyAnotherConnectionPutInTheLedgerIsADuplicate() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let path = RecentLedgerTests.path(in: h, "other-writer")
        let store = try SQLiteCRMStore(path: path, recentLedgerLimit: 5)
        defer { try? store.close() }
        #expect(try await store.apply([try h.plan(registration("a"), id: "a")], now: StoreHarness.t0) == [.applied(notes: [])])
        #expect(store.recentLedger.filter.complete)

        let event = try h.plan(registration("b"), id: "b")
        let other = try DatabaseQueue(path: path)
        try await other.write { db in
            try db.execute(sql: "INSERT INTO ledger (key, processed_at) VALUES (?, 1)", arguments: [store.keyedHash.ledgerKey(event.key.value)])
        }
        try other.close()
        #expect(try await store.apply([event], now: StoreHarness.t0) == [.duplicate])
        #expect(try await store.count("contacts") == 1)
    }

    /// Another connection adds a key behind the position of a scan under way: the scan starts over from the first
    /// key, so the filter is never complete without it.
    @Test func aKeyAddedBehindTheScanIsFound() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let path = RecentLedgerTests.path(in: h, "behind")
        let store = try SQLiteCRMStore(path: path, recentLedgerLimit: 1_000)
        defer { try? store.close() }
        // 300 keys that sort last (first byte 0xFF), so the scan takes many small steps through them.
        let other = try DatabaseQueue(path: path)
        try await other.write { db in
            for var key in RecentLedgerTests.randomKeys(300) {
                key[0] = 0xFF
                try db.execute(sql: "INSERT INTO ledger (key, processed_at) VALUES (?, 1)", arguments: [key])
            }
        }
        for index in 0..<3 { _ = try await store.apply([try h.plan(registration("a\(index)"), id: "a-\(index)")], now: StoreHarness.t0) }
        #expect(!store.recentLedger.filter.complete)

        // A key below the scan's position, put in `ledger` by the other connection.
        var candidate: PlannedEvent?
        for index in 0..<50 where candidate == nil {
            let event = try h.plan(registration("k"), id: "k-\(index)")
            if store.keyedHash.ledgerKey(event.key.value).first! < 0xFF { candidate = event }
        }
        let behind = try #require(candidate)
        try await other.write { db in
            try db.execute(sql: "INSERT INTO ledger (key, processed_at) VALUES (?, 1)", arguments: [store.keyedHash.ledgerKey(behind.key.value)])
        }
        try other.close()
        for index in 0..<60 { _ = try await store.apply([try h.plan(registration("b\(index)"), id: "b-\(index)")], now: StoreHarness.t0) }
        #expect(store.recentLedger.filter.complete)
        #expect(try await store.apply([behind], now: StoreHarness.t0) == [.duplicate])
    }

    /// Pruning clears the filter and scans again: the keys that stay in `ledger` are still duplicates, the pruned
    /// ones are new again.
    @Test func afterPruningKeptKeysStayDuplicates() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let store = try SQLiteCRMStore(path: RecentLedgerTests.path(in: h, "prune"), recentLedgerLimit: 5)
        defer { try? store.close() }
        let early = try (0..<20).map { try h.plan(registration("e\($0)"), id: "e-\($0)") }
        let late = try (0..<20).map { try h.plan(registration("l\($0)"), id: "l-\($0)") }
        for start in stride(from: 0, to: 20, by: 4) {
            _ = try await store.apply(Array(early[start..<start + 4]), now: RecentLedgerTests.at(0))
        }
        for start in stride(from: 0, to: 20, by: 4) {
            _ = try await store.apply(Array(late[start..<start + 4]), now: RecentLedgerTests.at(100))
        }
        #expect(store.recentLedger.filter.complete)
        #expect(try await RecentLedgerTests.tables(store).main >= 20)

        #expect(try await store.pruneLedger(before: RecentLedgerTests.at(50)) >= 20)
        #expect(try await store.apply(late, now: RecentLedgerTests.at(200)) == Array(repeating: .duplicate, count: 20))
        let again = try await store.apply(early, now: RecentLedgerTests.at(200))
        #expect(!again.contains(.duplicate))
    }
}
