import Foundation
import GRDB
import Logging

/// Copies the WAL into the database file on a thread and a connection of its own, so the group-commit thread
/// never stops to do it.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses its threshold: that commit, and every event
/// waiting behind it, then waits while megabytes of pages are copied and the database file is synced (measured: a
/// stall of tens of milliseconds about once a second at 10,000 events/s). Here the writer's automatic checkpoint
/// is only a safety net far above the usual WAL size. After commits, this thread runs a PASSIVE checkpoint, which
/// never blocks the writer; once the WAL has grown past `restartFrames` and is fully copied, a RESTART makes the
/// next transaction write the WAL from its start again (it waits for the running transaction to end and holds
/// new ones back only while it copies the few frames written since), so the WAL file stays bounded.
final class WALCheckpointer: @unchecked Sendable {
    // `commitsSinceCheckpoint` and `stopped` are guarded by `condition`; `connection` is used on `thread` only.
    private let condition = NSCondition()
    private var commitsSinceCheckpoint = 0
    private var stopped = false
    private var finished = false
    private let path: String
    private let busyTimeout: Double
    private let interval: Double
    private let restartFrames: Int
    private let logger: Logger
    private var connection: DatabaseQueue?

    /// - Parameters:
    ///   - interval: the least time between two checkpoints, so one copies the pages of many commits.
    ///   - restartFrames: the WAL size (in pages) above which a fully copied WAL is restarted.
    init(path: String, busyTimeout: Double, interval: Double = 0.1, restartFrames: Int = 4_096, logger: Logger) {
        self.path = path
        self.busyTimeout = busyTimeout
        self.interval = interval
        self.restartFrames = restartFrames
        self.logger = logger
        let thread = Thread { [self] in run() }
        thread.name = "crm-ingest.sqlite.checkpoint"
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
            try connection.writeWithoutTransaction { db in
                let passive = try db.checkpoint(.passive)
                if passive.walFrameCount >= restartFrames && passive.checkpointedFrameCount == passive.walFrameCount {
                    _ = try db.checkpoint(.restart)
                }
            }
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
