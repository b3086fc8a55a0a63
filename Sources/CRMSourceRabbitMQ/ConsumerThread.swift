import AMQPClient
import CRMConfig
import CRMSourceSupport
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The thread that owns the source's AMQP connections: it consumes, acks, dead-letters, and reconnects.
///
/// librabbitmq blocks and is not thread-safe, so everything that touches a connection happens here, off Swift's
/// cooperative pool. The thread waits in `poll` on the socket and on the completion inbox's wake-up pipe, and calls into
/// librabbitmq at least every quarter heartbeat, which is when the library sends and checks heartbeats.
final class ConsumerThread: @unchecked Sendable {
    // Everything mutable below is touched only by the consumer thread, except `stopFlag` (thread-safe); the handoff
    // is called on this thread only.
    let sourceName: String
    let config: RabbitMQSourceConfig
    let inbox: CompletionInbox
    let stopFlag: StopFlag
    let logger: Logger
    let metrics: SourceMetrics
    /// The lanes the pipeline splits events over, for the `consuming` log; nil: the store takes batches in order.
    let lanesInUse: Int?
    /// Where the deliveries read together go, called on this thread.
    private let handoff: DeliveryHandoff
    private let finished = DispatchSemaphore(value: 0)

    private var generation = 0
    /// The queue each consumer of the current generation takes from, by consumer tag: one queue, or every shard.
    private var queueByConsumerTag: [String: String] = [:]
    /// Ack bookkeeping, and the deliveries of the current generation kept until settled (when `keepsDeliveries`),
    /// so a dead letter can carry the original and a reply its correlation id.
    private var tracker = DeliveryTracker<AMQPDelivery>()
    private var deadLetters: DeadLetterPublisher?
    /// Dead-letter completions waiting for a successful publish.
    private var pendingDeadLetters: [(tag: UInt64, delivery: AMQPDelivery?, reason: String, code: String)] = []
    private var deadLetterRetry = SidePublishRetry()
    private var replies: ReplyPublisher?
    /// Completions whose reply must be confirmed by the broker before they are carried out.
    private var pendingReplies: [Completion] = []
    private var replyRetry = SidePublishRetry()
    /// When each side connection last published (`closeIdleSideConnections`).
    private var deadLettersUsed = ContinuousClock.now
    private var repliesUsed = ContinuousClock.now
    /// Generations the pipeline gave back whole: their requeues close the channel (`AbandonedGenerations`).
    private let abandoned: AbandonedGenerations
    /// Set by a requeue of an abandoned generation; `settleCompletions` then closes the channel.
    private var closeToGiveBack = false
    /// Whether deliveries are kept until settled (for dead letters or replies).
    private var keepsDeliveries: Bool { config.deadLetter != nil || config.replies != nil }

    init(
        sourceName: String, config: RabbitMQSourceConfig, inbox: CompletionInbox, stopFlag: StopFlag, logger: Logger, metrics: SourceMetrics,
        lanesInUse: Int?, handoff: DeliveryHandoff, abandoned: AbandonedGenerations
    ) {
        self.abandoned = abandoned
        self.lanesInUse = lanesInUse
        self.handoff = handoff
        self.sourceName = sourceName
        self.config = config
        self.inbox = inbox
        self.stopFlag = stopFlag
        self.logger = logger
        self.metrics = metrics
    }

    func start() {
        let thread = Thread { [self] in
            ThreadName.nameCurrentThread(ThreadName.make("rmq:", sourceName))
            runLoop()
            handoff.finish()
            finished.signal()
        }
        thread.start()
    }

    func requestStop() {
        stopFlag.set()
        inbox.wake()
    }

    /// Blocks the calling thread until the consumer thread ended; call it off the cooperative pool.
    func join() { finished.wait() }

    // MARK: The loop

