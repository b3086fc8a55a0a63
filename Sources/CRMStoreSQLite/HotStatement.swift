import Foundation
import GRDB
import GRDBSQLite

/// A statement every event runs, executed through SQLite's C API on a statement GRDB prepared and caches.
///
/// For these one-row statements GRDB's per-execution work (boxing arguments into `StatementArguments`, its
/// observation and authorization hooks) costs more than SQLite's own; binding and stepping directly halves the
/// store's CPU per event (Docs/BENCHMARKS.md). Errors are thrown as GRDB's `DatabaseError`, with SQLite's result
/// code, like every other statement's. Use it for statements that change no schema and open no transaction:
/// GRDB does not see them execute.
struct HotStatement {
    private let handle: OpaquePointer
    private let connection: OpaquePointer

    init(_ db: Database, _ sql: String) throws {
        let statement = try db.cachedStatement(sql: sql)
        handle = statement.sqliteStatement
        guard let connection = db.sqliteConnection else { throw DatabaseError(resultCode: .SQLITE_MISUSE, message: "the database is closed") }
        self.connection = connection
    }

    /// SQLite copies bound text and blobs (the bound values do not outlive the call that binds them).
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    /// Binds values to parameters 1, 2, … in order.
    struct Binder {
        fileprivate let handle: OpaquePointer
        fileprivate var index: Int32 = 1

        mutating func bind(_ value: Int64) {
            sqlite3_bind_int64(handle, index, value)
            index += 1
        }

        mutating func bind(_ value: Int) { bind(Int64(value)) }

        mutating func bind(_ value: Bool) { bind(Int64(value ? 1 : 0)) }

        mutating func bind(_ value: String) {
            var value = value
            value.withUTF8 { bytes in
                // A zero-length text needs a non-null pointer too (a null one binds NULL).
                let pointer = UnsafeRawPointer(bytes.baseAddress ?? UnsafePointer(bitPattern: 1)!).assumingMemoryBound(to: CChar.self)
                _ = sqlite3_bind_text(handle, index, pointer, Int32(bytes.count), HotStatement.transient)
            }
            index += 1
        }

        mutating func bind(_ value: String?) {
            if let value { bind(value) } else { bindNull() }
        }

        mutating func bind(_ value: Data) {
            value.withUnsafeBytes { bind(bytes: $0) }
        }

        mutating func bind(bytes: UnsafeRawBufferPointer) {
            _ = sqlite3_bind_blob(handle, index, bytes.baseAddress, Int32(bytes.count), HotStatement.transient)
            index += 1
        }

        mutating func bindNull() {
            sqlite3_bind_null(handle, index)
            index += 1
        }
    }

    /// Runs the statement to completion; returns how many rows it changed.
    @discardableResult
    func execute(_ bind: (inout Binder) -> Void = { _ in }) throws -> Int {
        try prepare(bind)
        defer { sqlite3_reset(handle) }
        while true {
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { return Int(sqlite3_changes(connection)) }
            if code != SQLITE_ROW { throw error(code) }
        }
    }

    /// The first column of the first row, as an integer; nil when there is no row or it is NULL.
    func fetchInt64(_ bind: (inout Binder) -> Void = { _ in }) throws -> Int64? {
        try prepare(bind)
        defer { sqlite3_reset(handle) }
        let code = sqlite3_step(handle)
        if code == SQLITE_DONE { return nil }
        guard code == SQLITE_ROW else { throw error(code) }
        return sqlite3_column_type(handle, 0) == SQLITE_NULL ? nil : sqlite3_column_int64(handle, 0)
    }

    /// Whether the query returns a row.
    func exists(_ bind: (inout Binder) -> Void = { _ in }) throws -> Bool {
        try prepare(bind)
        defer { sqlite3_reset(handle) }
        let code = sqlite3_step(handle)
        if code == SQLITE_DONE { return false }
        guard code == SQLITE_ROW else { throw error(code) }
        return true
    }

    private func prepare(_ bind: (inout Binder) -> Void) throws {
        sqlite3_reset(handle)
        var binder = Binder(handle: handle)
        bind(&binder)
    }

    private func error(_ code: Int32) -> DatabaseError {
        DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(connection)))
    }
}
