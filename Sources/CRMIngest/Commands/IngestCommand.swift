import ArgumentParser
import CRMConfig
import CRMCore
import Foundation
import Logging

/// `crm-ingest ingest [FILE|-]`: JSON Lines through the whole pipeline.
struct IngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Applies a JSON Lines file of events (or standard input) to the store.",
        discussion: """
            Prints `applied=N duplicate=N skipped=N rejected=N` at the end, and each rejected line with its number and
            reason on standard error. Exit status: 0 when every line was accepted, 2 when some were rejected (the
            others are applied), 1 when the run could not finish.
            """
    )

    @OptionGroup var options: ConfigOption

    /// The smallest SQLite page cache `ingest` runs with. A bulk load probes the ledger and the contacts at random
    /// places of tables that outgrow the daemon's 16 MiB; a short-lived command can afford more (1,000,000 lines:
    /// 69,000 → 76,000 lines/s, Docs/BENCHMARKS.md). A larger `store.sqlite.cache_size` is kept.
    static let minimumCacheBytes = 64 << 20

    /// The store's configuration for a bulk load: SQLite's page cache at least `minimumCacheBytes`, and the write
    /// lock left to a daemon on the same file when both wait for it (Docs/STORE.md).
    static func bulkLoading(_ store: StoreConfig) -> StoreConfig {
        guard case var .sqlite(sqlite) = store else { return store }
        sqlite.cacheBytes = max(sqlite.cacheBytes, minimumCacheBytes)
        sqlite.yieldsTheWriteLock = true
        return .sqlite(sqlite)
    }

    @Argument(help: "JSON Lines file; - or nothing for standard input.")
    var file: String?

    @Option(help: ArgumentHelp(
        "Lines applied in one store transaction.",
        discussion: "Larger is faster alone; smaller holds the SQLite write lock for less time, so a daemon writing the same file waits less (Docs/STORE.md: with 2000, a daemon taking 5,000 events/s waited several times less)."
    ))
    var batchSize = IngestRunner.defaultBatchSize

    func validate() throws {
        guard (1...IngestRunner.defaultBatchSize).contains(batchSize) else {
            throw ValidationError("--batch-size must be from 1 to \(IngestRunner.defaultBatchSize), got \(batchSize)")
        }
    }

    func run() async throws {
        let config: DaemonConfig
        do { config = try ConfigLoading.load(options.config) } catch { throw ExitCode(1) }
        let handle: FileHandle
        var totalBytes: Int?
        if let file, file != "-" {
            guard let opened = FileHandle(forReadingAtPath: file) else {
                printError("cannot open \(file)")
                throw ExitCode(1)
            }
            handle = opened
            totalBytes = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? nil
        } else {
            handle = FileHandle.standardInput
        }
        let progress = ProgressBar(totalBytes: totalBytes)
        let summary: IngestSummary
        do {
            let processor = config.processor
            summary = try await StoreFactory.withStore(Self.bulkLoading(config.store), logger: Logger(label: "crm-ingest")) { store in
                try await IngestRunner(processor: processor, store: store, batchSize: batchSize).run(
                    handle,
                    onRejected: { rejection in
                        if progress.isEnabled { progress.finish() }
                        printError("line \(rejection.line): \(rejection.reason)")
                    },
                    onProgress: { summary, bytes in progress.update(summary, bytesRead: bytes) }
                )
            }
        } catch {
            progress.finish()
            printError("ingest stopped: \(error)")
            throw ExitCode(1)
        }
        progress.finish()
        print(summary.description)
        if summary.rejected > 0 { throw ExitCode(2) }
    }
}