    private func runLoop() {
        var backoff = Duration.milliseconds(500)
        if config.deadLetter == nil {
            let hasDLX = config.declare?.arguments["x-dead-letter-exchange"] != nil
            logger.warning(hasDLX ? "no dead_letter target: refused messages are rejected to the queue's dead-letter exchange"
                : "no dead_letter target and no x-dead-letter-exchange declared: unless the queue has a dead-letter exchange, refused messages are lost",
                metadata: ["source": "\(sourceName)", "queue": "\(config.queue)"])
        }
        while !stopFlag.isSet {
            do {
                let connection = try connect()
                metrics.connected()
                backoff = .milliseconds(500)
                try session(connection)
                connection.close()
                deadLetters?.close()
                replies?.close()
                return
            } catch {
                // A channel closed to give a batch back is no outage: the source stays up while it reconnects.
                if !closeToGiveBack { metrics.disconnected("\(error)") }
                // Tags of the dead channel mean nothing on the next one: drop them; the broker redelivers those
                // messages, and the ledger turns the ones we committed into duplicates.
                tracker = DeliveryTracker()
                pendingDeadLetters.removeAll()
                pendingReplies.removeAll()
                deadLetters?.close()
                deadLetters = nil
                replies?.close()
                replies = nil
                if closeToGiveBack {
                    closeToGiveBack = false
                    let then = stopFlag.isSet ? "stopping" : "reconnecting"
                    logger.notice("gave a failed batch back to the queue with every later delivery (channel closed), \(then)", metadata: [
                        "source": "\(sourceName)",
                    ])
                    if stopFlag.isSet { return }
                    waitForWake(.milliseconds(100))
                    continue
                }
                let jittered = backoff * Double.random(in: 0.5...1.0)
                logger.notice("RabbitMQ connection lost, reconnecting in \(jittered)", metadata: [
                    "source": "\(sourceName)", "url": "\(config.endpoint.maskedURL)", "error": "\(error)",
                ])
                waitForWake(jittered)
                backoff = min(backoff * 2, .seconds(30))
            }
        }
    }

    /// Connects, declares, binds and starts consuming: one consumer for the queue, or one per shard queue, all on
    /// channel 1, so one delivery tracker and one ack watermark cover them.
    private func connect() throws(AMQPError) -> AMQPConnection {
        let connection = try AMQPConnection(
            endpoint: config.endpoint, heartbeatSeconds: config.heartbeatSeconds, connectionName: "crm-ingest \(sourceName)"
        )
        try connection.openChannel(1)
        if config.sharding != nil {
            try ShardTopology.declare(config, on: connection, channel: 1)
        } else {
            if let declare = config.declare {
                try connection.declareQueue(config.queue, channel: 1, durable: declare.durable, arguments: declare.arguments)
            }
            for binding in config.bindings {
                if let type = binding.exchangeType {
                    try connection.declareExchange(binding.exchange, type: type, channel: 1)
                }
                try connection.bindQueue(config.queue, exchange: binding.exchange, routingKey: binding.routingKey, channel: 1)
            }
        }
        try connection.setPrefetch(UInt16(config.prefetchPerConsumer), channel: 1)
        generation += 1
        tracker = DeliveryTracker()
        queueByConsumerTag.removeAll()
        let queues = config.consumedQueues
        for (index, queue) in queues.enumerated() {
            let tag = "crm-ingest.\(sourceName).\(generation)" + (config.sharding == nil ? "" : ".shard.\(index)")
            queueByConsumerTag[try connection.consume(queue: queue, channel: 1, consumerTag: tag)] = queue
        }
        var metadata: Logger.Metadata = [
            "source": "\(sourceName)", "queue": "\(config.queue)", "url": "\(config.endpoint.maskedURL)",
            "prefetch": "\(config.prefetch)",
        ]
        if let lanesInUse { metadata["lanes"] = "\(lanesInUse)" } else { metadata["order"] = "submission" }
        if let sharding = config.sharding {
            // Subscribed to every shard; the broker decides which of them this daemon is active on.
            metadata["shards"] = "\(sharding.count)"
            metadata["exchange"] = "\(sharding.exchange)"
            metadata["prefetch_per_shard"] = "\(config.prefetchPerConsumer)"
        }
        logger.info("consuming", metadata: metadata)
        return connection
    }

