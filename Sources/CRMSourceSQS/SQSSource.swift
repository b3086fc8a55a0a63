import AWSSigV4
import CRMConfig
import CRMCore
import CRMSourceSupport
import Dispatch
import Foundation
import CoreMetrics
import Logging
import SNSSupport
import SQSClient
import ServiceLifecycle
import Synchronization

/// An SQS queue as a source of events: a `Service` that polls until graceful shutdown, then drains.
///
/// A message is deleted only after the store committed its event (or found it a duplicate); messages in process
/// are kept invisible past the queue's visibility timeout; SNS notifications are unwrapped and the SNS
/// `MessageId` keys them; a filter policy drops what it does not match (deleted and counted).
public struct SQSSource: Service {
    public let name: String
    public let config: SQSSourceConfig
    let processor: @Sendable () -> EventProcessor
    let store: any CRMStore
    let logger: Logger
    let now: @Sendable () -> Timestamp
    /// How long a batch is retried before the store is asked (a ping) whether it is down or only refuses the batch.
    let retryBudget: Duration
    let environment: [String: String]
    /// Reports committed events whose actions had nothing to act on.
    let actionNotes: ActionNotes
    let statusBoard: SourceStatusBoard?

    public init(
        name: String, config: SQSSourceConfig, processor: @escaping @Sendable () -> EventProcessor, store: any CRMStore,
        logger: Logger, now: @escaping @Sendable () -> Timestamp = Timestamp.now, retryBudget: Duration = .seconds(120),
        environment: [String: String] = ProcessInfo.processInfo.environment, statusBoard: SourceStatusBoard? = nil
    ) {
        self.statusBoard = statusBoard
        self.name = name
        self.config = config
        self.processor = processor
        self.store = store
        self.logger = logger
        self.now = now
        self.retryBudget = retryBudget
        self.environment = environment
        actionNotes = ActionNotes(source: name, logger: logger)
    }

    /// What a run did, for logs and the requests-per-message figure.
    public struct Totals: Sendable {
        public var received = 0
        public var applied = 0
        public var duplicates = 0
        /// Republished records identical to what the store holds.
        public var unchanged = 0
        public var filtered = 0
        public var refused = 0
        public var requests = 0
    }

    public func run() async throws {
        _ = try await runReturningTotals()
    }

