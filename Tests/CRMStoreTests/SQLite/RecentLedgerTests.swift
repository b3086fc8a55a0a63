import CRMCore
@testable import CRMStoreSQLite
import Foundation
import GRDB
import Synchronization
import Testing

/// The recent ledger keys in memory (`RecentLedger`): `ledger_recent` written in arrival order, merge rounds into
/// `ledger`, and another connection writing the same file.
@Suite("SQLite store: recent ledger keys")
struct RecentLedgerTests {
    /// A database file of its own in the harness's folder (removed with it).
    static func path(in h: StoreHarness, _ name: String) -> String {
        h.folder!.appendingPathComponent("\(name).sqlite").path
    }

    /// Two stores on one file of the harness's folder (the daemon and `crm-ingest ingest`), with these limits.
    static func twoStores(_ h: StoreHarness, _ name: String, limits: (Int, Int)) throws -> (SQLiteCRMStore, SQLiteCRMStore) {
        let path = path(in: h, name)
        let first = try SQLiteCRMStore(path: path, recentLedgerLimit: limits.0)
        do {
            return (first, try SQLiteCRMStore(path: path, recentLedgerLimit: limits.1))
        } catch {
            try? first.close()
            throw error
        }
    }

    static func close(_ stores: SQLiteCRMStore...) {
        for store in stores { try? store.close() }
    }

    /// `seconds` after `StoreHarness.t0`.
    static func at(_ seconds: Int64) -> Timestamp {
        Timestamp(microsecondsSinceEpoch: StoreHarness.t0.microsecondsSinceEpoch + seconds * 1_000_000)
    }

    /// A registration whose key is checked over a sliding window starting at `since` (HTTP deduplication).
    static func windowed(_ h: StoreHarness, since: Timestamp) throws -> PlannedEvent {
        var event = try h.plan(registration("w"), id: "x")
        event.key = IdempotencyKey(value: "window-key", check: .slidingWindow(since: since))
        return event
    }