    /// Consumes until a stop is requested and every delivery is settled. Throws on any connection trouble.
    private func session(_ connection: AMQPConnection) throws(AMQPError) {
        var cancelRequested = false
        var cancelled: Set<String> = [] // consumers whose cancel the broker confirmed
        var cancelDeadline = ContinuousClock.now
        // A quarter heartbeat: librabbitmq sends and checks heartbeats only inside calls. No heartbeat: once a second.
        let pollInterval = Int32(config.heartbeatSeconds == 0 ? 1_000 : max(50, min(1_000, config.heartbeatSeconds * 1_000 / 4)))
        while true {
            try settleCompletions(connection)
            if stopFlag.isSet && !cancelRequested {
                for consumerTag in queueByConsumerTag.keys {
                    try connection.requestCancel(consumerTag: consumerTag, channel: 1)
                }
                cancelRequested = true
                cancelDeadline = ContinuousClock.now + .seconds(5)
            }
            if cancelRequested, cancelled.count == queueByConsumerTag.count || ContinuousClock.now > cancelDeadline, tracker.outstanding == 0,
               pendingDeadLetters.isEmpty, pendingReplies.isEmpty {
                logger.info("stopped consuming; every delivery settled", metadata: ["source": "\(sourceName)"])
                return
            }
            if !connection.hasBufferedInput {
                var fds = [
                    pollfd(fd: connection.socketDescriptor, events: Int16(POLLIN), revents: 0),
                    pollfd(fd: inbox.eventDescriptor, events: Int16(POLLIN), revents: 0),
                ]
                _ = poll(&fds, 2, pendingDeadLetters.isEmpty && pendingReplies.isEmpty ? pollInterval : min(pollInterval, 200))
            }
            var deliveries: [AMQPDelivery] = []
            while deliveries.count < config.prefetch, let event = try connection.nextEvent(timeout: .zero) {
                switch event {
                case let .delivery(delivery):
                    tracker.received(delivery.deliveryTag, keeping: keepsDeliveries ? delivery : nil)
                    deliveries.append(delivery)
                case let .consumerCancelOk(_, consumerTag):
                    cancelled.insert(consumerTag)
                case .consumerCancelled:
                    throw AMQPError(.connectionClosed, "the broker cancelled the consumer (queue deleted or moved)")
                case .confirmed, .rejected, .returned:
                    break
                }
            }
            if !deliveries.isEmpty {
                handoff.deliver(DeliveryBatch(generation: generation, deliveries: deliveries))
            }
        }
    }

    /// Acks, rejects, requeues and dead-letters what the pipeline finished; completions with a reply wait until
    /// the broker confirmed it.
    private func settleCompletions(_ connection: AMQPConnection) throws(AMQPError) {
        if deadLetters != nil || replies != nil { closeIdleSideConnections() }
        for completion in inbox.take() where completion.generation == generation {
            if completion.reply != nil, config.replies != nil {
                pendingReplies.append(completion)
            } else {
                try settle(completion, connection)
            }
        }
        if !pendingReplies.isEmpty { try publishReplies(connection) }
        if !pendingDeadLetters.isEmpty { try publishDeadLetters(connection) }
        if let ackTag = tracker.advance() {
            try connection.ack(ackTag, multiple: true, channel: 1)
        }
        if closeToGiveBack {
            // Acked above: what committed before the given-back deliveries. Everything after them returns too.
            throw AMQPError(.channelClosed, "closed by crm-ingest to give a failed batch back")
        }
    }

    /// Carries out one completion: ack, requeue, reject to the queue's dead-letter exchange, or queue a dead letter.
    private func settle(_ completion: Completion, _ connection: AMQPConnection) throws(AMQPError) {
        let tag = completion.deliveryTag
        switch completion.disposition {
        case .ack where completion.reply != nil && config.replies != nil:
            // Its reply is confirmed (`publishReplies`): acked now, by itself, so that a channel closed to give an
            // earlier batch back (which holds the ack watermark) cannot send the request round to be answered again.
            try connection.ack(tag, multiple: false, channel: 1)
            tracker.finished(tag, needsAck: false)
        case .ack:
            tracker.finished(tag, needsAck: true)
        case .requeue where abandoned.contains(completion.generation):
            // Not settled here: the channel is closed once the completions at hand are (`settleCompletions`).
            closeToGiveBack = true
        case .requeue:
            try connection.nack(tag, multiple: false, requeue: true, channel: 1)
            tracker.finished(tag, needsAck: false)
        case let .deadLetter(reason, code):
            metrics.deadLettered(code: code)
            // on_refused: retry sends refusals through the queue's own dead-letter exchange (its retry loop);
            // only a message past max_redeliveries ("redelivered") goes to the dead_letter target.
            let throughQueueDLX = config.deadLetter == nil || (config.onRefused == .retry && code != "redelivered")
            if throughQueueDLX {
                try connection.reject(tag, requeue: false, channel: 1)
                tracker.finished(tag, needsAck: false)
            } else {
                pendingDeadLetters.append((tag, tracker.take(tag), reason, code))
            }
        }
    }

