import Foundation
import GRDB

@testable import CRMStoreSQLite

extension StoreHarness {
    /// A store opened on a file of this harness's folder that was first migrated up to `migration` only and given
    /// `rows` (SQL): an older database, which opening the store upgrades.
    func upgradedStore(from migration: String, rows: String) async throws -> SQLiteCRMStore {
        let path = folder!.appendingPathComponent("old-\(UUID().uuidString).sqlite").path
        let old = try DatabaseQueue(path: path)
        try SQLiteSchema.migrator.migrate(old, upTo: migration)
        try await old.write { db in try db.execute(sql: rows) }
        try old.close()
        return try SQLiteCRMStore(path: path)
    }
}

/// What SQLite's planner does for each statement (`EXPLAIN QUERY PLAN`), one list of step details per statement.
func queryPlans(_ db: Database, _ statements: [(String, StatementArguments)]) throws -> [[String]] {
    try statements.map { sql, arguments in
        try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map { $0["detail"] as String }
    }
}
