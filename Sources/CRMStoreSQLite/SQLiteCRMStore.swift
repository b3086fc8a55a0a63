import CRMCore
import CSQLiteTuning
import CoreMetrics
import Crypto
import Foundation
import GRDB
import Logging
import Synchronization

/// The embedded CRM store on SQLite (through GRDB).
///
/// One writer connection, WAL journal, `secure_delete` on (erased values are overwritten in the file, not just
/// unlinked). `apply` runs a batch as one transaction with a savepoint per event, on GRDB's own serial queue,
/// never on Swift's cooperative pool.
public final class SQLiteCRMStore: CRMStore, Sendable {
    let database: DatabaseQueue
    let tombstoneKey: SymmetricKey
    let keyedHash: KeyedHash
    private let groupCommit: GroupCommit
    /// The keys of `ledger_recent`, in memory (the writer's).
    let recentLedger: RecentLedger
    private let checkpointer: WALCheckpointer
    let counters = StoreCounters()
    public let path: String

    /// The page size of a database file this store creates.
    public static let pageSize = 4096

    /// SQLite's process-wide settings, applied once, before the process's first connection (`CSQLiteTuning`): no
    /// memory statistics, whose mutex every SQLite allocation took (3% of `crm-ingest ingest`'s CPU). Another
    /// connection opened earlier in the process (by a test, say) makes it a no-op.
    static let processSettings: Int32 = crm_sqlite_disable_memory_statistics()

    /// Keys `ledger_recent` holds before a merge round moves them into `ledger` (see `RecentLedger`). Each
    /// transaction's merge step writes about its events × `ledger`'s pages ÷ this many pages of `ledger`; each key
    /// held takes 24 bytes and more (about 4 MB at 100,000; Docs/STORE.md).
    public static let defaultRecentLedgerLimit = 100_000

    /// How the writer waits for a write lock another process holds (`crm-ingest ingest` beside the daemon), up to
    /// the busy timeout. SQLite's lock is not fair: when both writers wait, the one that tries first after the
    /// release gets it.
    public enum LockWait: Sendable {
        /// Tries every millisecond: the daemon, whose events wait behind the lock.
        case everyMillisecond
        /// SQLite's own back-off (tries after 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, then every 100 ms): a bulk
        /// load, which then lets a waiting daemon in first, and waits out several of its transactions.
        case backingOff

        func busyMode(timeoutMilliseconds: Int) -> Database.BusyMode {
            switch self {
            case .everyMillisecond:
                let waiting = WaitStart()
                let timeout = Duration.milliseconds(timeoutMilliseconds)
                return .callback { tries in
                    // SQLite counts the calls of one wait from 0; a connection waits for one lock at a time.
                    guard waiting.elapsed(restarting: tries == 0) < timeout else { return false }
                    usleep(1_000)
                    return true
                }
            case .backingOff:
                return .timeout(Double(timeoutMilliseconds) / 1000)
            }
        }

        /// When the connection's current wait for the lock started.
        private final class WaitStart: Sendable {
            private let started = Mutex(ContinuousClock.now)

            func elapsed(restarting: Bool) -> Duration {
                started.withLock { started in
                    if restarting { started = .now }
                    return started.duration(to: .now)
                }
            }
        }
    }

