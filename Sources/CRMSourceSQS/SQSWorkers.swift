import AWSSigV4
import CRMConfig
import CRMCore
import CRMSourceSupport
import CoreMetrics
import Foundation
import Logging
import SQSClient

/// A message taken from the queue and not yet deleted or released.
struct InFlightMessage: Sendable {
    var receiptHandle: String
    /// SQS's ApproximateReceiveCount when it was received.
    var receiveCount: Int
    /// The body and the message attributes as received: what the dead-letter file keeps when the event is refused.
    var body: String
    var messageAttributes: [String: SQSMessage.MessageAttribute]
    /// When its visibility was last set (received or extended).
    var visibleAgainAt: ContinuousClock.Instant
}

/// What became of a message once the pipeline is done with it.
enum SQSDisposition: Sendable {
    /// Committed, duplicate, skipped or filtered out: delete it.
    case delete
    /// Refused (bad message): the queue's redrive policy takes it, or, without one, it is recorded and deleted.
    case refused(reason: String, body: String)
    /// Not processed (store down, stopping): per `on_failure`, keep it in flight or make it visible now.
    case giveBack
}

/// The SQS source's threads: pollers that long-poll, and one settler that deletes after commit, extends the
/// visibility of messages still in process, and releases or records refused ones. Each thread owns its own
/// `SQSClient` (curl handle): blocking calls never run on Swift's cooperative pool.
final class SQSWorkers: @unchecked Sendable {
    // `inFlight`, `reserved`, `completions` and `requestCounts` are guarded by `lock`; the rest is set in init.
    let sourceName: String
    let config: SQSSourceConfig
    let credentials: AWSCredentialsProvider
    let logger: Logger
    let stop = StopFlag()
    let batches: AsyncStream<[SQSMessage]>
    private let continuation: AsyncStream<[SQSMessage]>.Continuation
    /// Also signalled when messages leave `inFlight`, for pollers waiting for room (`max_in_flight`).
    private let lock = NSCondition()
    private var inFlight: [String: InFlightMessage] = [:]
    /// Places in `inFlight` taken by receives under way, so that pollers together never exceed `max_in_flight`.
    private var reserved = 0
    private var completions: [(messageId: String, disposition: SQSDisposition)] = []
    private var requestCounts: [Int] = []
    private var pollersRunning = 0
    /// SQS requests of this source (receive, delete, change visibility, queue attributes), for `/metrics`.
    private let requestsCounter: Counter
    private let settlerDone = DispatchSemaphore(value: 0)
    /// Committed messages waiting for a `DeleteMessageBatch` (settler thread only): sent ten at a time, and a
    /// smaller remainder once its oldest entry waited `deleteLinger`, or at once when stopping. Deleting what
    /// a short receive brought in a request of its own would cost up to one request per message.
    private var pendingDeletes: [(id: String, receiptHandle: String)] = []
    /// After an extension request failed as a whole, the next one waits a second (settler thread only).
    private var nextExtensionAttempt = ContinuousClock.now
    private var oldestPendingDelete: ContinuousClock.Instant?
    /// How long a delete batch of fewer than ten entries waits for more. Far below any visibility timeout; a
    /// crash in between redelivers those messages, which the ledger then finds committed.
    let deleteLinger: Duration
    /// The queue's visibility timeout in seconds (read at start when the config says `queue`).
    let visibilityTimeout: Int
    /// The queue's redrive policy's maxReceiveCount; nil: no redrive policy (refused messages are recorded whole in
    /// the dead-letter file and deleted). With one, refused messages are left to it.
    let maxReceiveCount: Int?
    var hasRedrivePolicy: Bool { maxReceiveCount != nil }
    let deadLetterFile: DeadLetterFile

    /// Told after each receive: nil when it succeeded, else the error.
    let onPoll: @Sendable (String?) -> Void

    init(
        sourceName: String, config: SQSSourceConfig, credentials: AWSCredentialsProvider, visibilityTimeout: Int, maxReceiveCount: Int?,
        logger: Logger, deleteLinger: Duration = .milliseconds(250), onPoll: @escaping @Sendable (String?) -> Void = { _ in }
    ) {
        self.onPoll = onPoll
        self.deleteLinger = deleteLinger
        self.sourceName = sourceName
        self.config = config
        self.credentials = credentials
        self.visibilityTimeout = visibilityTimeout
        self.maxReceiveCount = maxReceiveCount
        deadLetterFile = DeadLetterFile(path: config.deadLetterFile)
        self.logger = logger
        (batches, continuation) = AsyncStream<[SQSMessage]>.makeStream()
        requestCounts = Array(repeating: 0, count: config.pollers + 1)
        requestsCounter = Counter(label: "crm_ingest_sqs_requests_total", dimensions: [("source", sourceName)])
    }