    /// Closes a side connection (dead letters, replies) that published nothing for a heartbeat interval; the next
    /// publish opens one again. librabbitmq sends and checks heartbeats only inside calls, so a side connection left
    /// idle for two intervals was closed by the broker, and the next dead letter or reply failed once on it
    /// (`cannot publish …, will retry`, a second's wait, an error in the log every time refusals were minutes apart).
    /// The interval is the one each connection negotiated (the broker's when it asked for a shorter one).
    private func closeIdleSideConnections() {
        let now = ContinuousClock.now
        func idle(_ connection: AMQPConnection, since used: ContinuousClock.Instant) -> Bool {
            let heartbeat = connection.negotiatedHeartbeatSeconds
            return heartbeat > 0 && used + .seconds(heartbeat) < now
        }
        if let deadLetters, pendingDeadLetters.isEmpty, idle(deadLetters.publisher.connection, since: deadLettersUsed) {
            deadLetters.close()
            self.deadLetters = nil
        }
        if let replies, pendingReplies.isEmpty, idle(replies.publisher.connection, since: repliesUsed) {
            replies.close()
            self.replies = nil
        }
    }

    /// Publishes pending replies and waits for the broker's confirms; only then are their requests settled. On
    /// failure the requests stay pending for another try; given up (see `SidePublishRetry`), they go back to the
    /// queue unsettled: their effects are committed, so the redelivery is a duplicate for the store, answered then.
    private func publishReplies(_ connection: AMQPConnection) throws(AMQPError) {
        guard let target = config.replies, replyRetry.due else { return }
        do {
            if replies == nil {
                replies = try ReplyPublisher(endpoint: config.endpoint, target: target, sourceName: sourceName, heartbeatSeconds: config.heartbeatSeconds)
            }
            let taken = try replies?.publish(pendingReplies.map { ($0.reply ?? [], tracker.kept($0.deliveryTag)) },
                                             confirmTimeout: sideConfirmTimeout) ?? []
            repliesUsed = .now
            // Only requests whose reply the broker took are settled; the others stay pending, so a retry does not
            // put a second copy of the taken replies on the reply queue.
            let pending = pendingReplies
            pendingReplies.removeAll()
            for (completion, took) in zip(pending, taken) {
                if took { try settle(completion, connection) } else { pendingReplies.append(completion) }
            }
            if !pendingReplies.isEmpty {
                throw AMQPError(.publishRejected, "\(pendingReplies.count) of \(taken.count) replies nacked or returned unroutable by the broker")
            }
            replyRetry.succeeded()
        } catch {
            replies?.close()
            replies = nil
            guard replyRetry.failed(stopping: stopFlag.isSet) else {
                logger.error("cannot publish replies, will retry", metadata: ["source": "\(sourceName)", "error": "\(error)"])
                return
            }
            logger.error("cannot publish replies, giving the requests back to the queue", metadata: [
                "source": "\(sourceName)", "count": "\(pendingReplies.count)", "error": "\(error)",
            ])
            try giveBack(pendingReplies.map(\.deliveryTag), connection)
            pendingReplies.removeAll()
        }
    }

