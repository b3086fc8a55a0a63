import Foundation
import GRDB
import Synchronization

/// A ledger key (`KeyedHash.ledgerKeyBytes`, 16 bytes) as two words, read big-endian so that comparing keys
/// orders them as SQLite orders the BLOBs (byte by byte).
struct LedgerKey: Hashable, Comparable, Sendable {
    var high: UInt64
    var low: UInt64

    /// The first 16 bytes of a digest.
    init(digest bytes: UnsafeRawBufferPointer) {
        high = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        low = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }

    /// A stored key; nil unless it is 16 bytes.
    init?(stored data: Data) {
        guard data.count == 16 else { return nil }
        self = data.withUnsafeBytes { LedgerKey(digest: $0) }
    }

    /// Calls `body` with the key's 16 bytes (for binding).
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: (high.bigEndian, low.bigEndian)) { try body($0) }
    }

    var data: Data { withBytes { Data($0) } }

    static func < (lhs: LedgerKey, rhs: LedgerKey) -> Bool {
        lhs.high != rhs.high ? lhs.high < rhs.high : lhs.low < rhs.low
    }

    // Hashing. A key is a keyed hash (HMAC-SHA256 under the database's secret): uniform, and no sender can choose
    // one, so its first word is a hash already. SipHash over its 16 bytes, for every lookup in a transaction's
    // dictionary of its new keys (several per event), was 3.4% of the drain's samples. Equality still compares both words.

    func hash(into hasher: inout Hasher) { hasher.combine(high) }

    /// What `Dictionary` and `Set` use: the first word, mixed with the table's own seed.
    func _rawHashValue(seed: Int) -> Int { Int(truncatingIfNeeded: high) ^ seed }
}

/// The keys of `ledger_recent`, kept in memory by the store's writer, so that finding a recent key costs no page
/// of the database and the table itself is written in arrival order.
///
/// The ledger is two tables ([STORE.md](../../Docs/STORE.md#two-tables-ledger_recent-and-ledger-v6-v7)): `ledger`, large
/// and keyed by key, and `ledger_recent`, where new keys are appended (`seq` is its rowid). Ledger keys are keyed
/// hashes: a table keyed by them gets each new key at a random page, so a transaction of 60 events dirtied some 50
/// pages of `ledger_recent` alone, each written whole to the WAL at its commit. Appended, they fill one or two.
///
/// The keys (`RecentKeys`) are held with each one's latest `processed_at`, in key order. Once they number `limit`, a
/// merge round starts: it sweeps them bucket by bucket (`RecentKeys.Step`), and every transaction moves about twice
/// as many as the table grew by since the last step (its own events, and any other writer's rows) into `ledger` and forgets them (they
/// are found in `ledger` from then on; a key recorded again by the same transaction stays, with its newer time). A
/// round writes each page of the large table about once, so the pages a transaction writes to `ledger` are about
/// its events × `ledger`'s pages ÷ `limit`: the larger the limit, the fewer, which is why the keys are held in 24
/// bytes each. Once a round is over, its rows are deleted from `ledger_recent`, again about twice a transaction's
/// events at a time, oldest `seq` first.
///
/// Another connection may write the same file (`crm-ingest ingest` beside the daemon): every transaction first reads
/// `PRAGMA data_version`, which changes when another connection committed, and then reads the rows it appended
/// since the last reading (or the whole table, once another connection pruned: `meta`'s `ledger_prunings`). A round
/// and the deletion of merged rows go on across such readings (so they make progress while two writers take
/// turns); that is safe because `seq` never goes back (`AUTOINCREMENT`): every row numbered at or below a round's
/// `upToSeq` was held when the round started, and is swept before the round ends (a step takes from the front of
/// the round's bucket, so a reading changes nothing for the sweep; keys merged already and read again are merged once
/// more, which changes nothing). Changes reach the keys only once their transaction committed.
final class RecentLedger: Sendable {
    /// Keys `ledger_recent` holds before a merge round starts.
    let limit: Int
    private let state: Mutex<State>
    /// Times the keys were read from the table, whole (for tests and diagnostics).
    let loads = Atomic<Int>(0)
    /// Times only the rows another connection added were read (for tests and diagnostics).
    let newRowReadings = Atomic<Int>(0)
    /// Merge rounds completed (for tests and diagnostics).
    let mergeRounds = Atomic<Int>(0)
    /// The keys of `ledger`, as a Bloom filter: a key it has not seen needs no lookup there.
    let filter: LedgerFilter

