import CRMCore
import CRMSourceSQS
import CRMSourceSupport
import Logging
import ServiceLifecycle

/// Removes what is kept only for a while, at start-up and then every `interval`: idempotency-ledger entries past
/// `idempotency.ledger_retention`, and records of the SQS sources' dead-letter files (raw payloads) past their
/// `dead_letter_retention`.
struct LedgerPruner: Service {
    let store: any CRMStore
    /// Read at every pass: a reload may change it.
    let retentionSeconds: @Sendable () -> Int64
    /// The dead-letter files and their retention in seconds; read at every pass.
    let deadLetterFiles: @Sendable () async -> [(path: String, retentionSeconds: Int64)]
    let interval: Duration
    let now: @Sendable () -> Timestamp
    let logger: Logger

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await pass()
            // Ends the sleep early on SIGTERM; the loop condition then stops the service.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    func pass() async {
        let current = now()
        let cutoff = Timestamp(microsecondsSinceEpoch: current.microsecondsSinceEpoch - retentionSeconds() * 1_000_000)
        do {
            let removed = try await store.pruneLedger(before: cutoff)
            if removed > 0 { logger.info("pruned \(removed) ledger entries older than \(cutoff)") }
        } catch {
            logger.warning("ledger pruning failed, will try again: \(error)")
        }
        for (path, retention) in await deadLetterFiles() {
            let oldest = current.microsecondsSinceEpoch / 1_000_000 - retention
            do {
                // File I/O under an flock: on a thread of its own, not the cooperative pool.
                let removed = try await onOwnThread { () throws -> Int in
                    var removed = 0
                    try DeadLetterFile(path: path).remove { record in
                        guard let at = record.at, at < oldest else { return false }
                        removed += 1
                        return true
                    }
                    return removed
                }
                if removed > 0 { logger.info("pruned \(removed) dead-letter records past their retention", metadata: ["file": "\(path)"]) }
            } catch {
                logger.warning("dead-letter pruning failed, will try again: \(error)", metadata: ["file": "\(path)"])
            }
        }
    }
}