    func makeClient() -> SQSClient {
        SQSClient(queueURL: config.queueURL, region: config.region, credentials: credentials, endpoint: config.endpoint)
    }

    /// SQS requests made so far by every thread.
    var requestCount: Int { lock.withLock { requestCounts.reduce(0, +) } }

    /// Notes a thread's request count, and adds what is new to `crm_ingest_sqs_requests_total`.
    private func recordRequests(_ index: Int, _ client: SQSClient) {
        let count = client.requestCount
        let added = lock.withLock {
            defer { requestCounts[index] = count }
            return count - requestCounts[index]
        }
        if added > 0 { requestsCounter.increment(by: added) }
    }

    var inFlightCount: Int { lock.withLock { inFlight.count } }

    func start() {
        lock.withLock { pollersRunning = config.pollers }
        for index in 0..<config.pollers {
            let thread = Thread { [self] in
                ThreadName.nameCurrentThread(ThreadName.make("sqs:", sourceName, suffix: ":\(index)"))
                poll(index)
            }
            thread.start()
        }
        let settler = Thread { [self] in
            ThreadName.nameCurrentThread(ThreadName.make("sqs:", sourceName, suffix: ":s"))
            settle()
        }
        settler.start()
    }

    /// Posts what the pipeline finished; the settler acts on it within a second.
    func complete(_ items: [(messageId: String, disposition: SQSDisposition)]) {
        lock.withLock { completions.append(contentsOf: items) }
    }

    func waitForSettler() { settlerDone.wait() }

    // MARK: Pollers

    private func poll(_ index: Int) {
        let client = makeClient()
        var backoff = Duration.seconds(1)
        defer {
            recordRequests(index, client)
            let last = lock.withLock {
                pollersRunning -= 1
                return pollersRunning == 0
            }
            if last { continuation.finish() }
        }
        let batch = min(10, config.maxInFlight)
        // FIFO: a receive that failed without an answer may still have taken messages, which would then stay hidden
        // (and hold their groups) for a visibility timeout; the same attempt id, sent again, gets them back.
        var attemptId: String?
        while let room = reserveRoom(for: batch) {
            do throws(SQSError) {
                // The long poll ends within about a second of a stop request, so SIGTERM does not wait for it.
                let stop = self.stop
                let messages: [SQSMessage]
                if config.isFIFO, attemptId == nil { attemptId = UUID().uuidString }
                do {
                    messages = try client.receiveMessages(
                        maxMessages: batch, waitSeconds: config.waitTimeSeconds, visibilityTimeout: config.visibilityTimeoutSeconds,
                        attemptId: attemptId, shouldAbort: { stop.isSet }
                    )
                    attemptId = nil
                } catch {
                    lock.withLock { reserved -= room }
                    if !error.isTransient { attemptId = nil }
                    throw error
                }
                recordRequests(index, client)
                onPoll(nil)
                backoff = .seconds(1)
                guard !messages.isEmpty else {
                    lock.withLock {
                        reserved -= room
                        lock.broadcast()
                    }
                    continue
                }
                if stop.isSet {
                    lock.withLock { reserved -= room }
                    // Received after the stop: give them straight back rather than leave them invisible.
                    _ = try? client.changeVisibility(messages.enumerated().map { ("r\($0.offset)", $0.element.receiptHandle, 0) })
                    return
                }
                let visibleAgain = ContinuousClock.now + .seconds(visibilityTimeout)
                lock.withLock {
                    reserved -= room
                    for message in messages { inFlight[message.messageId] = InFlightMessage(
                        receiptHandle: message.receiptHandle, receiveCount: message.receiveCount, body: message.body,
                        messageAttributes: message.messageAttributes, visibleAgainAt: visibleAgain
                    ) }
                    if messages.count < room { lock.broadcast() }
                }
                continuation.yield(messages)
            } catch {
                onPoll("\(error)")
                if error.isAuthentication {
                    logger.error("SQS refused our credentials: \(error.code): \(error.message)", metadata: [
                        "source": "\(sourceName)", "access_key": "\(credentials.currentAccessKeyId.map(LogRedaction.accessKey) ?? "-")", "queue": "\(config.queueURL)",
                    ])
                    backoff = .seconds(30)
                } else {
                    logger.warning("SQS receive failed, retrying in \(backoff)", metadata: ["source": "\(sourceName)", "error": "\(error)"])
                }
                sleepUnlessStopped(backoff)
                backoff = min(backoff * 2, .seconds(30))
            }
        }
    }