    /// A merge round: the rows of `ledger_recent` up to `upToSeq` when it started, and the bucket its sweep of the
    /// keys is in.
    struct Round: Sendable {
        var upToSeq: Int64
        var bucket = 0
    }

    struct State: Sendable {
        /// Each key's latest `processed_at`.
        var entries: RecentKeys
        var lastSeq: Int64 = 0
        /// `PRAGMA data_version` when the keys held were last known to match the table; nil: read the table again,
        /// whole.
        var dataVersion: Int64?
        /// `meta`'s count of prunings at the last reading (`prunings(_:)`).
        var prunings: Int64 = 0
        var round: Round?
        /// Rows up to this `seq` have their keys in `ledger` (a round is over), and may go.
        var mergedThroughSeq: Int64 = 0
        /// Rows up to this `seq` are deleted.
        var deletedThroughSeq: Int64 = 0
        /// `lastSeq` when the last step was sized.
        var seqAtLastUpkeep: Int64 = 0
    }

    /// What a transaction did to the tables beside its own keys: a merge step, a deletion of merged rows.
    struct Upkeep: Sendable {
        /// The sweep's step whose keys moved into `ledger` (`nextBucket` 256: the round is over).
        var step: RecentKeys.Step?
        var deletedThroughSeq: Int64?
    }

    init(limit: Int, filterBits: Int = LedgerFilter.defaultBits) {
        self.limit = max(1, limit)
        state = Mutex(State(entries: RecentKeys(expected: self.limit)))
        filter = LedgerFilter(bits: filterBits)
    }

    /// Keys held (for tests and diagnostics).
    var count: Int { state.withLock { $0.entries.count } }

    /// Runs `body` in the writer's open transaction, handing it the keys as the database has them: read again if
    /// another connection committed since (and the filter's scan started over), a merge round started if the keys are
    /// full, the upkeep run (the round's next step, merged rows deleted) and the filter's next scan step. `body`
    /// returns its result and the keys it recorded (`LedgerTransaction.changes`); this appends their rows to
    /// `ledger_recent` and returns them with the upkeep's, to pass to `commit(_:)` once the transaction committed.
    ///
    /// Call it on the database's writer queue, inside the transaction (pruning, on the same queue, calls
    /// `invalidate()`).
    func transaction<T: Sendable>(
        _ db: Database, events: Int, _ body: (LedgerTransaction) throws -> (T, LedgerTransaction.Changes)
    ) throws -> (T, LedgerTransaction.Changes) {
        try state.withLock { state in
            let version = try Int64.fetchOne(db.cachedStatement(sql: "PRAGMA data_version")) ?? 0
            if state.dataVersion != version {
                let prunings = try Self.prunings(db)
                let pruned = prunings != state.prunings
                if pruned {
                    // A pruning since the last reading (another connection's; ours did this already): a round must
                    // not move pruned keys back into `ledger`, and the filter forgets them.
                    state.round = nil
                    filter.clear()
                }
                if state.dataVersion == nil || pruned {
                    try Self.load(&state, db)
                    loads.add(1, ordering: .relaxed)
                } else {
                    // Another connection only added rows (and perhaps merged and deleted some): its new rows are
                    // enough. Keys it merged and deleted meanwhile are in `ledger`, found there once the filter
                    // has scanned it again (below).
                    try Self.loadNewRows(&state, db)
                    newRowReadings.add(1, ordering: .relaxed)
                }
                state.prunings = prunings
                state.dataVersion = version
                // Another connection may have merged keys into `ledger` too.
                filter.restartScan()
            }
            // A step moves twice what the table grew by since the last one: this transaction's events, or more if
            // another writer added keys meanwhile (its rows count in `seq`, read by `load` or `loadNewRows`).
            let rows = 2 * max(1, events, Int(state.lastSeq - state.seqAtLastUpkeep))
            state.seqAtLastUpkeep = state.lastSeq
            if state.round == nil, state.entries.count >= limit {
                state.round = Round(upToSeq: state.lastSeq)
            }
            let upkeep = try Self.upkeep(state, rows: rows, filter: filter, db)
            // Until the filter has seen all of `ledger`, each transaction reads four times the keys a merge step
            // would move (a sequential read), so it catches up with a large table while the writer is busy; at most
            // `LedgerFilter.maxScanStep`, so a burst from another writer does not stall this transaction.
            try filter.scanStep(db, count: min(4 * rows, LedgerFilter.maxScanStep))
            var (result, changes) = try body(LedgerTransaction(entries: state.entries, lastSeq: state.lastSeq, filter: filter))
            try Self.append(changes.rows, db)
            changes.upkeep = upkeep
            return (result, changes)
        }
    }

