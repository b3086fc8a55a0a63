import AWSSigV4
import CRMConfig
import CRMCore
import CRMSourceSupport
import Foundation
import SQSClient

/// An SQS source's dead letters: in the queue's redrive dead-letter queue, or, for a queue without redrive policy,
/// in the source's dead-letter file. Listed without being consumed for good, and replayed to the source queue.
/// Blocking (libcurl): for the command line, not for the cooperative thread pool.
///
/// Redrive queue: listing receives up to the limit with a visibility timeout and then makes them visible again at
/// once; replaying sends each chosen message to the source queue (`SendMessageBatch`) and deletes it from the
/// dead-letter queue only after SQS accepted it. File: replaying sends the recorded bodies and removes their
/// records only after SQS accepted them.
public struct SQSDeadLetters {
    public enum Location: Sendable, Equatable {
        case queue(url: String, maxReceiveCount: Int)
        case file(path: String)
    }

    public let sourceName: String
    public let config: SQSSourceConfig
    public let location: Location
    let processor: EventProcessor
    let credentials: AWSCredentialsProvider
    let deadLetterFile: DeadLetterFile

    /// Finds where the source's dead letters are (its queue's redrive policy, or its dead-letter file).
    public init(sourceName: String, config: SQSSourceConfig, processor: EventProcessor, environment: [String: String]) throws {
        self.sourceName = sourceName
        self.config = config
        self.processor = processor
        credentials = try AWSCredentialsProvider.resolve(given: config.credentials, profile: config.profile, region: config.region, environment: environment)
        deadLetterFile = DeadLetterFile(path: config.deadLetterFile)
        let source = SQSClient(queueURL: config.queueURL, region: config.region, credentials: credentials, endpoint: config.endpoint)
        let attributes = try source.queueAttributes(["RedrivePolicy"])
        if let policy = attributes["RedrivePolicy"].flatMap(RedrivePolicy.init), let queue = policy.deadLetterQueue {
            location = .queue(url: try source.queueURL(named: queue.name, ownerAccount: queue.account), maxReceiveCount: policy.maxReceiveCount)
        } else {
            location = .file(path: config.deadLetterFile)
        }
    }

    func client(_ url: String) -> SQSClient {
        SQSClient(queueURL: url, region: config.region, credentials: credentials, endpoint: config.endpoint)
    }

    public func list(limit: Int) throws -> [DeadLetterEntry] {
        switch location {
        case let .file(path):
            return try DeadLetterFile(path: path).records().filter { $0.source == sourceName && $0.body != nil }.prefix(limit).map(entry)
        case let .queue(url, _):
            let queue = client(url)
            let received = try receive(queue, limit: limit)
            // Visible again at once: listing consumes nothing.
            try release(queue, received)
            let reasons = try reasonsByMessageId()
            return received.map { entry($0, reason: reasons[$0.messageId]) }
        }
    }