    /// Waits until `count` more messages fit under `max_in_flight` and reserves their places; nil once stopping.
    /// A store slower than the queue thus holds the pollers back instead of piling up received messages, each of
    /// which the settler would have to keep invisible.
    private func reserveRoom(for count: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        while !stop.isSet {
            if inFlight.count + reserved + count <= config.maxInFlight {
                reserved += count
                return count
            }
            // Woken when messages leave; the timeout notices a stop.
            _ = lock.wait(until: Date(timeIntervalSinceNow: 0.1))
        }
        return nil
    }

    private func sleepUnlessStopped(_ duration: Duration) {
        let deadline = ContinuousClock.now + duration
        while !stop.isSet, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.1) }
    }

    // MARK: Settler

    private func settle() {
        let client = makeClient()
        defer {
            recordRequests(config.pollers, client)
            settlerDone.signal()
        }
        while true {
            let (items, pollersDone, empty) = lock.withLock { () -> ([(messageId: String, disposition: SQSDisposition)], Bool, Bool) in
                defer { completions.removeAll() }
                return (completions, pollersRunning == 0, inFlight.isEmpty && completions.isEmpty)
            }
            settle(items, client)
            sendDeletes(client, all: stop.isSet)
            extendVisibility(client)
            recordRequests(config.pollers, client)
            if stop.isSet && pollersDone && empty { return }
            Thread.sleep(forTimeInterval: items.isEmpty && pendingDeletes.isEmpty ? 0.05 : items.isEmpty ? 0.01 : 0.001)
        }
    }

    private func settle(_ items: [(messageId: String, disposition: SQSDisposition)], _ client: SQSClient) {
        guard !items.isEmpty else { return }
        var deletes: [(id: String, receiptHandle: String)] = []
        var releases: [(id: String, receiptHandle: String, seconds: Int)] = []
        var finished: [String] = []
        let known = lock.withLock { items.map { inFlight[$0.messageId] } }
        for (item, message) in zip(items, known) {
            guard let message else { continue }
            let handle = message.receiptHandle
            switch item.disposition {
            case .delete:
                deletes.append((item.messageId, handle))
            case let .refused(reason, body):
                if let maxReceiveCount {
                    // Left in flight: it comes back after its visibility timeout and the redrive policy moves it
                    // after its last allowed receive; then its reason is recorded for `crm-ingest dlq list`.
                    if message.receiveCount >= maxReceiveCount {
                        _ = recordDeadLetter(messageId: item.messageId, reason: reason, body: nil, receiveCount: message.receiveCount)
                    }
                    finished.append(item.messageId)
                } else {
                    // A refusal by the store comes without the body (the pipeline kept only the event): the one received.
                    if recordDeadLetter(messageId: item.messageId, reason: reason, body: body.isEmpty ? message.body : body, receiveCount: message.receiveCount,
                                        attributes: message.messageAttributes) {
                        deletes.append((item.messageId, handle))
                    } else {
                        // Not recorded: not deleted either; it comes back after its visibility timeout.
                        finished.append(item.messageId)
                    }
                }
            case .giveBack:
                // When stopping, visible at once whatever on_failure says: it was just extended, and would otherwise
                // wait out a whole visibility timeout (up to 12 h) before another consumer could take it.
                if config.onFailure == .release || stop.isSet { releases.append((item.messageId, handle, 0)) }
                finished.append(item.messageId)
            }
        }
        if !deletes.isEmpty {
            if pendingDeletes.isEmpty { oldestPendingDelete = ContinuousClock.now }
            pendingDeletes += deletes
        }
        for chunk in releases.chunked(10) {
            _ = try? client.changeVisibility(chunk.map { (Self.entryId($0.id), $0.receiptHandle, $0.seconds) })
        }
        release(finished)
    }

    /// Sends the pending deletes in batches of ten; the last, smaller batch only when `all` or once it waited
    /// `deleteLinger`. Deleted messages leave `inFlight`.
    private func sendDeletes(_ client: SQSClient, all: Bool) {
        guard let oldest = oldestPendingDelete else { return }
        let sendAll = all || ContinuousClock.now - oldest >= deleteLinger
        let count = sendAll ? pendingDeletes.count : pendingDeletes.count / 10 * 10
        guard count > 0 else { return }
        let deletes = Array(pendingDeletes.prefix(count))
        pendingDeletes.removeFirst(count)
        // The remainder started waiting now, as far as the linger is concerned.
        oldestPendingDelete = pendingDeletes.isEmpty ? nil : ContinuousClock.now
        var finished: [String] = []
        for chunk in Self.distinctById(deletes).chunked(10) {
            do {
                var result = try client.deleteMessages(chunk.map { (Self.entryId($0.id), $0.receiptHandle) })
                // Entries that failed on the server's side are retried once, by themselves; a sender fault (an
                // expired receipt handle) cannot succeed again: that message comes back after its visibility
                // timeout and the ledger makes it a duplicate, deleted then with a fresh handle.
                let retry = chunk.filter { entry in result.failed.contains { $0.id == Self.entryId(entry.id) && !$0.senderFault } }
                if !retry.isEmpty {
                    let second = try client.deleteMessages(retry.map { (Self.entryId($0.id), $0.receiptHandle) })
                    result.failed = result.failed.filter { $0.senderFault } + second.failed
                }
                for failure in result.failed {
                    logger.warning("SQS did not delete a message", metadata: [
                        "source": "\(sourceName)", "entry": "\(failure.id)", "code": "\(failure.code)", "reason": "\(failure.message)",
                    ])
                }
                finished += chunk.map(\.id)
            } catch {
                logger.warning("SQS delete failed; the messages will come back and be recognised as duplicates", metadata: [
                    "source": "\(sourceName)", "error": "\(error)",
                ])
                finished += chunk.map(\.id)
            }
        }
        release(finished)
    }

    /// Messages done with leave `inFlight`, making room for the pollers.
    private func release(_ messageIds: [String]) {
        guard !messageIds.isEmpty else { return }
        lock.withLock {
            for id in messageIds { inFlight[id] = nil }
            lock.broadcast()
        }
    }

    /// Messages still in process at half their visibility timeout get another full timeout.
    private func extendVisibility(_ client: SQSClient) {
        let now = ContinuousClock.now
        guard now >= nextExtensionAttempt else { return }
        let half = Duration.seconds(visibilityTimeout) / 2
        let due = lock.withLock { inFlight.filter { $0.value.visibleAgainAt - now < half } }
        guard !due.isEmpty else { return }
        for chunk in Array(due).chunked(10) {
            do {
                let result = try client.changeVisibility(chunk.map { (Self.entryId($0.key), $0.value.receiptHandle, visibilityTimeout) })
                let extendedUntil = ContinuousClock.now + .seconds(visibilityTimeout)
                // An entry SQS refused (no longer in flight, an expired handle, the 12 h limit, a fault of its own) is
                // due again in a second, not at every turn of the settler, which made a request every few
                // milliseconds; a second is well inside the half timeout still left.
                let retryAt = ContinuousClock.now + half + .seconds(1)
                let failed = Set(result.failed.map(\.id))
                lock.withLock {
                    for entry in chunk {
                        inFlight[entry.key]?.visibleAgainAt = failed.contains(Self.entryId(entry.key)) ? retryAt : extendedUntil
                    }
                }
                for failure in result.failed {
                    logger.warning("SQS did not extend a message's visibility", metadata: [
                        "source": "\(sourceName)", "entry": "\(failure.id)", "code": "\(failure.code)", "reason": "\(failure.message)",
                    ])
                }
            } catch {
                // The endpoint failed as a whole: the other chunks wait a second rather than each waiting out the
                // same failure (deletes go first at every turn).
                logger.warning("SQS visibility extension failed", metadata: ["source": "\(sourceName)", "error": "\(error)"])
                nextExtensionAttempt = ContinuousClock.now + .seconds(1)
                return
            }
        }
    }

    /// One entry per message id, the last one's receipt handle kept (the newest receive's): a message received
    /// again while in process (a standard queue's duplicate) completes twice, and SQS refuses a whole batch that
    /// names one entry id twice (`BatchEntryIdsNotDistinct`), which sent nine other messages round again.
    static func distinctById(_ entries: [(id: String, receiptHandle: String)]) -> [(id: String, receiptHandle: String)] {
        var seen = Set<String>()
        var kept: [(id: String, receiptHandle: String)] = []
        for entry in entries.reversed() where seen.insert(entry.id).inserted { kept.append(entry) }
        return kept.reversed()
    }

    /// Batch entry ids allow letters, digits, '-' and '_': SQS message ids are UUIDs, so they qualify.
    static func entryId(_ messageId: String) -> String {
        String(messageId.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }.prefix(80))
    }

    /// A refused message's record in the dead-letter file (see `DeadLetterFile`).
    /// False when the record could not be written (logged).
    private func recordDeadLetter(
        messageId: String, reason: String, body: String?, receiveCount: Int, attributes: [String: SQSMessage.MessageAttribute] = [:]
    ) -> Bool {
        let record = DeadLetterFile.Record(
            source: sourceName, messageId: messageId, reason: reason, body: body, at: Int64(Date().timeIntervalSince1970), receiveCount: receiveCount,
            attributes: attributes
        )
        do {
            try deadLetterFile.append(record)
            return true
        } catch {
            logger.error("cannot write dead-letter record", metadata: ["source": "\(sourceName)", "file": "\(deadLetterFile.path)", "error": "\(error)"])
            return false
        }
    }
}

extension Array {
    func chunked(_ size: Int) -> [[Element]] {
        stride(from: 0, to: count, by: size).map { Array(self[$0..<Swift.min($0 + size, count)]) }
    }
}