    /// Applies a committed transaction's changes to the keys held: the keys its merge step moved are forgotten first, then
    /// the keys it recorded are added (a moved key recorded again stays, with its newer time).
    func commit(_ changes: LedgerTransaction.Changes) {
        state.withLock { state in
            guard state.dataVersion != nil else { return }
            if let step = changes.upkeep.step, var round = state.round {
                // The step was taken from these very keys: nothing changed them between its transaction and now.
                state.entries.remove(step)
                if step.nextBucket == 256 {
                    mergeRounds.add(1, ordering: .relaxed)
                    state.mergedThroughSeq = round.upToSeq
                    state.round = nil
                } else {
                    round.bucket = step.nextBucket
                    state.round = round
                }
            }
            for (key, processedAt) in changes.entries { state.entries.record(key, processedAt: processedAt) }
            state.lastSeq = max(state.lastSeq, changes.lastSeq)
            if let deleted = changes.upkeep.deletedThroughSeq { state.deletedThroughSeq = deleted }
        }
    }

    /// Makes the next transaction read the keys again: after a transaction that failed (its changes are unknown),
    /// or, with `forgettingRound`, after pruning (a round must not move pruned keys back into `ledger`). Call it on
    /// the writer queue.
    func invalidate(forgettingRound: Bool = false) {
        state.withLock { state in
            state.dataVersion = nil
            if forgettingRound {
                state.round = nil
                // Pruned keys stop being "maybe" once the filter is built again.
                filter.clear()
            }
        }
    }

    /// Reads the keys of `ledger_recent` again, into the buckets' own room. A round under way goes on, and rows already merged but not yet
    /// deleted are taken as recent again (a later round moves them once more, which changes nothing).
    private static func load(_ state: inout State, _ db: Database) throws {
        state.lastSeq = max(state.lastSeq, try highestSeq(db))
        let rows = try Row.fetchCursor(db, sql: "SELECT seq, key, processed_at FROM ledger_recent")
        var lastSeq = state.lastSeq
        try state.entries.replace {
            guard let row = try rows.next() else { return nil }
            let (seq, key, processedAt) = try decode(row)
            lastSeq = max(lastSeq, seq)
            return (key, processedAt)
        }
        state.lastSeq = lastSeq
        // The first reading: rows already there are not growth (a round over them goes at the usual pace).
        if state.seqAtLastUpkeep == 0 { state.seqAtLastUpkeep = state.lastSeq }
    }