    /// Replays up to `limit` dead letters (of `eventType` only, when given) to the source queue.
    public func replay(limit: Int?, eventType: String?, progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> DeadLetterReplaySummary {
        var summary = DeadLetterReplaySummary()
        let target = client(config.queueURL)
        switch location {
        case let .file(path):
            let file = DeadLetterFile(path: path)
            // A message whose delete failed comes back and is recorded again: its records are sent once (sending
            // both applied it twice, with new message ids; in one batch, SQS refused the batch for a repeated id).
            var seen = Set<String>()
            let records = try file.records().filter {
                $0.source == sourceName && $0.body != nil && seen.insert("\($0.messageId)\u{0}\($0.body ?? "")").inserted
            }
            var chosen: [DeadLetterFile.Record] = []
            for record in records {
                if let limit, chosen.count >= limit { break }
                if let eventType, entry(record).eventType != eventType { summary.leftOtherType += 1; continue }
                chosen.append(record)
            }
            for chunk in chosen.chunked(10) {
                let result = try send(target, chunk.map { (id: $0.messageId, body: $0.body ?? "", attributes: $0.attributes, group: nil) })
                let accepted = Set(result.successful)
                let sent = chunk.filter { accepted.contains(SQSWorkers.entryId($0.messageId)) }
                // Removed batch by batch, so an error later never leaves a sent message in the file to be sent again.
                let replayed = Set(sent.map { "\($0.messageId)\u{0}\($0.body ?? "")" })
                try file.remove { $0.source == sourceName && replayed.contains("\($0.messageId)\u{0}\($0.body ?? "")") }
                summary.replayed += sent.count
                summary.failed += chunk.count - sent.count
                if let failure = result.failed.first { summary.failure = "\(failure.code): \(failure.message)" }
                progress(summary.replayed, chosen.count)
            }
        case let .queue(url, _):
            let queue = client(url)
            let waiting = Int(try queue.queueAttributes(["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"] ?? "") ?? 0
            let total = min(limit ?? waiting, waiting)
            var held: [SQSMessage] = []
            var replayedIds: Set<String> = []
            defer { try? release(queue, held) }
            while summary.replayed + summary.failed < total {
                let batch = try queue.receiveMessages(maxMessages: min(10, total - summary.replayed - summary.failed), waitSeconds: 1, visibilityTimeout: 60)
                if batch.isEmpty { break }
                var chosen: [SQSMessage] = []
                for message in batch {
                    if let eventType, entry(message, reason: nil).eventType != eventType {
                        summary.leftOtherType += 1
                        held.append(message) // made visible again at the end, not received twice meanwhile
                    } else {
                        chosen.append(message)
                    }
                }
                guard !chosen.isEmpty else { continue }
                let result = try send(target, chosen.map { message in
                    (id: message.messageId, body: message.body, attributes: message.messageAttributes, group: message.messageGroupId)
                })
                let accepted = Set(result.successful)
                let sent = chosen.filter { accepted.contains(SQSWorkers.entryId($0.messageId)) }
                let failed = chosen.filter { !accepted.contains(SQSWorkers.entryId($0.messageId)) }
                held += failed
                summary.failed += failed.count
                if let failure = result.failed.first { summary.failure = "\(failure.code): \(failure.message)" }
                // Deleted from the dead-letter queue only once SQS accepted the copy.
                let deleted = try queue.deleteMessages(sent.map { (SQSWorkers.entryId($0.messageId), $0.receiptHandle) })
                if let failure = deleted.failed.first {
                    // Sent, but still dead-lettered: a later replay would send it again. Stop and say so.
                    summary.failure = "\(deleted.failed.count) replayed message(s) could not be deleted from the dead-letter queue "
                        + "(\(failure.code): \(failure.message)); they would be sent again by another replay"
                    summary.replayed += sent.count
                    break
                }
                summary.replayed += sent.count
                replayedIds.formUnion(sent.map(\.messageId))
                progress(summary.replayed, total)
            }
            // The reasons of replayed messages are history now (a copy refused again gets a record of its own).
            if !replayedIds.isEmpty {
                try deadLetterFile.remove { $0.source == sourceName && $0.body == nil && replayedIds.contains($0.messageId) }
            }
        }
        return summary
    }

    private func send(_ target: SQSClient, _ messages: [(id: String, body: String, attributes: [String: SQSMessage.MessageAttribute], group: String?)]) throws -> SQSClient.BatchResult {
        try target.sendMessages(messages.map { message in
            SQSClient.OutgoingMessage(
                id: SQSWorkers.entryId(message.id), body: message.body, attributes: message.attributes,
                groupId: config.isFIFO ? (message.group ?? sourceName) : nil,
                deduplicationId: config.isFIFO ? "replay-\(message.id)" : nil
            )
        })
    }

    /// Receives up to `limit` messages with a visibility timeout long enough to list them.
    private func receive(_ queue: SQSClient, limit: Int) throws -> [SQSMessage] {
        var received: [SQSMessage] = []
        var seen: Set<String> = []
        while received.count < limit {
            let batch = try queue.receiveMessages(maxMessages: min(10, limit - received.count), waitSeconds: 1, visibilityTimeout: 60)
            let fresh = batch.filter { seen.insert($0.messageId).inserted }
            if fresh.isEmpty { break }
            received += fresh
        }
        return received
    }

    private func release(_ queue: SQSClient, _ messages: [SQSMessage]) throws {
        for chunk in messages.chunked(10) {
            _ = try queue.changeVisibility(chunk.map { (SQSWorkers.entryId($0.messageId), $0.receiptHandle, 0) })
        }
    }

    /// The reasons the daemon recorded when it refused a message for the last time, by message id.
    private func reasonsByMessageId() throws -> [String: DeadLetterFile.Record] {
        var reasons: [String: DeadLetterFile.Record] = [:]
        for record in try deadLetterFile.records() where record.source == sourceName && record.body == nil {
            reasons[record.messageId] = record
        }
        return reasons
    }

    func entry(_ message: SQSMessage, reason: DeadLetterFile.Record?) -> DeadLetterEntry {
        let (type, verdict) = assess(message)
        let firstReceive = message.attributes["ApproximateFirstReceiveTimestamp"].flatMap { Int64($0) }.map { $0 / 1_000 }
        return DeadLetterEntry(
            messageId: message.messageId, eventType: type,
            reason: reason?.reason ?? "moved by the queue's redrive policy (no reason recorded by crm-ingest)",
            // The count when it was dead-lettered; SQS's own count also grows with every listing.
            deliveries: reason?.receiveCount ?? message.receiveCount, deadLetteredAt: reason?.at ?? firstReceive, now: verdict, bodyBytes: message.body.utf8.count
        )
    }

    func entry(_ record: DeadLetterFile.Record) -> DeadLetterEntry {
        let message = SQSMessage(messageId: record.messageId, receiptHandle: "", body: record.body ?? "", attributes: [:], messageAttributes: record.attributes)
        let (type, verdict) = assess(message)
        return DeadLetterEntry(
            messageId: record.messageId, eventType: type, reason: record.reason, deliveries: record.receiveCount, deadLetteredAt: record.at,
            now: verdict, bodyBytes: record.body?.utf8.count ?? 0
        )
    }

    private func assess(_ message: SQSMessage) -> (String?, String) {
        switch SQSSource.incoming(message, config: config, source: sourceName, processor: processor, receivedAt: .now()) {
        case let .message(incoming): return processor.assess(incoming)
        case .filtered: return (nil, "filtered out by the source's filter policy")
        case let .refused(reason): return (nil, "refused: \(reason)")
        }
    }
}
