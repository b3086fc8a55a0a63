import CRMCore
import Foundation
import GRDB
import Testing

@testable import CRMStoreSQLite

/// Migration v5 shortened the ledger's keys to 16 bytes and dropped its event type: a database written before it
/// must keep recognizing the messages it processed.
@Suite("SQLite ledger migration")
struct LedgerMigrationTests {
    @Test("a message processed before the compact ledger is still a duplicate after the upgrade")
    func upgradeKeepsDuplicates() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let path = h.folder!.appendingPathComponent("old.sqlite").path
        let event = try h.plan(registration("ann"), id: "abc")

        // A database as version 4 left it: a 32-byte HMAC-SHA256 key and the event type.
        let old = try DatabaseQueue(path: path)
        try SQLiteSchema.migrator.migrate(old, upTo: "v4: linked records")
        try await old.write { db in
            let secret = try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'tombstone_key'")!
            let fullKey = KeyedHash(key: [UInt8](secret)).hash(event.key.value)
            #expect(fullKey.count == 32)
            try db.execute(
                sql: "INSERT INTO ledger (key, event_type, processed_at) VALUES (?, 'USER_REGISTRATION', 1)", arguments: [fullKey]
            )
        }
        try old.close()

        let upgraded = try SQLiteCRMStore(path: path)
        defer { try? upgraded.close() }
        let outcomes = try await upgraded.apply([event, try h.plan(registration("bob"), id: "def")], now: StoreHarness.t0)
        #expect(outcomes == [.duplicate, .applied(notes: [])])
        let keyLengths = try await upgraded.database.read { db in try Int.fetchAll(db, sql: "SELECT length(key) FROM (SELECT key FROM ledger UNION ALL SELECT key FROM ledger_recent) ORDER BY 1") }
        #expect(keyLengths == [16, 16])
        let columns = try await upgraded.database.read { db in try db.columns(in: "ledger").map(\.name) }
        #expect(columns == ["key", "processed_at"])
    }

    /// Migration v7 rewrote `ledger_recent` in arrival order (`seq`): keys recorded before it stay known, in both
    /// ledger tables, and new ones go after them.
    @Test("keys of the recent ledger written before v7 are still duplicates after the upgrade")
    func upgradeKeepsRecentKeys() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let path = h.folder!.appendingPathComponent("v6.sqlite").path
        let recent = try h.plan(registration("ann"), id: "recent")
        let merged = try h.plan(registration("bob"), id: "merged")

        let old = try DatabaseQueue(path: path)
        try SQLiteSchema.migrator.migrate(old, upTo: "v6: recent ledger")
        try await old.write { db in
            let secret = try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'tombstone_key'")!
            let keyedHash = KeyedHash(key: [UInt8](secret))
            try db.execute(sql: "INSERT INTO ledger_recent (key, processed_at) VALUES (?, 2)", arguments: [keyedHash.ledgerKey(recent.key.value)])
            try db.execute(sql: "INSERT INTO ledger (key, processed_at) VALUES (?, 1)", arguments: [keyedHash.ledgerKey(merged.key.value)])
        }
        try old.close()

        let upgraded = try SQLiteCRMStore(path: path)
        defer { try? upgraded.close() }
        let outcomes = try await upgraded.apply([recent, merged, try h.plan(registration("cy"), id: "new")], now: StoreHarness.t0)
        #expect(outcomes == [.duplicate, .duplicate, .applied(notes: [])])
        let columns = try await upgraded.database.read { db in try db.columns(in: "ledger_recent").map(\.name) }
        #expect(columns == ["seq", "key", "processed_at"])
        let order = try await upgraded.database.read { db in try Int64.fetchAll(db, sql: "SELECT processed_at FROM ledger_recent ORDER BY seq") }
        #expect(order == [2, StoreHarness.t0.microsecondsSinceEpoch])
    }
}
