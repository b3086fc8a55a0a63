import CRMCore
import Logging
import ServiceLifecycle

/// Removes idempotency-ledger entries past their retention, at start-up and then every `interval`.
struct LedgerPruner: Service {
    let store: any CRMStore
    /// Read at every pass: a reload may change it.
    let retentionSeconds: @Sendable () -> Int64
    let interval: Duration
    let now: @Sendable () -> Timestamp
    let logger: Logger

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let cutoff = Timestamp(microsecondsSinceEpoch: now().microsecondsSinceEpoch - retentionSeconds() * 1_000_000)
            do {
                let removed = try await store.pruneLedger(before: cutoff)
                if removed > 0 { logger.info("pruned \(removed) ledger entries older than \(cutoff)") }
            } catch {
                logger.warning("ledger pruning failed, will try again: \(error)")
            }
            // Ends the sleep early on SIGTERM; the loop condition then stops the service.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