    /// Reads the rows another connection appended since the last reading (`seq` above `lastSeq`: numbers only grow)
    /// into the keys held, each keeping its latest time. Keys whose rows that connection deleted stay held: they are
    /// in `ledger` with the same or a later time, and a later round of ours moves them once more, which changes
    /// nothing.
    private static func loadNewRows(_ state: inout State, _ db: Database) throws {
        let rows = try Row.fetchCursor(
            db.cachedStatement(sql: "SELECT seq, key, processed_at FROM ledger_recent WHERE seq > ? ORDER BY seq"), arguments: [state.lastSeq]
        )
        var lastSeq = max(state.lastSeq, try highestSeq(db))
        while let row = try rows.next() {
            let (seq, key, processedAt) = try decode(row)
            state.entries.record(key, processedAt: processedAt)
            lastSeq = max(lastSeq, seq)
        }
        state.lastSeq = lastSeq
    }

    /// The highest `seq` `ledger_recent` ever had (`AUTOINCREMENT` keeps it in `sqlite_sequence`, deleted rows too).
    private static func highestSeq(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'ledger_recent'") ?? 0
    }

    /// A row of `SELECT seq, key, processed_at FROM ledger_recent`; a key that is not 16 bytes is corruption.
    private static func decode(_ row: Row) throws -> (seq: Int64, key: LedgerKey, processedAt: Int64) {
        let seq: Int64 = row[0]
        guard let key = LedgerKey(stored: row[1]) else {
            throw DatabaseError(resultCode: .SQLITE_CORRUPT, message: "ledger_recent row \(seq) has a key that is not 16 bytes")
        }
        return (seq, key, row[2])
    }

    /// `meta`'s count of prunings (`SQLiteCRMStore.pruneLedger` adds one whenever it deleted keys); 0 before the first.
    static func prunings(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = 'ledger_prunings'")) ?? 0
    }

    /// Counts a pruning that deleted keys, in the pruning's own transaction: other connections then read the keys
    /// again whole instead of only the rows added since their last reading.
    static func countPruning(_ db: Database) throws {
        try db.execute(sql: """
            INSERT INTO meta (key, value) VALUES ('ledger_prunings', 1)
            ON CONFLICT (key) DO UPDATE SET value = value + 1
            """)
    }

    /// Rows a statement appends at most.
    static let rowsPerInsert = 32

    /// `INSERT INTO ledger_recent` of 1 to `rowsPerInsert` rows.
    private static let insertSQL: [String] = (1...rowsPerInsert).map { count in
        "INSERT INTO ledger_recent (seq, key, processed_at) VALUES " + Array(repeating: "(?, ?, ?)", count: count).joined(separator: ", ")
    }

    /// Appends a transaction's rows to `ledger_recent`, `rowsPerInsert` a statement: each statement on an
    /// `AUTOINCREMENT` table also reads and writes its row of `sqlite_sequence`, and a row a statement cost 7% of
    /// the drain's CPU. A failure here fails the whole transaction (the rows follow
    /// on from the table's highest `seq`, so a clash means the keys held are stale: the next transaction reads it again).
    private static func append(_ rows: [LedgerTransaction.Row], _ db: Database) throws {
        var start = 0
        while start < rows.count {
            let end = min(rows.count, start + rowsPerInsert)
            try HotStatement(db, insertSQL[end - start - 1]).execute { binder in
                for row in rows[start..<end] {
                    binder.bind(row.seq)
                    binder.bind(row.key)
                    binder.bind(row.processedAt)
                }
            }
            start = end
        }
    }