    /// Opens (creating if needed) the database file and applies pending migrations. `commitInterval`: the least
    /// time from the start of one transaction to the start of the next (see `GroupCommit`). `metrics` receives
    /// the writer's metrics (`TransactionMetrics`); the process's bootstrapped factory by default.
    public init(
        path: String, busyTimeoutMilliseconds: Int = 5_000, lockWait: LockWait = .everyMillisecond, durability: Durability = .full,
        cacheBytes: Int = 16 << 20,
        recentLedgerLimit: Int = SQLiteCRMStore.defaultRecentLedgerLimit, commitInterval: Duration = .zero,
        logger: Logger = Logger(label: "crm-ingest.sqlite", factory: { _ in SwiftLogNoOpLogHandler() }),
        metrics: any MetricsFactory = MetricsSystem.factory
    ) throws(StoreError) {
        self.path = path
        _ = Self.processSettings
        var configuration = Configuration()
        // Not `configuration.journalMode = .wal`: GRDB then sets `synchronous = NORMAL` after `prepareDatabase`,
        // silently overriding the durability chosen below. WAL is switched on here instead.
        configuration.busyMode = lockWait.busyMode(timeoutMilliseconds: busyTimeoutMilliseconds)
        configuration.label = "crm-ingest.sqlite"
        configuration.prepareDatabase { db in
            // Pages of 4 KiB for a new file (an existing one keeps its size: WAL files cannot change it). Most
            // transactions are small, and write whole pages at a few places of each tree (the ends where new rows go,
            // the recent ledger, the merge step), so smaller pages mean fewer bytes written and checksummed per
            // commit. Measured against 8 KiB (Docs/BENCHMARKS.md, 2026-12-06 late evening): 12% less daemon CPU at
            // 19,000 events/s, 9% less per HTTP request, RabbitMQ drains unchanged, `crm-ingest ingest` 10% slower.
            try db.execute(sql: "PRAGMA page_size = \(SQLiteCRMStore.pageSize)")
            // Switching a new file to WAL takes an exclusive lock, and SQLite answers SQLITE_BUSY at once, without
            // the busy handler, while another connection is switching it too (two processes opening a new file):
            // wait a little and ask again.
            var journalMode: String?
            for attempt in 1... {
                do {
                    journalMode = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                    break
                } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && attempt < 20 {
                    Thread.sleep(forTimeInterval: 0.02 * Double(attempt))
                }
            }
            guard journalMode == "wal" else {
                throw StoreError(.unavailable, "SQLite refused the WAL journal (journal_mode is \(journalMode ?? "unknown"))")
            }
            // Erased data is overwritten with zeros, so anonymization leaves no trace in the file.
            try db.execute(sql: "PRAGMA secure_delete = ON")
            // The page cache, in KiB (a negative cache_size). 16 MiB by default: in A/B runs it drained 5-8% faster
            // than 4 MiB, which keeps 11-13 MiB less resident (store.sqlite.cache_size trades one for the other).
            try db.execute(sql: "PRAGMA cache_size = -\(max(64, cacheBytes / 1024))")
            // The WAL is copied into the database by `WALCheckpointer`, off the commit thread; the writer's own
            // checkpoint (inside the commit that crosses 16 MiB of WAL) then only copies the last frames, and lets
            // the next transaction start the WAL over. The pragma counts pages, of this file's size.
            let pageSize = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \((16 << 20) / max(512, pageSize))")
            // When the WAL restarts from its beginning, a file grown past 64 MiB is cut back to that size.
            try db.execute(sql: "PRAGMA journal_size_limit = 67108864")
            // Sources ack a message once its transaction committed, so "committed" must mean "on disk": FULL syncs
            // the WAL at every commit (once per batch, thanks to group commit). NORMAL survives process crashes
            // but may lose the last commits on power loss, after their messages were acked.
            try db.execute(sql: durability == .full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
        }
        do {
            let folder = (path as NSString).deletingLastPathComponent
            if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
            database = try DatabaseQueue(path: path, configuration: configuration)
            try Self.migrate(database)
            let key = try database.read { db in try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'tombstone_key'") }
            guard let key, key.count == 32 else { throw StoreError(.schema, "the meta table has no tombstone key") }
            tombstoneKey = SymmetricKey(data: key)
            let keyedHash = KeyedHash(key: [UInt8](key))
            self.keyedHash = keyedHash
            let database = database
            let counters = counters
            let recentLedger = RecentLedger(limit: recentLedgerLimit)
            self.recentLedger = recentLedger
            let checkpointer = WALCheckpointer(path: path, busyTimeout: Double(busyTimeoutMilliseconds) / 1000, logger: logger)
            self.checkpointer = checkpointer
            let transactionMetrics = TransactionMetrics(factory: metrics)
            groupCommit = GroupCommit(schedule: CommitSchedule(interval: commitInterval)) { batches, now in
                defer { checkpointer.noteCommit() }
                let started = ContinuousClock.now
                let outcomes = try SQLiteCRMStore.commit(
                    batches, now: now, database: database, keyedHash: keyedHash, recentLedger: recentLedger, counters: counters
                )
                transactionMetrics.record(ContinuousClock.now - started, events: batches.reduce(0) { $0 + $1.events.count })
                return outcomes
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.unavailable, "cannot open SQLite database \(path): \(error)")
        }
    }

    /// Applies pending migrations. Migrating takes the write lock, so the check comes first: a reader
    /// (`contact show`) opens beside a busy writer. Two processes may open a new file at once (a daemon and a
    /// `contact show`); the loser of that race sees a half-created schema or a lock, waits and checks again.
    static func migrate(_ database: DatabaseQueue) throws {
        let migrator = SQLiteSchema.migrator
        var attempt = 0
        while true {
            do {
                let done = try database.inDatabase { db in
                    var completed = false
                    try db.inTransaction(.deferred) {
                        completed = try migrator.hasCompletedMigrations(db)
                        return .commit
                    }
                    return completed
                }
                if !done { try migrator.migrate(database) }
                return
            } catch {
                attempt += 1
                guard attempt < 10 else { throw error }
                Thread.sleep(forTimeInterval: 0.1 * Double(attempt))
            }
        }
    }

    public func close() throws {
        checkpointer.stop()
        try database.close()
    }

    // MARK: Applying events

    /// Applies a batch; batches submitted concurrently share one transaction (see `GroupCommit`). A `.prompt`
    /// batch starts the next transaction without waiting out the commit interval.
    public func apply(_ events: [PlannedEvent], now: Timestamp, timing: CommitTiming) async throws -> [EventOutcome] {
        guard !events.isEmpty else { return [] }
        return try await groupCommit.submit(KeyedBatch(events, keyedHash: keyedHash), now: now, prompt: timing == .prompt)
    }

    /// Batches committed in the order submitted: one group-commit queue takes every batch in order, so a source
    /// may submit its next batch while the last one is in a transaction. The submitter is its group commit's chain.
    public func makeOrderedSubmitter() -> (any OrderedSubmitter)? {
        SQLiteOrderedSubmitter(groupCommit: groupCommit, keyedHash: keyedHash)
    }

    /// One transaction for several batches, each event atomic. Runs on the group-commit queue.
    ///
    /// The transaction runs first without savepoints; if the database refuses one of its events, it is rolled back
    /// and run again with a savepoint per event, so that event alone fails (`EventIsolation`). The recent ledger
    /// keys it recorded reach `recentLedger` once it committed.
    static func commit(
        _ batches: [KeyedBatch], now: Timestamp, database: DatabaseQueue, keyedHash: KeyedHash, recentLedger: RecentLedger,
        counters: StoreCounters
    ) throws -> [[EventOutcome]] {
        do {
            return try commit(batches, now: now, database: database, keyedHash: keyedHash, recentLedger: recentLedger, isolation: .sharedTransaction)
        } catch is SQLiteOperationWriter.EventNeedsSavepoint {
            counters.transactionsRedoneWithSavepoints.add(1, ordering: .relaxed)
            return try commit(batches, now: now, database: database, keyedHash: keyedHash, recentLedger: recentLedger, isolation: .savepointPerEvent)
        }
    }

    private static func commit(
        _ batches: [KeyedBatch], now: Timestamp, database: DatabaseQueue, keyedHash: KeyedHash, recentLedger: RecentLedger,
        isolation: EventIsolation
    ) throws -> [[EventOutcome]] {
        let events = batches.reduce(0) { $0 + $1.events.count }
        let (outcomes, erased, ledgerChanges): ([[EventOutcome]], Bool, LedgerTransaction.Changes)
        do {
            (outcomes, erased, ledgerChanges) = try database.write { db in
                let ((outcomes, erased), changes) = try recentLedger.transaction(db, events: events) { ledger in
                    var writer = try SQLiteOperationWriter(db: db, now: now, keyedHash: keyedHash, ledger: ledger, isolation: isolation)
                    var outcomes: [[EventOutcome]] = []
                    for batch in batches {
                        var batchOutcomes: [EventOutcome] = []
                        batchOutcomes.reserveCapacity(batch.events.count)
                        for (event, ledgerKey) in zip(batch.events, batch.ledgerKeys) {
                            batchOutcomes.append(try writer.applyAtomically(event, ledgerKey: ledgerKey))
                        }
                        outcomes.append(batchOutcomes)
                    }
                    return ((outcomes, writer.erasedPersonalData), writer.ledger.changes)
                }
                return (outcomes, erased, changes)
            }
        } catch let error as SQLiteOperationWriter.EventNeedsSavepoint {
            throw error
        } catch {
            // Whatever the transaction did is rolled back, or, if its commit failed half-way, unknown: the recent
            // keys are read from the table again.
            recentLedger.invalidate()
            throw storeError(error)
        }
        recentLedger.commit(ledgerChanges)
        if erased { foldWALAfterErasure(database) }
        return outcomes
    }

    /// After an erasure the WAL still holds the pages as they were before it: they are folded into the main file and
    /// the WAL emptied. A checkpoint another connection runs at that moment (`WALCheckpointer`'s passive one, every
    /// 100 ms under load) makes the TRUNCATE fail with SQLITE_BUSY or report itself busy, which left the erased
    /// bytes in the WAL (a contract test caught it about once in ten runs); so it is tried again, for up to a second.
    static func foldWALAfterErasure(_ database: DatabaseQueue, attempts: Int = 100) {
        for _ in 0..<attempts {
            let folded: Bool? = try? database.writeWithoutTransaction { db -> Bool in
                // One row: busy (0 when the checkpoint ran to its end), WAL frames, frames checkpointed.
                guard let row = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") else { return false }
                let busy: Int64 = row[0]
                return busy == 0
            }
            if folded == true { return }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    public func pruneLedger(before cutoff: Timestamp) async throws -> Int {
        do {
            return try await database.write { db in
                try db.execute(sql: "DELETE FROM ledger WHERE processed_at < ?", arguments: [cutoff.microsecondsSinceEpoch])
                var removed = db.changesCount
                try db.execute(sql: "DELETE FROM ledger_recent WHERE processed_at < ?", arguments: [cutoff.microsecondsSinceEpoch])
                removed += db.changesCount
                if removed > 0 { try RecentLedger.countPruning(db) }
                recentLedger.invalidate(forgettingRound: true)
                try db.execute(sql: "DELETE FROM incoming_requests WHERE received_at < ?", arguments: [cutoff.microsecondsSinceEpoch])
                return removed
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    static func storeError(_ error: any Error) -> StoreError {
        if let error = error as? StoreError { return error }
        guard let error = error as? DatabaseError else { return StoreError(.unavailable, "\(error)") }
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED: return StoreError(.busy, error.message ?? "database is locked")
        case .SQLITE_IOERR, .SQLITE_FULL, .SQLITE_CANTOPEN: return StoreError(.io, error.message ?? "\(error)")
        case .SQLITE_CONSTRAINT, .SQLITE_MISMATCH, .SQLITE_TOOBIG: return StoreError(.rejected, error.message ?? "\(error)")
        default: return StoreError(.unavailable, "\(error)")
        }
    }

    // MARK: Integrations

    public func incomingRequest(_ eventId: String) async throws -> String? {
        do {
            return try await database.read { db in
                try String.fetchOne(db, sql: "SELECT record FROM incoming_requests WHERE event_id = ?", arguments: [eventId])
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func integrationEndpoint(source: String, proposed: String) async throws -> String {
        let key = "integration_endpoint:" + source
        do {
            return try await database.write { db in
                try db.execute(sql: "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", arguments: [key, Data(proposed.utf8)])
                let stored = try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]) ?? Data(proposed.utf8)
                return String(decoding: stored, as: UTF8.self)
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func ping() async throws {
        do {
            _ = try await database.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
        } catch {
            throw Self.storeError(error)
        }
    }

    // MARK: Reading

    public func contact(_ contactId: String, list: Int?) async throws -> ContactLookupResult {
        let hash = keyedHash.hash(contactId)
        do {
            return try await database.read { db in
                if try Bool.fetchOne(db, sql: "SELECT 1 FROM tombstones WHERE contact_hash = ?", arguments: [hash]) == true {
                    return .anonymized
                }
                var lists = try Int.fetchAll(db.cachedStatement(sql: SQLiteOperationWriter.listsOfContactSQL), arguments: [contactId])
                if let list { lists = lists.filter { $0 == list } }
                guard let chosen = lists.first else { return .notFound }
                guard lists.count == 1 else { return .inSeveralLists(lists) }
                return .found(try Self.snapshot(db, contactId: contactId, list: chosen))
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    static func snapshot(_ db: Database, contactId: String, list: Int) throws -> ContactSnapshot {
        let row = try Row.fetchOne(
            db, sql: "SELECT email_subscribed, mobile_subscribed, blocked_until, email_unsubscribe_reason FROM contacts WHERE list_id = ? AND contact_id = ?",
            arguments: [list, contactId]
        )
        var snapshot = ContactSnapshot(contactId: contactId, list: list)
        if let row {
            snapshot.emailSubscribed = row["email_subscribed"]
            snapshot.mobileSubscribed = row["mobile_subscribed"]
            snapshot.blockedUntil = (row["blocked_until"] as Int64?).map { Timestamp(microsecondsSinceEpoch: $0) }
            snapshot.emailUnsubscribeReason = row["email_unsubscribe_reason"]
        }
        snapshot.actions = try Row.fetchAll(
            db, sql: """
                SELECT action_key, action_type, campaign, action_page, fields, occurred_at FROM contact_actions
                WHERE list_id = ? AND contact_id = ? ORDER BY occurred_at, action_key
                """, arguments: [list, contactId]
        ).map { row in
            ActionRow(key: row["action_key"], actionType: row["action_type"], campaign: row["campaign"], actionPage: row["action_page"],
                      fieldsJSON: row["fields"], occurredAt: Timestamp(microsecondsSinceEpoch: row["occurred_at"]))
        }
        snapshot.attributes = try Row.fetchAll(
            db, sql: "SELECT name, kind, value FROM contact_attributes WHERE list_id = ? AND contact_id = ? ORDER BY name",
            arguments: [list, contactId]
        ).map { AttributeValue(name: $0["name"], value: AttributeEncoding.decode(kind: $0["kind"], value: $0["value"])) }
        for consent in try Row.fetchAll(
            db, sql: "SELECT channel, consented FROM contact_consents WHERE list_id = ? AND contact_id = ?", arguments: [list, contactId]
        ) {
            if let channel = ConsentChannel(rawValue: consent["channel"]) { snapshot.consents[channel] = consent["consented"] }
        }
        snapshot.purchases = try Row.fetchAll(
            db, sql: """
                SELECT kind, status, amount, currency, transaction_id, vendor, payment_type, occurred_at FROM purchases
                WHERE list_id = ? AND contact_id = ? ORDER BY occurred_at, id
                """, arguments: [list, contactId]
        ).compactMap { row in
            guard let kind = TransactionKind(rawValue: row["kind"]), let status = TransactionStatus(rawValue: row["status"]),
                  case let .success(amount) = DecimalAmount.parse(jsonNumber: row["amount"]) else { return nil }
            return PurchaseRow(
                kind: kind, status: status, amount: amount, currency: row["currency"], transactionId: row["transaction_id"],
                vendor: row["vendor"], paymentType: row["payment_type"],
                occurredAt: Timestamp(microsecondsSinceEpoch: row["occurred_at"])
            )
        }
        snapshot.records = try Row.fetchAll(
            db, sql: "SELECT kind, record_id, event_id FROM linked_records WHERE contact_id = ? ORDER BY kind, record_id", arguments: [contactId]
        ).map { row in
            let kind: String = row["kind"], id: String = row["record_id"], eventId: String? = row["event_id"]
            // Category names come from the latest record of the event the person belongs to.
            let categories = try Row.fetchAll(db, sql: """
                SELECT c.category_id, e.name FROM record_categories c
                LEFT JOIN record_categories e ON e.kind = 'event' AND e.record_id = ? AND e.category_id = c.category_id
                WHERE c.kind = ? AND c.record_id = ? ORDER BY c.category_id
                """, arguments: [eventId, kind, id]).map { ContactRecord.Category(id: $0[0], name: $0[1]) }
            return ContactRecord(kind: kind, id: id, eventId: eventId, categories: categories)
        }
        snapshot.journeys = try Int.fetchAll(
            db, sql: "SELECT journey_id FROM journey_enrollments WHERE contact_id = ? ORDER BY entered_at, journey_id",
            arguments: [contactId]
        )
        return snapshot
    }

    /// Counts rows of a table: for tests and operators' checks. `ledger` counts the keys of both ledger tables
    /// (`RecentLedger`), each once.
    public func count(_ table: String) async throws -> Int {
        let name = table.filter { $0.isLetter || $0 == "_" }
        let sql = name == "ledger"
            ? "SELECT count(*) FROM (SELECT key FROM ledger UNION SELECT key FROM ledger_recent)" : "SELECT count(*) FROM \(name)"
        return try await database.read { db in try Int.fetchOne(db, sql: sql) ?? 0 }
    }
}

/// How far a commit is guaranteed.
public enum Durability: String, Sendable, CaseIterable {
    /// Synced to disk at every commit: survives power loss.
    case full
    /// Survives a crash of the process, not of the machine.
    case normal
}


/// The writer's metrics, per committed transaction (the single writing thread is SQLite's bottleneck):
///
/// - `crm_ingest_store_transaction_seconds{store="sqlite"}`: how long each transaction took, from its first
///   statement to the end of its commit (the WAL synced); `rate(…_sum)` is the share of time the writer is busy.
/// - `crm_ingest_store_transaction_events_total{store="sqlite"}`: the events those transactions held; divided by
///   `…_seconds_count`, the events per transaction.
struct TransactionMetrics: Sendable {
    private let duration: CoreMetrics.Timer
    private let events: Counter

    init(factory: any MetricsFactory) {
        duration = CoreMetrics.Timer(label: "crm_ingest_store_transaction_seconds", dimensions: [("store", "sqlite")], factory: factory)
        events = Counter(label: "crm_ingest_store_transaction_events_total", dimensions: [("store", "sqlite")], factory: factory)
    }

    func record(_ elapsed: Duration, events count: Int) {
        duration.recordNanoseconds(elapsed.totalNanoseconds)
        events.increment(by: count)
    }
}

/// What the store counts about its own work, for tests and diagnostics.
final class StoreCounters: Sendable {
    /// Transactions rolled back because the database refused one of their events, then run again with a
    /// savepoint per event.
    let transactionsRedoneWithSavepoints = Atomic<Int>(0)
}

/// `SQLiteCRMStore.makeOrderedSubmitter`: its identity is its chain in the group commit.
final class SQLiteOrderedSubmitter: OrderedSubmitter {
    private let groupCommit: GroupCommit
    private let keyedHash: KeyedHash

    init(groupCommit: GroupCommit, keyedHash: KeyedHash) {
        self.groupCommit = groupCommit
        self.keyedHash = keyedHash
    }

    func submit(_ events: [PlannedEvent], now: Timestamp) -> PendingBatch {
        guard !events.isEmpty else { return PendingBatch { [] } }
        let outcomes = groupCommit.enqueue(KeyedBatch(events, keyedHash: keyedHash), now: now, prompt: false, chain: ObjectIdentifier(self))
        return PendingBatch { try await outcomes.value() }
    }

    func resume() { groupCommit.mend(ObjectIdentifier(self)) }
}
