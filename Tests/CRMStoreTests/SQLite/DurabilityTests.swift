import CRMCore
import Foundation
import GRDB
import Testing

@testable import CRMStoreSQLite

/// The store's durability settings as SQLite reports them on the writer connection. GRDB's own WAL set-up once
/// overrode `synchronous = FULL` with NORMAL after our configuration ran, so the sources acked events whose
/// commit had not reached the disk; these read the settings back instead of trusting the code that sets them.
@Suite("SQLite durability settings")
struct DurabilityTests {
    private func pragmas(_ durability: Durability) throws -> (journal: String?, synchronous: Int?) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-durability-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path, durability: durability)
        defer { try? store.close() }
        return try store.database.read { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA synchronous"))
        }
    }

    @Test("full durability: WAL journal, synchronous = FULL (2), so a commit is on disk before its ack")
    func full() throws {
        let settings = try pragmas(.full)
        #expect(settings.journal == "wal")
        #expect(settings.synchronous == 2)
    }

    @Test("normal durability: WAL journal, synchronous = NORMAL (1)")
    func normal() throws {
        let settings = try pragmas(.normal)
        #expect(settings.journal == "wal")
        #expect(settings.synchronous == 1)
    }
}

/// The page size of new files, and an old file's kept.
@Suite("SQLite page size")
struct PageSizeTests {
    @Test("a new file gets 4 KiB pages and a 16 MiB automatic checkpoint; an existing file keeps its pages")
    func pageSize() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-pagesize-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let fresh = try SQLiteCRMStore(path: folder.appendingPathComponent("new.sqlite").path)
        let (size, checkpoint) = try fresh.database.read { db in
            (try Int.fetchOne(db, sql: "PRAGMA page_size"), try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint"))
        }
        try fresh.close()
        #expect(size == 4096)
        #expect(checkpoint == 4096)
        // A file made with another page size (8 KiB, as from 2026-12-02 to 2026-12-06, WAL) opens as it is: WAL files
        // cannot change their page size.
        let oldPath = folder.appendingPathComponent("old.sqlite").path
        let old = try DatabaseQueue(path: oldPath)
        try old.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA page_size = 8192")
            _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "CREATE TABLE before_us (x)")
        }
        try old.close()
        let reopened = try SQLiteCRMStore(path: oldPath)
        let (oldSize, oldCheckpoint) = try reopened.database.read { db in
            (try Int.fetchOne(db, sql: "PRAGMA page_size"), try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint"))
        }
        try reopened.close()
        #expect(oldSize == 8192)
        #expect(oldCheckpoint == 2048)
    }
}

/// The WAL is copied into the database file by the store's checkpoint thread, not inside commits.
@Suite("SQLite WAL checkpoints")
struct WALCheckpointTests {
    private func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }

    @Test("committed pages reach the database file although the writer's own checkpoint is far away")
    func checkpointThreadCopiesTheWAL() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let emptySize = fileSize(h.sqlitePath)
        for batch in 0..<5 {
            let events = try (0..<100).map { try h.plan(registration("c\(batch)-\($0)", #"{"firstName":"Ann"}"#), id: "\(batch)-\($0)") }
            _ = try await h.store.apply(events, now: StoreHarness.t0)
        }
        // The writer checkpoints only past 16 MiB of WAL; 500 events write far fewer. Without the
        // checkpoint thread the database file would keep its empty size until the store closes.
        let deadline = ContinuousClock.now + .seconds(10)
        while fileSize(h.sqlitePath) <= emptySize && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(fileSize(h.sqlitePath) > emptySize + 50_000)
        #expect(fileSize(h.sqlitePath + "-wal") < 16 << 20)
        #expect(try await h.count("contacts") == 500)
    }

    @Test("closing the store stops the checkpoint thread and leaves no WAL behind")
    func closeStopsTheThread() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        _ = try await h.store.apply([try h.plan(registration("a"), id: "1")], now: StoreHarness.t0)
        try h.sqliteStore.close()
        // The last connection to close removes the WAL: the checkpoint thread's connection was closed first.
        #expect(!FileManager.default.fileExists(atPath: h.sqlitePath + "-wal"))
    }
}