    /// `count` random 16-byte keys, as stored: the same for the same seed, so a failure can be repeated.
    static func randomKeys(_ count: Int, seed: UInt64 = 1) -> [Data] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in Data((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }) }
    }

    /// A seeded generator (SplitMix64).
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Random keys, each with its own time.
    static func timedKeys(_ count: Int) -> [LedgerKey: Int64] {
        var entries: [LedgerKey: Int64] = [:]
        for (index, key) in randomKeys(count).enumerated() { entries[LedgerKey(stored: key)!] = Int64(index) }
        return entries
    }

    static func tables(_ store: SQLiteCRMStore) async throws -> (main: Int, recent: Int) {
        try await store.database.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM ledger") ?? -1, try Int.fetchOne(db, sql: "SELECT count(*) FROM ledger_recent") ?? -1)
        }
    }

    /// Past the limit, merge rounds move the recent keys into `ledger`; every key stays known, in the same store and
    /// in a reopened one, and pruning forgets them in both tables.
    @Test func keysAreMergedInRoundsAndEveryKeyStaysKnown() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let path = Self.path(in: h, "ledger")
        var store = try SQLiteCRMStore(path: path, recentLedgerLimit: 5)
        // Forty transactions of one event each: a round starts at 5 keys and moves two keys a transaction.
        for index in 0..<40 {
            let outcomes = try await store.apply([try h.plan(registration("c\(index)"), id: "m-\(index)")], now: StoreHarness.t0)
            #expect(outcomes == [.applied(notes: [])])
        }
        // How long a round lasts depends on where the keys fall (the keyed hash's secret is new for every file): a
        // step moves two keys, and a new key landing ahead of the sweep is moved in the same round. So a round of 5
        // keys lasts up to about 6 transactions, and its rows go after it, two a transaction: at most about three
        // times the limit stay. (A simulation of the rounds over 200,000 placements of the 40 keys, random and
        // adversarial: at least 4 rounds, at most 14 rows.)
        #expect(store.recentLedger.mergeRounds.load(ordering: .relaxed) >= 3)
        let afterwards = try await Self.tables(store)
        #expect(afterwards.main >= 25)
        #expect(afterwards.recent <= 15)
        // Each key is in the large table or in memory; rows of a round are deleted a few at a time after it.
        #expect(afterwards.main + store.recentLedger.count == 40)
        #expect(afterwards.recent >= store.recentLedger.count)
        #expect(try await store.count("ledger") == 40)
        // The recent rows are in arrival order: the latest key has the highest seq.
        let newest = try await store.database.read { db in try Data.fetchOne(db, sql: "SELECT key FROM ledger_recent ORDER BY seq DESC LIMIT 1") }
        #expect(newest == store.keyedHash.ledgerKey("m:test:m-39"))
        // Every key is a duplicate, wherever it is, and a batch holding old and new keys applies the new ones only.
        let again = try (0..<42).map { try h.plan(registration("c\($0)"), id: "m-\($0)") }
        #expect(try await store.apply(again, now: StoreHarness.t0) == Array(repeating: .duplicate, count: 40) + [.applied(notes: []), .applied(notes: [])])
        #expect(try await store.count("contacts") == 42)
        #expect(try await store.count("ledger") == 42)
        // A reopened store reads the recent keys from the table, and still knows every key.
        try store.close()
        store = try SQLiteCRMStore(path: path, recentLedgerLimit: 5)
        let third = try (0..<43).map { try h.plan(registration("c\($0)"), id: "m-\($0)") }
        #expect(try await store.apply(third, now: StoreHarness.t0) == Array(repeating: .duplicate, count: 42) + [.applied(notes: [])])
        #expect(store.recentLedger.loads.load(ordering: .relaxed) == 1)
        // Pruning forgets keys in both tables (it counts rows), and the map with them.
        #expect(try await store.pruneLedger(before: StoreHarness.t0.adding(1, .minutes)) >= 43)
        #expect(try await Self.tables(store) == (main: 0, recent: 0))
        #expect(try await store.apply([try h.plan(registration("c0"), id: "m-0")], now: StoreHarness.t0) == [.applied(notes: [])])
        try store.close()
    }

    /// Rounds over buckets of many keys each, while a second connection writes now and then (the keys are read again
    /// in the middle of a round) and every batch brings old messages again: each old one is a duplicate, each new one
    /// applies, and every key ends up in exactly one of memory and `ledger`, or both.
    @Test func roundsOverFullBucketsKeepEveryKey() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let (store, other) = try Self.twoStores(h, "full-buckets", limits: (1_500, 1_500))
        defer { Self.close(store, other) }
        var generator = SplitMix64(seed: 3)
        var sent = 0
        for batch in 0..<40 {
            let writer = batch % 7 == 6 ? other : store
            let old = (0..<min(sent, 20)).map { _ in Int.random(in: 0..<sent, using: &generator) }
            let events = try (old + Array(sent..<sent + 100)).map { try h.plan(registration("c\($0)"), id: "m-\($0)") }
            let outcomes = try await writer.apply(events, now: StoreHarness.t0)
            #expect(outcomes == Array(repeating: .duplicate, count: old.count) + Array(repeating: .applied(notes: []), count: 100), "batch \(batch)")
            sent += 100
        }
        // At least one whole round (two in each of 15 runs, but how long a round lasts depends on where the keys fall),
        // and the other connection's rows read five times, in the middle of rounds.
        #expect(store.recentLedger.mergeRounds.load(ordering: .relaxed) >= 1)
        #expect(store.recentLedger.newRowReadings.load(ordering: .relaxed) >= 5)
        #expect(try await store.count("ledger") == sent)
        let every = try (0..<sent).map { try h.plan(registration("c\($0)"), id: "m-\($0)") }
        #expect(try await store.apply(every, now: StoreHarness.t0) == Array(repeating: .duplicate, count: sent))
        #expect(try await other.apply(every, now: StoreHarness.t0) == Array(repeating: .duplicate, count: sent))
    }

    /// A key recorded again (a sliding window) gets a row of its own; its latest time counts, in memory and after a
    /// reopening.
    @Test func aKeyRecordedAgainKeepsItsLatestTime() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let path = Self.path(in: h, "window")
        var store = try SQLiteCRMStore(path: path, recentLedgerLimit: 1_000)
        let t0 = StoreHarness.t0
        func at(_ seconds: Int64) -> Timestamp { Self.at(seconds) }
        func event(_ window: Timestamp) throws -> PlannedEvent { try Self.windowed(h, since: window) }
        #expect(try await store.apply([try event(at(-60))], now: t0) == [.applied(notes: [])])
        // Within the window of the first time: a duplicate, and the window now runs from t0 + 30 s.
        #expect(try await store.apply([try event(at(-60))], now: at(30)) == [.duplicate])
        let rows = try await store.database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM ledger_recent") }
        #expect(rows == 2)
        // A window that starts after t0 but before t0 + 30 s finds the second time only.
        try store.close()
        store = try SQLiteCRMStore(path: path, recentLedgerLimit: 1_000)
        #expect(try await store.apply([try event(at(10))], now: at(40)) == [.duplicate])
        #expect(try await store.apply([try event(at(50))], now: at(60)) == [.applied(notes: [])])
        try store.close()
    }

    /// Two stores on one file (the daemon and `crm-ingest ingest`): each sees the keys the other recorded, merge
    /// rounds included, and every message is applied once.
    @Test func keysRecordedByAnotherConnectionAreSeen() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let (first, second) = try Self.twoStores(h, "two-writers", limits: (3, 3))
        defer { Self.close(first, second) }
        // Both have read the table before the other writes.
        #expect(try await first.apply([try h.plan(registration("a"), id: "a")], now: StoreHarness.t0) == [.applied(notes: [])])
        #expect(try await second.apply([try h.plan(registration("a"), id: "a")], now: StoreHarness.t0) == [.duplicate])
        // Then they take turns with the same messages: each message applies in whichever store gets it first.
        var applied = 0
        for index in 0..<30 {
            let (one, other) = index % 2 == 0 ? (first, second) : (second, first)
            let event = try h.plan(registration("c\(index)"), id: "m-\(index)")
            let outcome = try await one.apply([event], now: StoreHarness.t0)
            if outcome == [.applied(notes: [])] { applied += 1 }
            #expect(try await other.apply([event], now: StoreHarness.t0) == [.duplicate])
        }
        #expect(applied == 30)
        #expect(try await first.count("contacts") == 31)
        #expect(try await first.count("ledger") == 31)
        #expect(first.recentLedger.mergeRounds.load(ordering: .relaxed) + second.recentLedger.mergeRounds.load(ordering: .relaxed) >= 3)
        #expect(try await Self.tables(first).main >= 3)
    }

    /// Two writers taking turns, each reading the keys again before every transaction: rounds and the deletion of
    /// merged rows go on across those readings, so `ledger_recent` stays small instead of growing with every
    /// transaction.
    @Test func roundsGoOnWhileTwoWritersTakeTurns() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let (first, second) = try Self.twoStores(h, "turns", limits: (4, 4))
        defer { Self.close(first, second) }
        for index in 0..<200 {
            let store = index % 2 == 0 ? first : second
            #expect(try await store.apply([try h.plan(registration("c\(index)"), id: "m-\(index)")], now: StoreHarness.t0) == [.applied(notes: [])])
        }
        // Each transaction read the other's new rows, never the whole table again.
        #expect(first.recentLedger.newRowReadings.load(ordering: .relaxed) >= 99)
        #expect(first.recentLedger.loads.load(ordering: .relaxed) == 1)
        #expect(try await first.count("ledger") == 200)
        let tables = try await Self.tables(first)
        #expect(tables.recent <= 24)
        #expect(tables.main >= 176)
        // Every message is still known to both.
        let again = try (0..<200).map { try h.plan(registration("c\($0)"), id: "m-\($0)") }
        #expect(try await first.apply(again, now: StoreHarness.t0) == Array(repeating: .duplicate, count: 200))
        #expect(try await second.apply(again, now: StoreHarness.t0) == Array(repeating: .duplicate, count: 200))
    }

    /// A key recorded again (a sliding window) after a round took its older time keeps its newer time: the round
    /// moves the older one into `ledger`, and the map must not forget the newer.
    @Test func aKeyRecordedAgainDuringARoundKeepsItsNewerTime() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let path = Self.path(in: h, "round-window")
        let store = try SQLiteCRMStore(path: path, recentLedgerLimit: 3)
        defer { try? store.close() }
        func at(_ seconds: Int64) -> Timestamp { Self.at(seconds) }
        func windowed(since: Timestamp) throws -> PlannedEvent { try Self.windowed(h, since: since) }
        #expect(try await store.apply([try windowed(since: at(-1))], now: at(0)) == [.applied(notes: [])])
        // Every second the key comes again within a window that starts half a second before its previous time, and
        // a new message keeps the rounds going: each time it is a duplicate only if its latest time was kept.
        for second in 1...40 {
            let outcomes = try await store.apply(
                [try windowed(since: Timestamp(microsecondsSinceEpoch: at(Int64(second - 1)).microsecondsSinceEpoch - 500_000)),
                 try h.plan(registration("c\(second)"), id: "m-\(second)")],
                now: at(Int64(second))
            )
            #expect(outcomes == [.duplicate, .applied(notes: [])], "second \(second)")
        }
        #expect(store.recentLedger.mergeRounds.load(ordering: .relaxed) >= 5)
    }

    /// The map is read once: the store's own commits and reads, and passive checkpoints by another connection (as
    /// `WALCheckpointer` runs them), do not make it read the table again. (A checkpoint that restarts the WAL from
    /// another connection does: SQLite then counts the file as changed. Nothing of ours runs one.)
    @Test func theMapIsReadOnceWhileNobodyElseWrites() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let path = Self.path(in: h, "loads")
        let store = try SQLiteCRMStore(path: path, recentLedgerLimit: 4)
        defer { try? store.close() }
        let side = try DatabaseQueue(path: path)
        defer { try? side.close() }
        for index in 0..<20 {
            _ = try await store.apply([try h.plan(registration("c\(index)"), id: "m-\(index)")], now: StoreHarness.t0)
            _ = try await store.contact("c\(index)", list: nil)
            if index % 5 == 4 {
                _ = try await side.writeWithoutTransaction { db in try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(PASSIVE)") }
                _ = try await side.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM ledger_recent") }
            }
        }
        #expect(try await store.count("contacts") == 20)
        #expect(store.recentLedger.loads.load(ordering: .relaxed) == 1)
        // A commit by the other connection is noticed: the rows it added are read.
        try await side.write { db in try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('test', x'00')") }
        _ = try await store.apply([try h.plan(registration("c20"), id: "m-20")], now: StoreHarness.t0)
        #expect(store.recentLedger.newRowReadings.load(ordering: .relaxed) == 1)
        #expect(store.recentLedger.loads.load(ordering: .relaxed) == 1)
    }

    /// Another connection that writes (a `crm-ingest ingest` beside the daemon) costs a reading of its new rows, not of
    /// the whole table: its keys are duplicates here at once, even those it merged into `ledger` and deleted from
    /// `ledger_recent` between two of our transactions, and ours are duplicates there.
    @Test func anotherConnectionsNewRowsAreReadAlone() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let (store, other) = try Self.twoStores(h, "new-rows", limits: (1_000, 5))
        defer { Self.close(store, other) }
        func events(_ range: Range<Int>) throws -> [PlannedEvent] { try range.map { try h.plan(registration("c\($0)"), id: "m-\($0)") } }
        #expect(try await store.apply(events(0..<50), now: StoreHarness.t0) == Array(repeating: .applied(notes: []), count: 50))
        // The other connection's small limit makes it merge its keys into `ledger` and delete their rows, in
        // transactions of its own while this store waits.
        for start in stride(from: 50, to: 170, by: 4) {
            #expect(try await other.apply(events(start..<start + 4), now: StoreHarness.t0) == Array(repeating: .applied(notes: []), count: 4))
        }
        #expect(other.recentLedger.mergeRounds.load(ordering: .relaxed) >= 2)
        let rows = try await store.database.read { db in try Int64.fetchAll(db, sql: "SELECT seq FROM ledger_recent WHERE seq > 50") }
        #expect(rows.count < 120, "the other connection deleted rows it added, before this store read them")
        // Every key of both is a duplicate here, and a new one applies.
        #expect(try await store.apply(events(0..<171), now: StoreHarness.t0) == Array(repeating: .duplicate, count: 170) + [.applied(notes: [])])
        #expect(store.recentLedger.loads.load(ordering: .relaxed) == 1)
        #expect(store.recentLedger.newRowReadings.load(ordering: .relaxed) == 1)
        #expect(try await other.apply(events(0..<171), now: StoreHarness.t0) == Array(repeating: .duplicate, count: 171))
    }

    /// Pruning by another connection makes this one read the keys again whole: a pruned key held in memory would
    /// otherwise stay a duplicate here (and a round would move it back into `ledger`).
    @Test func pruningByAnotherConnectionIsReadWhole() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let (store, other) = try Self.twoStores(h, "pruned-elsewhere", limits: (1_000, 1_000))
        defer { Self.close(store, other) }
        let old = try (0..<10).map { try h.plan(registration("c\($0)"), id: "m-\($0)") }
        #expect(try await store.apply(old, now: StoreHarness.t0) == Array(repeating: .applied(notes: []), count: 10))
        #expect(try await other.pruneLedger(before: StoreHarness.t0.adding(1, .minutes)) == 10)
        // The same messages again are new: nothing remembers them.
        #expect(try await store.apply(old, now: StoreHarness.t0.adding(2, .minutes)) == Array(repeating: .applied(notes: []), count: 10))
        #expect(store.recentLedger.loads.load(ordering: .relaxed) == 2)
        #expect(store.recentLedger.newRowReadings.load(ordering: .relaxed) == 0)
        // A pruning that deletes nothing is not counted: the next reading is of new rows only.
        #expect(try await other.pruneLedger(before: StoreHarness.t0) == 0)
        _ = try await other.apply([try h.plan(registration("c10"), id: "m-10")], now: StoreHarness.t0.adding(2, .minutes))
        #expect(try await store.apply([try h.plan(registration("c10"), id: "m-10")], now: StoreHarness.t0.adding(2, .minutes)) == [.duplicate])
        #expect(store.recentLedger.loads.load(ordering: .relaxed) == 2)
        #expect(store.recentLedger.newRowReadings.load(ordering: .relaxed) == 1)
    }

    /// A transaction's rows go to `ledger_recent` together at its end, several to a statement: every event's row,
    /// in order, numbered on from the table's highest `seq`, and `sqlite_sequence` keeps the highest.
    @Test func aTransactionsRowsAreAppendedTogetherInOrder() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let path = Self.path(in: h, "append")
        var store = try SQLiteCRMStore(path: path, recentLedgerLimit: 1_000)
        let first = try h.plan(registration("c0"), id: "m-0")
        _ = try await store.apply([first], now: StoreHarness.t0)
        let events = try (1...70).map { try h.plan(registration("c\($0)"), id: "m-\($0)") }
        #expect(try await store.apply(events, now: StoreHarness.t0) == Array(repeating: .applied(notes: []), count: 70))
        let expected = ([first] + events).map { store.keyedHash.ledgerKey($0.key.value) }
        let (rows, highest) = try await store.database.read { db in
            (try Row.fetchAll(db, sql: "SELECT seq, key FROM ledger_recent ORDER BY seq").map { ($0[0] as Int64, $0[1] as Data) },
             try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'ledger_recent'"))
        }
        #expect(rows.map(\.0) == Array(1...71))
        #expect(rows.map(\.1) == expected)
        #expect(highest == 71)
        try store.close()
        store = try SQLiteCRMStore(path: path, recentLedgerLimit: 1_000)
        defer { try? store.close() }
        #expect(try await store.apply([first] + events, now: StoreHarness.t0) == Array(repeating: .duplicate, count: 71))
    }

    /// An event rolled back to its savepoint takes the keys it recorded with it, and their rows and `seq` numbers;
    /// other events' keys stay, and the next row takes the next number (no gap another writer could fill).
    @Test func anAbandonedEventForgetsItsKeys() {
        func key(_ byte: UInt8) -> LedgerKey { [UInt8](repeating: byte, count: 16).withUnsafeBytes { LedgerKey(digest: $0) } }
        func rows(_ transaction: LedgerTransaction) -> [String] { transaction.changes.rows.map { "\($0.seq) \($0.key.low & 0xFF) \($0.processedAt)" } }
        var transaction = LedgerTransaction(entries: RecentKeys([(key(1), 10)]), lastSeq: 1)
        transaction.beginEvent()
        transaction.record(key(2), processedAt: 20)
        transaction.endEvent()
        transaction.beginEvent()
        transaction.record(key(1), processedAt: 30)
        transaction.record(key(3), processedAt: 30)
        #expect(transaction.processedAt(key(1)) == 30)
        #expect(rows(transaction) == ["2 2 20", "3 1 30", "4 3 30"])
        transaction.abandonEvent()
        #expect(transaction.processedAt(key(1)) == 10)
        #expect(transaction.processedAt(key(2)) == 20)
        #expect(transaction.processedAt(key(3)) == nil)
        #expect(transaction.changes.entries == [key(2): 20])
        #expect(rows(transaction) == ["2 2 20"])
        #expect(transaction.changes.lastSeq == 2)
        transaction.beginEvent()
        transaction.record(key(4), processedAt: 40)
        transaction.endEvent()
        #expect(rows(transaction) == ["2 2 20", "3 4 40"])
    }

    /// A sweep hands out the keys in key order, a step at a time, and forgets each step's keys.
    @Test func aSweepHandsOutTheKeysInOrderAndForgetsThem() {
        let entries = Self.timedKeys(2_000)
        var keys = RecentKeys(entries.map { ($0.key, $0.value) })
        #expect(keys.count == 2_000)
        #expect(keys.buckets.allSatisfy { bucket in zip(bucket, bucket.dropFirst()).allSatisfy { $0.key < $1.key } })
        var handedOut: [LedgerKey] = []
        var bucket = 0
        var steps = 0
        while bucket < 256 {
            let step = keys.step(fromBucket: bucket, count: 37)
            let taken = keys.entries(in: step)
            #expect(taken.count == 37 || step.nextBucket == 256)
            #expect(taken.allSatisfy { entries[$0.key] == $0.processedAt })
            handedOut += taken.map(\.key)
            keys.remove(step)
            bucket = step.nextBucket
            steps += 1
        }
        #expect(steps == (2_000 + 36) / 37)
        #expect(handedOut == entries.keys.sorted())
        #expect(keys.count == 0)
    }

    /// Keys recorded while a sweep goes on are either swept with the rest or kept for the next one; none is lost,
    /// and no key held when the sweep started is skipped.
    @Test func keysRecordedDuringASweepAreSweptOrKept() {
        let entries = Self.timedKeys(2_000)
        var keys = RecentKeys(entries.map { ($0.key, $0.value) })
        let late = Self.randomKeys(50, seed: 2).map { LedgerKey(stored: $0)! }
        var handedOut: [LedgerKey: Int64] = [:]
        var bucket = 0
        var steps = 0
        while bucket < 256 {
            let step = keys.step(fromBucket: bucket, count: 23)
            for entry in keys.entries(in: step) {
                #expect(handedOut.updateValue(entry.processedAt, forKey: entry.key) == nil)
            }
            keys.remove(step)
            bucket = step.nextBucket
            if steps < late.count { keys.record(late[steps], processedAt: 5_000) }
            steps += 1
        }
        #expect(entries.allSatisfy { handedOut[$0.key] == $0.value })
        let kept = late.filter { handedOut[$0] == nil }
        #expect(late.filter { handedOut[$0] != nil }.allSatisfy { handedOut[$0] == 5_000 })
        #expect(keys.count == kept.count)
        #expect(kept.allSatisfy { keys[$0] == 5_000 })
        #expect(steps > late.count)
        #expect(!kept.isEmpty && kept.count < late.count)
    }

    /// The search that starts where a uniform key should be finds the same place as a plain binary search, in
    /// buckets that are uniform, crowded into a narrow range (its guesses all wrong), or half swept by a merge round;
    /// and keys recorded in random order stay sorted and found.
    @Test func theSearchFindsWhatABinarySearchFinds() {
        func lowerBound(_ bucket: [RecentKeys.Entry], _ key: LedgerKey) -> Int {
            bucket.firstIndex { !($0.key < key) } ?? bucket.count
        }
        func check(_ bucket: [RecentKeys.Entry], _ probes: [LedgerKey]) -> Bool {
            probes.allSatisfy { key in
                let (found, index) = RecentKeys.search(bucket, key)
                return index == lowerBound(bucket, key) && found == bucket.contains { $0.key == key }
            }
        }
        var generator = SplitMix64(seed: 9)
        func key(_ high: UInt64) -> LedgerKey {
            withUnsafeBytes(of: (high.bigEndian, UInt64.random(in: 0...UInt64.max, using: &generator).bigEndian)) { LedgerKey(digest: $0) }
        }
        let uniform = (0..<600).map { _ in key(0x42 << 56 | UInt64.random(in: 0...(1 << 56 - 1), using: &generator)) }
        let crowdedLow = (0..<600).map { _ in key(0x42 << 56 | UInt64.random(in: 0...1_000, using: &generator)) }
        let crowdedHigh = (0..<600).map { _ in key(0x42 << 56 | (1 << 56 - 1) - UInt64.random(in: 0...1_000, using: &generator)) }
        let absent = (0..<300).map { _ in key(0x42 << 56 | UInt64.random(in: 0...(1 << 56 - 1), using: &generator)) }
            + [key(0x42 << 56), key(0x42 << 56 | (1 << 56 - 1))]
        for keys in [uniform, crowdedLow, crowdedHigh, Array(uniform.prefix(1)), Array(uniform.prefix(2))] {
            let bucket = keys.sorted().map { (key: $0, processedAt: Int64(1)) }
            #expect(check(bucket, keys + absent + crowdedLow.prefix(50) + crowdedHigh.prefix(50)))
            // The front of the bucket taken by a sweep: what is left covers only the upper part of its range.
            let swept = Array(bucket.dropFirst(bucket.count * 2 / 3))
            #expect(check(swept, keys + absent))
        }
        #expect(RecentKeys.search([], key(0x42 << 56)) == (false, 0))
        var recorded = RecentKeys()
        for (index, key) in (uniform + crowdedLow).enumerated() { recorded.record(key, processedAt: Int64(index)) }
        let bucket = recorded.buckets[0x42]
        #expect(bucket.count == 1_200)
        #expect(zip(bucket, bucket.dropFirst()).allSatisfy { $0.key < $1.key })
        #expect((uniform + crowdedLow).enumerated().allSatisfy { recorded[$0.element] == Int64($0.offset) })
    }

    /// Keys read from the table twice keep their latest time, and a key recorded again keeps the later of its times.
    @Test func keysKeepTheirLatestTime() {
        func key(_ byte: UInt8) -> LedgerKey { [UInt8](repeating: byte, count: 16).withUnsafeBytes { LedgerKey(digest: $0) } }
        var keys = RecentKeys([(key(1), 10), (key(2), 5), (key(1), 30), (key(1), 20)])
        #expect(keys.count == 2)
        #expect(keys[key(1)] == 30)
        #expect(keys[key(2)] == 5)
        #expect(keys[key(3)] == nil)
        keys.record(key(2), processedAt: 4)
        keys.record(key(3), processedAt: 7)
        #expect(keys[key(2)] == 5)
        #expect(keys[key(3)] == 7)
        #expect(keys.count == 3)
    }

    /// Keys sort as SQLite sorts their BLOBs, so a merge round inserts into `ledger` in its key order.
    @Test func keysSortAsTheirBytes() throws {
        let blobs = Self.randomKeys(500)
            + [Data(repeating: 0, count: 16), Data(repeating: 0xFF, count: 16), Data([0x80] + [UInt8](repeating: 0, count: 15))]
        let keys = blobs.map { LedgerKey(stored: $0)! }
        #expect(keys.sorted().map(\.data) == blobs.sorted { $0.lexicographicallyPrecedes($1) })
        #expect(LedgerKey(stored: Data(count: 15)) == nil)
    }

    /// Keys hash by their first word only (they are keyed hashes): keys that share it stay distinct.
    @Test func keysSharingTheirFirstWordStayDistinct() {
        var map: [LedgerKey: Int64] = [:]
        for low in 0..<1_000 as Range<UInt64> {
            let key = withUnsafeBytes(of: (UInt64(7).bigEndian, low.bigEndian)) { LedgerKey(digest: $0) }
            map[key] = Int64(low)
        }
        #expect(map.count == 1_000)
        let key = withUnsafeBytes(of: (UInt64(7).bigEndian, UInt64(500).bigEndian)) { LedgerKey(digest: $0) }
        #expect(map[key] == 500)
    }
}