    /// Publishes pending dead letters and waits for the broker's confirms; only then are the originals acked.
    /// A failure leaves them pending (unacked) for another try; given up (see `SidePublishRetry`), they go back to
    /// the queue (nack with requeue), so one broken dead-letter target never stalls consumption or shutdown, and no
    /// message is lost.
    private func publishDeadLetters(_ connection: AMQPConnection) throws(AMQPError) {
        guard let target = config.deadLetter, deadLetterRetry.due else { return }
        do {
            if deadLetters == nil {
                deadLetters = try DeadLetterPublisher(endpoint: config.endpoint, target: target, sourceName: sourceName, heartbeatSeconds: config.heartbeatSeconds)
            }
            let taken = try deadLetters?.publish(pendingDeadLetters.map { item in
                (item.delivery, item.reason, item.delivery.flatMap { queueByConsumerTag[$0.consumerTag] } ?? config.queue)
            }, confirmTimeout: sideConfirmTimeout) ?? []
            deadLettersUsed = .now
            // Only what the broker took is done: retrying the whole batch put a second copy of the others in the
            // target at every try (and the give-back after three, a third once redelivered and refused again).
            // Each original is acked now, by itself: a channel closed to give an earlier batch back (which holds the
            // ack watermark) would otherwise send it round to be dead-lettered again.
            var refused: [(tag: UInt64, delivery: AMQPDelivery?, reason: String, code: String)] = []
            for (item, took) in zip(pendingDeadLetters, taken) {
                if took {
                    try connection.ack(item.tag, multiple: false, channel: 1)
                    tracker.finished(item.tag, needsAck: false)
                } else {
                    refused.append(item)
                }
            }
            pendingDeadLetters = refused
            if !refused.isEmpty {
                throw AMQPError(.publishRejected, "\(refused.count) of \(taken.count) dead letters nacked or returned unroutable by the broker")
            }
            deadLetterRetry.succeeded()
        } catch {
            deadLetters?.close()
            deadLetters = nil
            guard deadLetterRetry.failed(stopping: stopFlag.isSet) else {
                logger.error("cannot publish dead letters, will retry", metadata: ["source": "\(sourceName)", "error": "\(error)"])
                return
            }
            logger.error("cannot publish dead letters, giving the messages back to the queue", metadata: [
                "source": "\(sourceName)", "count": "\(pendingDeadLetters.count)", "error": "\(error)",
            ])
            try giveBack(pendingDeadLetters.map(\.tag), connection)
            pendingDeadLetters.removeAll()
        }
    }

    /// Confirms of dead letters and replies are waited for at most half a heartbeat: the consuming connection is
    /// not serviced meanwhile.
    private var sideConfirmTimeout: Duration { .seconds(max(1, min(10, config.heartbeatSeconds / 2))) }

    /// Nacks with requeue: the broker delivers these messages again.
    private func giveBack(_ tags: [UInt64], _ connection: AMQPConnection) throws(AMQPError) {
        for tag in tags {
            try connection.nack(tag, multiple: false, requeue: true, channel: 1)
            tracker.finished(tag, needsAck: false)
        }
    }

    /// Sleeps up to `duration`, waking early for a stop request.
    private func waitForWake(_ duration: Duration) {
        var fds = [pollfd(fd: inbox.eventDescriptor, events: Int16(POLLIN), revents: 0)]
        let milliseconds = Int32(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
        _ = poll(&fds, 1, milliseconds)
        _ = inbox.take() // completions of a dead generation are void
    }
}

/// Where the consumer thread hands the deliveries it read together, and says that no more come. Both are called on
/// the consumer thread: `deliver` must not block for long (the connection is not serviced meanwhile).
struct DeliveryHandoff: Sendable {
    let deliver: @Sendable (DeliveryBatch) -> Void
    let finish: @Sendable () -> Void

    /// Into an async stream, for the pipeline's tasks.
    static func stream() -> (DeliveryHandoff, AsyncStream<DeliveryBatch>) {
        let (stream, continuation) = AsyncStream<DeliveryBatch>.makeStream()
        return (DeliveryHandoff(deliver: { continuation.yield($0) }, finish: { continuation.finish() }), stream)
    }
}

/// The dead-letter path: its own connection, publisher confirms, the reason and the source in headers.
final class DeadLetterPublisher {
    let publisher: AMQPPublisher
    let target: RabbitMQSourceConfig.DeadLetterTarget
    let sourceName: String

    init(endpoint: AMQPEndpoint, target: RabbitMQSourceConfig.DeadLetterTarget, sourceName: String, heartbeatSeconds: Int) throws(AMQPError) {
        publisher = try AMQPPublisher(endpoint: endpoint, heartbeatSeconds: heartbeatSeconds, connectionName: "crm-ingest \(sourceName) dead letters")
        self.target = target
        self.sourceName = sourceName
        if case let .queue(name) = target { try publisher.declareQueueIfMissing(name) }
    }

