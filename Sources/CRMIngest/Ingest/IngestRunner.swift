import CRMCore
import Crypto
import Foundation
import Logging

/// Counts of what happened to the events of a run.
public struct IngestSummary: Sendable, Equatable, CustomStringConvertible {
    public var applied = 0
    public var duplicate = 0
    public var skipped = 0
    public var rejected = 0

    public init(applied: Int = 0, duplicate: Int = 0, skipped: Int = 0, rejected: Int = 0) {
        self.applied = applied
        self.duplicate = duplicate
        self.skipped = skipped
        self.rejected = rejected
    }

    public var total: Int { applied + duplicate + skipped + rejected }
    public var description: String { "applied=\(applied) duplicate=\(duplicate) skipped=\(skipped) rejected=\(rejected)" }
}

/// Feeds a JSON Lines input through the whole pipeline: decode, plan, group-commit into the store.
///
/// A line's idempotency key is the SHA-256 of its bytes plus the number of identical lines before it, so
/// ingesting a file twice changes nothing the second time while identical lines within one file all apply.
public struct IngestRunner: Sendable {
    public var processor: EventProcessor
    public var store: any CRMStore
    public var now: @Sendable () -> Timestamp
    public var logger: Logger
    /// Lines per store transaction. 20,000 by default, the most one group commit takes: a transaction rewrites the
    /// pages of the contact tables, so larger ones write fewer per line (1,000,000 lines: 55,000 → 65,000 lines/s
    /// against 10,000, peak RSS 195 → 225 MB; Docs/BENCHMARKS.md). Smaller batches hold the SQLite write lock for
    /// less time, for a daemon writing the same file (`ingest --batch-size`).
    public var batchSize: Int
    public static let defaultBatchSize = 20_000
    /// Attempts for a batch the store reports busy or unavailable, with doubling back-off from 100 ms.
    public var maxAttempts: Int

    public init(
        processor: EventProcessor, store: any CRMStore, now: @escaping @Sendable () -> Timestamp = Timestamp.now,
        logger: Logger = Logger(label: "crm-ingest.ingest"), batchSize: Int = IngestRunner.defaultBatchSize, maxAttempts: Int = 6
    ) {
        self.processor = processor
        self.store = store
        self.now = now
        self.logger = logger
        self.batchSize = batchSize
        self.maxAttempts = maxAttempts
    }

    /// A line the pipeline refused, with its reason.
    public struct Rejection: Sendable, Equatable {
        public var line: Int
        public var reason: String

        public init(line: Int, reason: String) {
            self.line = line
            self.reason = reason
        }
    }

    /// Ingests `handle` to its end. `onRejected` is called for each refused line, in order; `onProgress` after
    /// each batch with the running summary and the bytes read.
    public func run(
        _ handle: FileHandle,
        onRejected: @Sendable (Rejection) -> Void = { _ in },
        onProgress: @Sendable (IngestSummary, Int) -> Void = { _, _ in }
    ) async throws -> IngestSummary {
        // A longer line is cut one byte past the limit, so the decoder refuses it by its size without holding it all.
        let reader = JSONLinesReader(handle: handle, batchSize: batchSize, maxLineBytes: processor.limits.maxMessageBytes + 1)
        var summary = IngestSummary()
        // How often each line's content was seen so far in this file, by the first 8 bytes of its hash (16 bytes an
        // entry instead of 40). Two different lines sharing those bytes only number their occurrences together:
        // their keys stay distinct (they carry the whole hash) and the numbering is the same on every run.
        var occurrences: [UInt64: Int] = [:]
        var inFlight: InFlightBatch?
        for try await batch in reader.batches {
            reader.consumed()
            let receivedAt = now()
            var planned: [PlannedEvent] = []
            var plannedLines: [Int] = []
            planned.reserveCapacity(batch.lines.count)
            for line in batch.lines {
                var bytes = line.bytes[...]
                while let last = bytes.last, last == 0x0D || last == 0x20 || last == 0x09 { bytes = bytes.dropLast() }
                guard bytes.contains(where: { $0 != 0x20 && $0 != 0x09 }) else { continue } // blank lines carry nothing
                let digest = SHA256.hash(data: bytes)
                let prefix = digest.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                let occurrence = occurrences[prefix, default: 0]
                occurrences[prefix] = occurrence + 1
                let message = IncomingMessage(
                    body: Array(bytes), identity: .sourceKey("f:\(digest.withUnsafeBytes(hexString)):\(occurrence)"),
                    mayBeRedelivery: true, receivedAt: receivedAt, source: "ingest"
                )
                switch processor.prepare(message) {
                case let .event(event):
                    planned.append(event)
                    plannedLines.append(line.number)
                case .skipped:
                    summary.skipped += 1
                case let .rejected(error):
                    summary.rejected += 1
                    onRejected(Rejection(line: line.number, reason: error.description))
                }
            }
            // The store applies this batch while the next one is read and planned: the two overlap, and
            // batches still commit one after the other, in file order.
            if let previous = inFlight { try await settle(previous, into: &summary, onRejected: onRejected, onProgress: onProgress) }
            let events = planned
            inFlight = (Task { try await applyWithRetry(events) }, plannedLines, batch.bytesRead)
        }
        if let previous = inFlight { try await settle(previous, into: &summary, onRejected: onRejected, onProgress: onProgress) }
        return summary
    }

    private typealias InFlightBatch = (task: Task<[EventOutcome], any Error>, lines: [Int], bytesRead: Int)

    private func settle(
        _ batch: InFlightBatch, into summary: inout IngestSummary,
        onRejected: @Sendable (Rejection) -> Void, onProgress: @Sendable (IngestSummary, Int) -> Void
    ) async throws {
        let outcomes = try await batch.task.value
        for (outcome, lineNumber) in zip(outcomes, batch.lines) {
            switch outcome {
            case let .applied(notes):
                summary.applied += 1
                for note in notes { logger.debug("line \(lineNumber): \(note)") }
            case .duplicate, .unchanged:
                summary.duplicate += 1
            case let .imported(result):
                if result.duplicate { summary.duplicate += 1 } else { summary.applied += 1 }
            case let .failed(error):
                summary.rejected += 1
                onRejected(Rejection(line: lineNumber, reason: error.message))
            }
        }
        onProgress(summary, batch.bytesRead)
    }

    /// Applies a batch in the parts the store takes in one transaction (`CRMStore.transactionParts`), in order, each
    /// retried on its own: a part that committed is never applied again.
    func applyWithRetry(_ events: [PlannedEvent]) async throws -> [EventOutcome] {
        let parts = store.transactionParts(events.count)
        if parts.count == 1 { return try await applyPartWithRetry(events) }
        var outcomes: [EventOutcome] = []
        outcomes.reserveCapacity(events.count)
        for part in parts { outcomes += try await applyPartWithRetry(Array(events[part])) }
        return outcomes
    }

    private func applyPartWithRetry(_ events: [PlannedEvent]) async throws -> [EventOutcome] {
        var delay: Duration = .milliseconds(100)
        var attempt = 1
        while true {
            do {
                return try await store.apply(events, now: now())
            } catch let error as StoreError where error.isTransient && attempt < maxAttempts {
                logger.warning("store \(error.code), retrying a batch of \(events.count) in \(delay): \(error.message)")
                try await Task.sleep(for: delay)
                delay *= 2
                attempt += 1
            }
        }
    }
}