    /// The round's next `rows` keys moved into `ledger`, and up to `rows` merged rows deleted.
    private static func upkeep(_ state: State, rows: Int, filter: LedgerFilter, _ db: Database) throws -> Upkeep {
        var upkeep = Upkeep()
        if let round = state.round {
            let step = state.entries.step(fromBucket: round.bucket, count: rows)
            let insert = try HotStatement(db, """
                INSERT INTO ledger (key, processed_at) VALUES (?, ?)
                ON CONFLICT (key) DO UPDATE SET processed_at = max(processed_at, excluded.processed_at)
                """)
            for (key, processedAt) in state.entries.entries(in: step) {
                // Added before the commit: if the transaction rolls back, the key is only a needless "maybe".
                filter.insert(key)
                try insert.execute {
                    $0.bind(key)
                    $0.bind(processedAt)
                }
            }
            upkeep.step = step
        }
        if state.deletedThroughSeq < state.mergedThroughSeq {
            let through = min(state.mergedThroughSeq, state.deletedThroughSeq + Int64(rows))
            try HotStatement(db, "DELETE FROM ledger_recent WHERE seq > ? AND seq <= ?").execute {
                $0.bind(state.deletedThroughSeq)
                $0.bind(through)
            }
            upkeep.deletedThroughSeq = through
        }
        return upkeep
    }
}

/// One transaction's view of the recent ledger: the keys as committed, and what this transaction added, with an
/// undo log per event so an event rolled back to its savepoint takes its keys with it. The rows it records are
/// appended to `ledger_recent` together, at the end of the transaction (`RecentLedger.transaction`).
struct LedgerTransaction {
    private let committed: RecentKeys
    private let filter: LedgerFilter?
    private var undo: [(key: LedgerKey, previous: Int64?)] = []
    /// Where the current event's rows start, and `lastSeq` before them.
    private var eventStart: (rows: Int, lastSeq: Int64)
    private(set) var changes: Changes

    /// A row of `ledger_recent`.
    typealias Row = (seq: Int64, key: LedgerKey, processedAt: Int64)

    /// What a transaction adds to the keys held once it commits.
    struct Changes: Sendable {
        /// Keys recorded, with their latest `processed_at`.
        var entries: [LedgerKey: Int64] = [:]
        /// The rows for `ledger_recent`, `seq` following on from the table's highest without a gap.
        var rows: [Row] = []
        var lastSeq: Int64
        /// The merge step and deletion it ran.
        var upkeep = RecentLedger.Upkeep()
    }

    init(entries: RecentKeys, lastSeq: Int64, filter: LedgerFilter? = nil) {
        committed = entries
        self.filter = filter
        eventStart = (0, lastSeq)
        changes = Changes(lastSeq: lastSeq)
    }

    /// The key's latest `processed_at` in `ledger_recent`, this transaction's rows included.
    func processedAt(_ key: LedgerKey) -> Int64? {
        changes.entries[key] ?? committed[key]
    }

    /// False when the key is certainly not in `ledger` (`LedgerFilter`); true: look it up there.
    func mayBeInLedger(_ key: LedgerKey) -> Bool {
        filter?.mayContain(key) ?? true
    }

    /// Records `key` with `processed_at`: a row for `ledger_recent`, numbered next.
    mutating func record(_ key: LedgerKey, processedAt: Int64) {
        changes.lastSeq += 1
        changes.rows.append((changes.lastSeq, key, processedAt))
        let previous = changes.entries[key]
        undo.append((key, previous))
        changes.entries[key] = max(processedAt, previous ?? committed[key] ?? .min)
    }

    /// An event starts: its keys can be taken back until `endEvent`.
    mutating func beginEvent() {
        undo.removeAll(keepingCapacity: true)
        eventStart = (changes.rows.count, changes.lastSeq)
    }

    mutating func endEvent() {
        undo.removeAll(keepingCapacity: true)
        eventStart = (changes.rows.count, changes.lastSeq)
    }

    /// The event was rolled back to its savepoint: so are the keys it recorded, and their rows, with their `seq`
    /// numbers (no gap is left: another writer would take the next number, below a merge round's end).
    mutating func abandonEvent() {
        for (key, previous) in undo.reversed() { changes.entries[key] = previous }
        undo.removeAll(keepingCapacity: true)
        changes.rows.removeSubrange(eventStart.rows...)
        changes.lastSeq = eventStart.lastSeq
    }
}

extension HotStatement.Binder {
    mutating func bind(_ key: LedgerKey) {
        key.withBytes { bind(bytes: $0) }
    }
}