    /// Publishes each refused delivery with its reason and the queue it came from, waits for the confirms, and says
    /// which the broker took (`AMQPPublisher.publishEach`).
    func publish(_ items: [(delivery: AMQPDelivery?, reason: String, queue: String)], confirmTimeout: Duration) throws(AMQPError) -> [Bool] {
        let messages: [AMQPPublisher.Message] = items.map { item in
            var properties = item.delivery?.properties ?? AMQPProperties()
            properties.deliveryMode = 2
            properties.headers["x-crm-ingest-reason"] = .string(item.reason)
            properties.headers["x-crm-ingest-source"] = .string(sourceName)
            properties.headers["x-crm-ingest-queue"] = .string(item.queue)
            // The routing key it was published with (a sharded topology's contact id): a replay routes by it again.
            if let routingKey = item.delivery?.routingKey { properties.headers["x-crm-ingest-routing-key"] = .string(routingKey) }
            properties.headers["x-crm-ingest-dead-lettered-at"] = .timestamp(UInt64(Date().timeIntervalSince1970))
            // How many deliveries it took: the broker's count when it keeps one (quorum queues, x-death), else 1,
            // or 2 for a message the broker marked redelivered.
            let deliveries = item.delivery.map { $0.properties.previousDeliveries.map { $0 + 1 } ?? ($0.redelivered ? 2 : 1) } ?? 1
            properties.headers["x-crm-ingest-delivery-count"] = .int(Int64(deliveries))
            switch target {
            case let .queue(name):
                return .init(body: item.delivery?.body ?? [], exchange: "", routingKey: name, properties: properties, mandatory: true)
            case let .exchange(name, routingKey):
                // Mandatory: a dead letter nothing is bound to take comes back as a failure instead of vanishing.
                return .init(body: item.delivery?.body ?? [], exchange: name, routingKey: routingKey ?? item.delivery?.routingKey ?? "",
                             properties: properties, mandatory: true)
            }
        }
        return try publisher.publishEach(messages, window: 500, confirmTimeout: confirmTimeout)
    }

    func close() { publisher.close() }
}

/// The reply path of request formats (Altcraft's `database_import_result`): its own connection, publisher confirms,
/// persistent replies that expire after the configured TTL.
final class ReplyPublisher {
    let publisher: AMQPPublisher
    let target: RabbitMQSourceConfig.ReplyTarget
    let sourceName: String

    init(endpoint: AMQPEndpoint, target: RabbitMQSourceConfig.ReplyTarget, sourceName: String, heartbeatSeconds: Int) throws(AMQPError) {
        publisher = try AMQPPublisher(endpoint: endpoint, heartbeatSeconds: heartbeatSeconds, connectionName: "crm-ingest \(sourceName) replies")
        self.target = target
        self.sourceName = sourceName
        var arguments = AMQPTable()
        arguments["x-message-ttl"] = .int(Int64(target.ttlSeconds) * 1000)
        try publisher.declareQueueIfMissing(target.queue, arguments: arguments)
    }

    /// Publishes the replies, each with its request's correlation id (or message id), waits for the confirms, and
    /// says which the broker took (`AMQPPublisher.publishEach`).
    func publish(_ items: [(body: [UInt8], request: AMQPDelivery?)], confirmTimeout: Duration) throws(AMQPError) -> [Bool] {
        let expiration = String(target.ttlSeconds * 1000)
        let messages = items.map { item in
            var properties = AMQPProperties(contentType: "application/json", deliveryMode: 2, expiration: expiration)
            properties.correlationId = item.request?.properties.correlationId ?? item.request?.properties.messageId
            properties.appId = "crm-ingest"
            properties.headers["x-crm-ingest-source"] = .string(sourceName)
            return AMQPPublisher.Message(body: item.body, exchange: "", routingKey: target.queue, properties: properties, mandatory: true)
        }
        return try publisher.publishEach(messages, window: 500, confirmTimeout: confirmTimeout)
    }

    func close() { publisher.close() }
}

/// When a side publisher (dead letters, replies) tries again: a second after a failure; after three failures in a
/// row, or when stopping, the caller gives its messages back to the queue instead.
struct SidePublishRetry {
    private var failures = 0
    private var nextAttempt = ContinuousClock.now

    var due: Bool { ContinuousClock.now >= nextAttempt }

    mutating func succeeded() { failures = 0 }

    /// Records a failure; true when the caller should give up now.
    mutating func failed(stopping: Bool) -> Bool {
        failures += 1
        nextAttempt = ContinuousClock.now + .seconds(1)
        guard failures >= 3 || stopping else { return false }
        failures = 0
        return true
    }
}
