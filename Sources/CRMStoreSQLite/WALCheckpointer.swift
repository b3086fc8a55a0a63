import CRMSourceSupport
import Foundation
import GRDB
import Logging

/// Copies the WAL into the database file on a thread and a connection of its own, so the group-commit thread
/// never stops to do it.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses its threshold: that commit, and every event
/// waiting behind it, then waits while megabytes of pages are copied and the database file is synced (measured: a
/// stall of tens of milliseconds about once a second at 2,000 events/s). Here, after commits (at most every
/// `interval`), this thread runs a PASSIVE checkpoint, which never blocks the writer. The writer keeps its own
/// automatic checkpoint, at 16 MiB of WAL: it then finds nearly every frame already copied, copies the last ones,
/// and the next transaction writes the WAL from its start again, so the file stays small even when the writer
/// never pauses. (A RESTART from this thread cannot do that under a continuous load: the writer appends while
/// the PASSIVE copy runs, so the WAL is never seen fully copied; a 1,000,000-line ingest grew it to 256 MiB.)
final class WALCheckpointer: @unchecked Sendable {
    // `commitsSinceCheckpoint` and `stopped` are guarded by `condition`; `connection` is used on `thread` only.
    private let condition = NSCondition()
    private var commitsSinceCheckpoint = 0
    private var stopped = false
    private var finished = false
    private let path: String
    private let busyTimeout: Double
    private let interval: Double
    private let logger: Logger
    private var connection: DatabaseQueue?

    /// - Parameter interval: the least time between two checkpoints, so one copies the pages of many commits.
    init(path: String, busyTimeout: Double, interval: Double = 0.1, logger: Logger) {
        self.path = path
        self.busyTimeout = busyTimeout
        self.interval = interval
        self.logger = logger
        let thread = Thread { [self] in
            ThreadName.nameCurrentThread("sqlite-checkpt")
            run()
        }
        thread.start()
    }

    /// Called after every commit; cheap (a lock and a signal).
    func noteCommit() {
        condition.lock()
        commitsSinceCheckpoint += 1
        condition.signal()
        condition.unlock()
    }

    /// Stops the thread after its current checkpoint and closes its connection; returns when it is closed.
    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        while !finished { condition.wait() }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while commitsSinceCheckpoint == 0 && !stopped { condition.wait() }
            if stopped {
                try? connection?.close()
                connection = nil
                finished = true
                condition.broadcast()
                condition.unlock()
                return
            }
            condition.unlock()
            // Let more commits gather before copying their pages.
            Thread.sleep(forTimeInterval: interval)
            condition.lock()
            commitsSinceCheckpoint = 0
            condition.unlock()
            checkpoint()
        }
    }

    private func checkpoint() {
        do {
            let connection = try openConnection()
            try connection.writeWithoutTransaction { db in _ = try db.checkpoint(.passive) }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED {
            // Another checkpoint (an anonymization's TRUNCATE, another process) is running: the next one catches up.
        } catch {
            logger.warning("WAL checkpoint failed; the writer's own checkpoint takes over if the WAL keeps growing", metadata: [
                "path": "\(path)", "error": "\(error)",
            ])
        }
    }

    private func openConnection() throws -> DatabaseQueue {
        if let connection { return connection }
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.label = "crm-ingest.sqlite.checkpoint"
        let opened = try DatabaseQueue(path: path, configuration: configuration)
        connection = opened
        return opened
    }
}