    /// `run`, returning the totals (tests and benchmarks read them).
    public func runReturningTotals() async throws -> Totals {
        let metrics = EventMetrics(source: name)
        let board = statusBoard
        let name = self.name
        board?.set(name, .starting)
        // The credentials and the queue's settings, tried until they come (or the source stops): a wrong secret or a missing queue is
        // reported (log, /readyz, crm_ingest_source_up) while the daemon's other sources go on.
        var backoff = Duration.seconds(1)
        var settings: (visibility: Int, redrive: RedrivePolicy?)?
        let credentialsFound = Mutex<AWSCredentialsProvider?>(nil)
        let environment = environment
        while settings == nil {
            do {
                // Finding and fetching credentials may block (a file, the container endpoint, the instance metadata).
                settings = try await onOwnThread { [logger] () throws -> (Int, RedrivePolicy?) in
                    let credentials = try credentialsFound.withLock { found in
                        if let found { return found }
                        found = try AWSCredentialsProvider.resolve(
                            given: config.credentials, profile: config.profile, region: config.region, environment: environment, logger: logger
                        )
                        return found!
                    }
                    let client = SQSClient(queueURL: config.queueURL, region: config.region, credentials: credentials, endpoint: config.endpoint)
                    let attributes = try client.queueAttributes(["VisibilityTimeout", "RedrivePolicy"])
                    return (config.visibilityTimeoutSeconds ?? Int(attributes["VisibilityTimeout"] ?? "") ?? 30, attributes["RedrivePolicy"].flatMap(RedrivePolicy.init))
                }
            } catch {
                let sqsError = error as? SQSError
                // A refusal is retried no sooner than 30 s; credentials not found yet (a container agent still
                // starting) with the ordinary back-off.
                let retry = sqsError?.isAuthentication == true ? max(backoff, .seconds(30)) : backoff
                let accessKey = credentialsFound.withLock { $0?.currentAccessKeyId }
                let metadata: Logger.Metadata = [
                    "source": "\(name)", "queue": "\(config.queueURL)", "access_key": "\(accessKey.map(LogRedaction.accessKey) ?? "-")",
                ]
                if let sqsError, sqsError.isAuthentication {
                    logger.error("SQS refused our credentials: \(sqsError.code): \(sqsError.message); trying again in \(retry)", metadata: metadata)
                } else if let credentialsError = error as? AWSCredentialsError {
                    logger.error("no AWS credentials: \(credentialsError); trying again in \(retry)", metadata: metadata)
                } else {
                    logger.warning("cannot read the queue's settings, trying again in \(retry): \(error)", metadata: metadata)
                }
                metrics.setUp(false)
                board?.set(name, .down("\(error)"))
                // Ends the wait early on graceful shutdown; then the source stops without having started.
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: retry) }
                if Task.isCancelled || Task.isShuttingDownGracefully { return Totals() }
                backoff = min(backoff * 2, .seconds(30))
            }
        }
        guard var (visibility, redrive) = settings, let credentials = credentialsFound.withLock({ $0 }) else { return Totals() }
        if redrive == nil {
            logger.warning("the queue has no redrive policy: refused messages are recorded in \(config.deadLetterFile) and deleted",
                           metadata: ["source": "\(name)"])
        }
        var receiving = config
        if visibility < 1 {
            // A queue whose VisibilityTimeout is 0 hands a message in process to the next receive at once: each
            // poller would take the others' messages again and again.
            logger.warning("the queue's visibility timeout is 0 s: receiving with 30 s instead (set visibility_timeout to choose)",
                           metadata: ["source": "\(name)"])
            visibility = 30
            receiving.visibilityTimeoutSeconds = 30
        }
        let workers = SQSWorkers(sourceName: name, config: receiving, credentials: credentials, visibilityTimeout: visibility,
                                 maxReceiveCount: redrive?.maxReceiveCount, logger: logger, onPoll: { error in
                                     metrics.setUp(error == nil)
                                     board?.set(name, error.map { .down($0) } ?? .up)
                                 })
        logger.info("polling", metadata: [
            "source": "\(name)", "queue": "\(config.queueURL)", "pollers": "\(config.pollers)", "visibility_timeout": "\(visibility)s",
        ])
        workers.start()
        let totals = TotalsBox(metrics: metrics)
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await pipeline(workers, totals: totals)
            } onCancel: {
                workers.stop.set()
            }
        } onGracefulShutdown: {
            workers.stop.set()
        }
        await onOwnThread { workers.waitForSettler() }
        var result = totals.value
        result.requests = workers.requestCount
        logger.info("stopped polling", metadata: [
            "source": "\(name)", "received": "\(result.received)", "applied": "\(result.applied)", "duplicates": "\(result.duplicates)",
            "filtered": "\(result.filtered)", "refused": "\(result.refused)", "sqs_requests": "\(result.requests)",
            "requests_per_message": "\(result.received == 0 ? 0 : Double(result.requests) / Double(result.received))",
        ])
        return result
    }

    /// Prepares each received batch and applies it over lanes (by contact, or by message group on FIFO queues).
    private func pipeline(_ workers: SQSWorkers, totals: TotalsBox) async {
        let lanes = (0..<max(1, config.lanes)).map { _ in LaneQueue<[(messageId: String, event: PlannedEvent)]>() }
        await withTaskGroup(of: Void.self) { group in
            for lane in lanes {
                group.addTask {
                    // When the store started failing for this lane (nil: it works).
                    var failingSince: ContinuousClock.Instant?
                    while let works = await lane.takeAll() {
                        let items = works.flatMap { $0 }
                        let dispositions = await apply(items.map(\.event), workers: workers, totals: totals, failingSince: &failingSince)
                        workers.complete(zip(items, dispositions).map { ($0.messageId, $1) })
                    }
                }
            }
            for await messages in workers.batches {
                let processor = processor()
                let receivedAt = now()
                var work = lanes.map { _ in [(messageId: String, event: PlannedEvent)]() }
                var immediate: [(messageId: String, disposition: SQSDisposition)] = []
                totals.add { $0.received += messages.count }
                for message in messages {
                    switch prepare(message, processor: processor, receivedAt: receivedAt) {
                    case let .event(event, laneKey):
                        totals.metrics.count(.received, type: event.type.rawValue)
                        work[Lanes.lane(of: laneKey, count: lanes.count)].append((message.messageId, event))
                    case .filtered:
                        totals.metrics.count(.received, type: nil)
                        totals.metrics.count(.filtered, type: nil)
                        totals.add { $0.filtered += 1 }
                        immediate.append((message.messageId, .delete))
                    case let .skipped(type):
                        totals.metrics.count(.received, type: type.rawValue)
                        totals.metrics.count(.skipped, type: type.rawValue)
                        immediate.append((message.messageId, .delete))
                    case let .refused(reason):
                        totals.metrics.count(.received, type: nil)
                        totals.metrics.count(.rejected, type: nil)
                        totals.metrics.deadLettered(reason: "refused")
                        totals.add { $0.refused += 1 }
                        logger.warning("message refused", metadata: ["source": "\(name)", "event_id": "\(message.messageId)", "reason": "\(LogRedaction.reason(reason))"])
                        immediate.append((message.messageId, .refused(reason: reason, body: message.body)))
                    }
                }
                workers.complete(immediate)
                for (index, items) in work.enumerated() where !items.isEmpty { lanes[index].append(items) }
            }
            for lane in lanes { lane.finish() }
        }
    }

    enum Prepared {
        case event(PlannedEvent, laneKey: String)
        case filtered
        case skipped(EventType)
        case refused(String)
    }

    /// SNS unwrapping, the filter policy, then the ordinary decoder and planner.
    /// What an SQS message carries for the pipeline: SNS envelopes unwrapped (their `MessageId` and attributes
    /// taken), the filter policy applied.
    public enum Incoming: Sendable {
        case message(IncomingMessage)
        /// The filter policy does not match.
        case filtered
        /// An SNS envelope that cannot be read.
        case refused(String)
    }

    public static func incoming(
        _ message: SQSMessage, config: SQSSourceConfig, source name: String, processor: EventProcessor, receivedAt: Timestamp
    ) -> Incoming {
        // The body as it arrived keeps the message limits; an SNS envelope's `Message` is itself the message, so
        // that one string may be as long as a whole message.
        var envelopeLimits = processor.limits.json
        envelopeLimits.maxStringBytes = max(envelopeLimits.maxStringBytes, envelopeLimits.maxBytes)
        let parser = JSONParser(limits: envelopeLimits)
        var body = Array(message.body.utf8)
        var messageId = message.messageId
        var attributes: [String: SNSMessageAttribute] = message.messageAttributes.mapValues {
            SNSMessageAttribute(type: $0.dataType, value: $0.stringValue ?? "")
        }
        var parsedBody: JSONValue?
        if config.sns == .auto || config.filterPolicy?.scope == .messageBody, let json = try? parser.parse(body) {
            parsedBody = json
            if config.sns == .auto {
                do {
                    if let envelope = try SNSEnvelope.unwrap(json) {
                        body = Array(envelope.message.utf8)
                        messageId = envelope.messageId
                        attributes = envelope.messageAttributes
                        parsedBody = try? envelope.payload(parser: parser)
                    }
                } catch {
                    return .refused(error.description)
                }
            }
        }
        if let policy = config.filterPolicy {
            let matches: Bool
            switch policy.scope {
            case .messageAttributes: matches = policy.matches(attributes: attributes)
            case .messageBody: matches = parsedBody.map { policy.matches(body: $0) } ?? false
            }
            if !matches { return .filtered }
        }
        var incoming = IncomingMessage(body: body, identity: .messageId(messageId), mayBeRedelivery: message.receiveCount > 1,
                                       receivedAt: receivedAt, source: name)
        if processor.readsMessageMetadata {
            // SQS (and SNS) have one kind of message attribute: both header: and attribute: read them.
            let values = attributes.mapValues(\.value)
            incoming.headers = values
            incoming.attributes = values
        }
        return .message(incoming)
    }

    func prepare(_ message: SQSMessage, processor: EventProcessor, receivedAt: Timestamp) -> Prepared {
        let incoming: IncomingMessage
        switch Self.incoming(message, config: config, source: name, processor: processor, receivedAt: receivedAt) {
        case let .message(message): incoming = message
        case .filtered: return .filtered
        case let .refused(reason): return .refused(reason)
        }
        switch processor.prepare(incoming) {
        case let .event(event): return .event(event, laneKey: config.isFIFO ? (message.messageGroupId ?? event.contactId) : event.contactId)
        case let .skipped(type): return .skipped(type)
        case let .rejected(error): return .refused(error.description)
        }
    }

    /// Applies a lane's events. A busy or unavailable store is retried with back-off (100 ms doubling to 5 s) while
    /// the messages stay in flight, their visibility extended; once `max_in_flight` are held the pollers stop
    /// receiving. After `retryBudget` the store is pinged: one that does not answer is down, and the retries go on
    /// (giving the messages back only had them received again and again, each time counting towards the redrive
    /// policy's `maxReceiveCount`, so a long outage moved healthy messages to the dead-letter queue); one that
    /// answers refuses this batch, which is given back so that it cannot hold its lane. A failure retrying cannot
    /// fix, or a stop, gives them back at once, after a pause growing with how long the store has been failing.
    private func apply(
        _ events: [PlannedEvent], workers: SQSWorkers, totals: TotalsBox, failingSince: inout ContinuousClock.Instant?
    ) async -> [SQSDisposition] {
        // In the parts the store takes in one transaction, in order; once a part is given back, so is the rest,
        // unapplied (on a FIFO queue a later message of the group must not commit before the given-back one).
        var dispositions: [SQSDisposition] = []
        dispositions.reserveCapacity(events.count)
        await store.inTransactionParts(of: events.count) { part, giveBack in
            if giveBack {
                dispositions += repeatElement(.giveBack, count: part.count)
                return true
            }
            let partEvents = part.count == events.count ? events : Array(events[part])
            let settled = await applyPart(partEvents, workers: workers, totals: totals, failingSince: &failingSince)
            dispositions += settled
            return settled.contains { if case .giveBack = $0 { true } else { false } }
        }
        return dispositions
    }

    private func applyPart(
        _ events: [PlannedEvent], workers: SQSWorkers, totals: TotalsBox, failingSince: inout ContinuousClock.Instant?
    ) async -> [SQSDisposition] {
        var delay = Duration.milliseconds(100)
        var budgetFrom: ContinuousClock.Instant?
        while true {
            do {
                let started = ContinuousClock.now
                let outcomes = try await store.apply(events, now: now())
                failingSince = nil
                totals.metrics.recordLatency(ContinuousClock.now - started)
                return zip(events, outcomes).map { event, outcome in
                    switch outcome {
                    case let .applied(notes):
                        totals.metrics.count(notes.isEmpty ? .applied : .incomplete, type: event.type.rawValue)
                        actionNotes.note(notes, eventType: event.type.rawValue)
                        totals.add { $0.applied += 1 }
                        return .delete
                    case .imported:
                        // Profile imports (Altcraft) are RabbitMQ-only: the loader refuses them here.
                        totals.metrics.count(.applied, type: event.type.rawValue)
                        totals.add { $0.applied += 1 }
                        return .delete
                    case .duplicate:
                        totals.metrics.count(.duplicate, type: event.type.rawValue)
                        totals.add { $0.duplicates += 1 }
                        return .delete
                    case .unchanged:
                        totals.metrics.count(.unchanged, type: event.type.rawValue)
                        totals.add { $0.unchanged += 1 }
                        return .delete
                    case let .failed(error):
                        totals.metrics.count(.rejected, type: event.type.rawValue)
                        totals.metrics.deadLettered(reason: "store_\(error.code)")
                        totals.add { $0.refused += 1 }
                        return .refused(reason: error.description, body: "")
                    }
                }
            } catch {
                let started = failingSince ?? ContinuousClock.now
                failingSince = started
                var givingUp = workers.stop.isSet || (error as? StoreError)?.isTransient == false
                if !givingUp, ContinuousClock.now - (budgetFrom ?? ContinuousClock.now) >= retryBudget {
                    if (try? await store.ping()) != nil {
                        logger.error("the store answers but keeps failing this batch", metadata: ["source": "\(name)", "error": "\(error)"])
                        givingUp = true
                    } else {
                        budgetFrom = ContinuousClock.now // down: asked again after another budget
                    }
                }
                if budgetFrom == nil { budgetFrom = ContinuousClock.now }
                if givingUp {
                    logger.error("store failed; giving messages back to the queue", metadata: ["source": "\(name)", "error": "\(error)"])
                    // Without a pause, messages given back and received again at once (on_failure: release) made a
                    // store that keeps refusing a hot loop of receives.
                    let pause = min(.seconds(5), max(.milliseconds(100), ContinuousClock.now - started))
                    let end = ContinuousClock.now + pause
                    while !workers.stop.isSet, ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(100)) }
                    return Array(repeating: .giveBack, count: events.count)
                }
                logger.warning("store failed, retrying in \(delay); the messages stay in flight", metadata: ["source": "\(name)", "error": "\(error)"])
                let end = ContinuousClock.now + delay
                while !workers.stop.isSet, ContinuousClock.now < end { try? await Task.sleep(for: min(.milliseconds(100), ContinuousClock.now.duration(to: end))) }
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}

/// Totals updated from several tasks (the run's summary); the metrics count the same events by type.
final class TotalsBox: @unchecked Sendable {
    // `totals` is guarded by `lock`; the metrics are thread-safe.
    private let lock = NSLock()
    private var totals = SQSSource.Totals()
    let metrics: EventMetrics

    init(metrics: EventMetrics) {
        self.metrics = metrics
    }

    func add(_ change: (inout SQSSource.Totals) -> Void) {
        lock.withLock { change(&totals) }
    }

    var value: SQSSource.Totals { lock.withLock { totals } }
}

