import CRMCore
@testable import CRMStoreSQLite
import Foundation
import GRDB
import Synchronization
import Testing

/// How a store waits for a write lock another process holds (`SQLiteCRMStore.LockWait`): the daemon tries every
/// millisecond, `crm-ingest ingest` backs off, so that the daemon gets the lock first when both wait.
@Suite("SQLite store: waiting for the write lock")
struct WriteLockWaitTests {
    /// A third connection holds the lock; a backing-off store starts waiting at once, one trying every millisecond
    /// 20 ms later. The lock is released 478 ms after the first started waiting, halfway between two of its tries
    /// (SQLite backs off to tries at 428 and 528 ms): the store trying every millisecond commits first, though it
    /// came second. (Backing off too, it would try at 448 and 548 ms, and come second.) The writes run on threads of
    /// their own, on each store's own connection, so that a busy cooperative pool (other tests) cannot reorder them.
    @Test func theStoreTryingEveryMillisecondGetsTheLockFirst() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let path = RecentLedgerTests.path(in: h, "lock-wait")
        let daemon = try SQLiteCRMStore(path: path, lockWait: .everyMillisecond)
        let bulk = try SQLiteCRMStore(path: path, lockWait: .backingOff)
        defer {
            try? daemon.close()
            try? bulk.close()
        }
        let holder = try WriteLockHolder(path)
        let (bulkCommitted, daemonCommitted) = try await OnAThread.run {
            let started = ContinuousClock.now
            let bulkWrite = OnAThread.start { try Self.write("bulk", bulk) }
            Thread.sleep(forTimeInterval: 0.02)
            let daemonWrite = OnAThread.start { try Self.write("daemon", daemon) }
            Thread.sleep(forTimeInterval: ContinuousClock.now.duration(to: started + .milliseconds(478)).totalSeconds)
            holder.release()
            return (try bulkWrite.wait(), try daemonWrite.wait())
        }
        #expect(daemonCommitted < bulkCommitted)
        let written = try await daemon.database.read { db in try String.fetchAll(db, sql: "SELECT key FROM meta WHERE key IN ('bulk', 'daemon')") }
        #expect(Set(written) == ["bulk", "daemon"])
    }

    /// A store trying every millisecond still gives up after the busy timeout, with SQLITE_BUSY (which the store
    /// reports as a transient `busy` error). If it never gave up, the lock is released after 10 s and the write
    /// succeeds: the test fails instead of hanging.
    @Test func tryingEveryMillisecondStopsAtTheBusyTimeout() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let path = RecentLedgerTests.path(in: h, "lock-timeout")
        let store = try SQLiteCRMStore(path: path, busyTimeoutMilliseconds: 150, lockWait: .everyMillisecond)
        defer { try? store.close() }
        let holder = try WriteLockHolder(path)
        // Timed on the thread, and the release timer set there: the task may resume late when other tests keep the
        // cooperative pool busy.
        let (outcome, waited) = try await OnAThread.run {
            DispatchQueue.global().asyncAfter(deadline: .now() + 10) { holder.release() }
            let started = ContinuousClock.now
            let outcome = Result { try Self.write("late", store) }
            return (outcome, ContinuousClock.now - started)
        }
        holder.release()
        guard case let .failure(error as DatabaseError) = outcome else {
            Issue.record("expected SQLITE_BUSY, got \(outcome)")
            return
        }
        #expect(error.resultCode == .SQLITE_BUSY)
        #expect(SQLiteCRMStore.storeError(error).code == .busy)
        #expect(SQLiteCRMStore.storeError(error).isTransient)
        #expect(waited >= .milliseconds(150))
        #expect(waited < .seconds(5))
    }

    /// A row of `meta` written on the store's own connection; returns when it committed.
    static func write(_ key: String, _ store: SQLiteCRMStore) throws -> ContinuousClock.Instant {
        try store.database.write { db in try db.execute(sql: "INSERT INTO meta (key, value) VALUES (?, x'01')", arguments: [key]) }
        return ContinuousClock.now
    }
}

/// Work on a thread of its own, never on Swift's cooperative pool.
final class OnAThread<Value: Sendable>: Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let result = Mutex<Result<Value, any Error>?>(nil)

    /// Starts `body` on a new thread.
    static func start(_ body: @escaping @Sendable () throws -> Value) -> OnAThread<Value> {
        let work = OnAThread<Value>()
        Thread {
            let outcome = Result { try body() }
            work.result.withLock { $0 = outcome }
            work.done.signal()
        }.start()
        return work
    }

    /// Blocks until the work is done (call it on a thread, not in a task).
    func wait() throws -> Value {
        done.wait()
        return try result.withLock { $0! }.get()
    }

    /// Runs `body` on a new thread, and resumes the caller once it is done.
    static func run(_ body: @escaping @Sendable () throws -> Value) async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }
}

/// The write lock of a database file, taken on a connection and a thread of their own (`init` returns once it is
/// held) and held until `release()` (again: no effect), which commits and closes.
final class WriteLockHolder: Sendable {
    private let locked = DispatchSemaphore(value: 0)
    private let released = DispatchSemaphore(value: 0)
    private let failure = Mutex<(any Error)?>(nil)
    private let isReleased = Mutex(false)

    init(_ path: String) throws {
        Thread { [self] in
            do {
                let connection = try DatabaseQueue(path: path)
                try connection.writeWithoutTransaction { db in
                    try db.execute(sql: "BEGIN IMMEDIATE")
                    locked.signal()
                    released.wait()
                    try db.execute(sql: "COMMIT")
                }
                try connection.close()
            } catch {
                failure.withLock { $0 = error }
                locked.signal()
            }
        }.start()
        locked.wait()
        if let error = failure.withLock({ $0 }) { throw error }
    }

    func release() {
        let first = isReleased.withLock { done in
            defer { done = true }
            return !done
        }
        if first { released.signal() }
    }
}
