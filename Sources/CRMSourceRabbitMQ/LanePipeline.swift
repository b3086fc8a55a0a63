import AMQPClient
import CRMCore
import CRMSourceSupport
import Foundation
import Logging
import CoreMetrics
import Metrics
import Synchronization

/// Deliveries received together on one channel generation.
struct DeliveryBatch: Sendable {
    var generation: Int
    var deliveries: [AMQPDelivery]
}

/// Channel generations whose deliveries are being given back to the queue whole (`LanePipeline.apply` gave up on a
/// batch). Giving back only the failed batch broke per-contact order when the store recovered at once: later
/// deliveries of the same contacts, already read, committed before the given-back ones came round again. So once a
/// batch is given back, no later work of its generation is applied, and the consumer thread closes the channel
/// instead of nacking (`ConsumerThread.settle`): the broker then returns every unacked message, in queue order.
final class AbandonedGenerations: Sendable {
    private let latest = Atomic<Int>(0)

    init() {}

    /// Gives up on `generation` and every earlier one.
    func abandon(_ generation: Int) {
        latest.max(generation, ordering: .acquiringAndReleasing)
    }

    func contains(_ generation: Int) -> Bool { generation <= latest.load(ordering: .acquiring) }
}

/// Turns delivery batches into store transactions and completions.
///
/// Each batch is decoded and planned in delivery order. A store that commits batches in the order they were
/// submitted (`CRMStore.makeOrderedSubmitter`: SQLite) gets each batch as soon as it is planned, while earlier ones
/// are still in a transaction (`orderedIntake`, called on the consumer thread), and the outcomes are settled in the
/// same order (`settleOrdered`; `runOrdered` joins the two for a stream of batches). With any other store
/// (PostgreSQL) the events are split over lanes by a hash of the contact id: a lane applies its events in order, one
/// transaction per sub-batch, and waits for each before the next (`runLane`). Either way an event for contact X
/// never commits before an earlier-delivered event for X.
struct LanePipeline: Sendable {
    let sourceName: String
    let laneCount: Int
    let maxRedeliveries: Int
    let processor: @Sendable () -> EventProcessor
    let store: any CRMStore
    let inbox: CompletionInbox
    let stopping: StopFlag
    let logger: Logger
    let now: @Sendable () -> Timestamp
    let metrics: SourceMetrics
    /// How long a batch is retried on a store that is busy or down before its messages go back to the queue.
    let retryBudget: Duration
    /// Shared with the consumer thread: generations given back whole.
    var abandoned = AbandonedGenerations()

    struct LaneWork: Sendable {
        var generation: Int
        var tags: [UInt64]
        var events: [PlannedEvent]
    }

    /// Runs until `batches` ends and every batch is settled.
    func run(_ batches: AsyncStream<DeliveryBatch>) async {
        await run(batches, orderedSubmitter: store.makeOrderedSubmitter())
    }

    /// Runs until `batches` ends and every batch is settled; `orderedSubmitter` is the store's
    /// (`makeOrderedSubmitter`), nil for lanes.
    func run(_ batches: AsyncStream<DeliveryBatch>, orderedSubmitter: (any OrderedSubmitter)?) async {
        if let submitter = orderedSubmitter {
            await runOrdered(batches, submitter: submitter)
            return
        }
        let queues = (0..<laneCount).map { _ in LaneQueue<LaneWork>() }
        await withTaskGroup(of: Void.self) { group in
            for queue in queues {
                group.addTask { await runLane(queue) }
            }
            for await batch in batches {
                for (lane, work) in plan(batch, lanes: laneCount).enumerated() where !work.events.isEmpty {
                    queues[lane].append(work)
                }
            }
            for queue in queues { queue.finish() }
        }
    }

    /// Submits each batch as soon as it is planned (`OrderedIntake`), while `settleOrdered` awaits the outcomes.
    private func runOrdered(_ batches: AsyncStream<DeliveryBatch>, submitter: any OrderedSubmitter) async {
        let intake = orderedIntake(submitter)
        async let settled: Void = settleOrdered(intake)
        for await batch in batches { intake.accept(batch) }
        intake.finish()
        await settled
    }

    /// An intake that plans each batch and submits it to `submitter` on the caller's thread: the consumer thread
    /// hands its batches straight to it, with no hop to Swift's pool between reading a batch and submitting it.
    /// `settleOrdered` must run for it.
    func orderedIntake(_ submitter: any OrderedSubmitter) -> OrderedIntake {
        let (submitted, sink) = AsyncStream.makeStream(of: OrderedSubmissions.Submitted.self)
        let submissions = OrderedSubmissions(submitter: submitter, sink: sink, now: now, abandoned: abandoned)
        return OrderedIntake(submissions: submissions, submitted: submitted, submitter: submitter) { batch in
            plan(batch, lanes: 1).first.flatMap { $0.events.isEmpty ? nil : $0 }
        }
    }

    /// Awaits the outcomes of an intake's submissions in submission order and settles them, until the intake is
    /// finished and everything it took is settled. When a batch fails whole, the submitter fails every batch after
    /// it too (`OrderedSubmitter`): submitting pauses, those batches are collected, retried together as one
    /// (`apply`), and then submitting resumes with what arrived meanwhile.
    func settleOrdered(_ intake: OrderedIntake) async {
        let submissions = intake.submissions
        var failingSince: ContinuousClock.Instant?
        var settledCount = 0
        var iterator = intake.submitted.makeAsyncIterator()
        while let first = await iterator.next() {
            settledCount += 1
            do {
                let outcomes = try await first.pending.outcomes()
                failingSince = nil
                metrics.events.recordLatency(ContinuousClock.now - first.at)
                settle(first.work, generations: nil, with: dispositions(first.work, outcomes))
                continue
            } catch {
                if failingSince == nil { failingSince = ContinuousClock.now }
                logger.warning("store failed, holding new batches to retry the failed ones first", metadata: [
                    "source": "\(sourceName)", "error": "\(error)",
                ])
            }
            // Everything submitted before the pause fails too; collect it, in order.
            let until = submissions.pause()
            var failed = [first.work]
            while settledCount < until, let next = await iterator.next() {
                settledCount += 1
                // The submitter fails every batch after a failed one; one that committed anyway (none does
                // with SQLite) is settled as it is.
                if let outcomes = try? await next.pending.outcomes() {
                    settle(next.work, generations: nil, with: dispositions(next.work, outcomes))
                } else {
                    failed.append(next.work)
                }
            }
            intake.submitter.resume()
            let (merged, generations) = Self.merge(failed)
            // Before the held batches are submitted: those of a generation given back are dropped.
            await applyAndSettle(merged, generations: generations, failingSince: &failingSince, afterFailure: true)
            submissions.unpause()
        }
    }

    /// Plans a delivery batch: the events for each lane, in delivery order; what needs no store is settled at once.
    private func plan(_ batch: DeliveryBatch, lanes laneCount: Int) -> [LaneWork] {
        let processor = processor()
        let receivedAt = now()
        var work = (0..<laneCount).map { _ in LaneWork(generation: batch.generation, tags: [], events: []) }
        var immediate: [Completion] = []
        var tally = EventTally()
        for delivery in batch.deliveries {
            var message = IncomingMessage(
                body: delivery.body, identity: delivery.properties.messageId.map { .messageId($0) } ?? .content,
                mayBeRedelivery: delivery.redelivered, receivedAt: receivedAt, source: sourceName
            )
            if processor.readsMessageMetadata {
                (message.headers, message.attributes) = Self.metadata(of: delivery.properties)
            }
            if let previous = delivery.properties.previousDeliveries, previous > maxRedeliveries {
                let reason = "delivered \(previous + 1) times; max_redeliveries is \(maxRedeliveries)"
                tally.count(.received, type: nil)
                tally.count(.rejected, type: nil)
                var completion = deadLetter(delivery, batch.generation, code: "redelivered", reason: reason)
                completion.reply = processor.errorReply(to: message, code: .notApplied, text: reason)
                immediate.append(completion)
                continue
            }
            switch processor.prepare(message) {
            case let .event(event):
                tally.count(.received, type: event.type.rawValue)
                let lane = laneCount == 1 ? 0 : Self.lane(of: event.contactId, count: laneCount)
                work[lane].tags.append(delivery.deliveryTag)
                work[lane].events.append(event)
            case let .skipped(type):
                tally.count(.received, type: type.rawValue)
                tally.count(.skipped, type: type.rawValue)
                immediate.append(Completion(generation: batch.generation, deliveryTag: delivery.deliveryTag, disposition: .ack))
            case let .rejected(error):
                tally.count(.received, type: nil)
                tally.count(.rejected, type: nil)
                var completion = deadLetter(delivery, batch.generation, code: error.code.description, reason: error.description)
                completion.reply = processor.errorReply(to: message, code: .invalidRequest, text: error.description)
                immediate.append(completion)
            }
        }
        metrics.events.record(tally)
        inbox.post(immediate)
        return work
    }

    private func deadLetter(_ delivery: AMQPDelivery, _ generation: Int, code: String, reason: String) -> Completion {
        logger.warning("message refused, dead-lettering it", metadata: [
            "source": "\(sourceName)", "delivery_tag": "\(delivery.deliveryTag)",
            "event_id": "\(delivery.properties.messageId ?? "-")", "reason": "\(LogRedaction.reason(reason))",
        ])
        return Completion(generation: generation, deliveryTag: delivery.deliveryTag, disposition: .deadLetter(reason: reason, code: code))
    }

    private func runLane(_ queue: LaneQueue<LaneWork>) async {
        // When the store started failing for this lane: the retry budget counts from there across batches, so
        // queued batches give up together instead of each waiting a whole budget (deliveries must be settled
        // before RabbitMQ's consumer_timeout).
        var failingSince: ContinuousClock.Instant?
        while let works = await queue.takeAll() {
            // Work of a generation given back is not applied: its deliveries come back when the channel closes.
            let live = works.filter { !abandoned.contains($0.generation) }
            if live.isEmpty { continue }
            // Everything that queued up while the last transaction ran goes into the next one, in delivery order.
            let (merged, generations) = Self.merge(live)
            await applyAndSettle(merged, generations: generations, failingSince: &failingSince)
        }
    }

    /// A work given back abandons its generation: no later work of it is applied, and the consumer thread closes
    /// the channel (`AbandonedGenerations`). While stopping too: a store that recovers within the stop would
    /// otherwise commit later events of the given-back contacts first.
    private func abandonIfGivenBack(_ work: LaneWork, _ generations: [Int]?, _ settled: [(disposition: Disposition, reply: [UInt8]?)]) {
        guard settled.contains(where: { $0.disposition == .requeue }) else { return }
        abandoned.abandon(generations?.max() ?? work.generation)
    }

    /// Works as one, in order, with the channel generation of each delivery (nil when there is one work: taken as
    /// it is, without a copy of its events).
    static func merge(_ works: [LaneWork]) -> (LaneWork, [Int]?) {
        if works.count == 1 { return (works[0], nil) }
        let total = works.reduce(0) { $0 + $1.tags.count }
        var merged = LaneWork(generation: 0, tags: [], events: [])
        merged.tags.reserveCapacity(total)
        merged.events.reserveCapacity(total)
        var generations: [Int] = []
        generations.reserveCapacity(total)
        for work in works {
            merged.tags += work.tags
            merged.events += work.events
            generations += repeatElement(work.generation, count: work.tags.count)
        }
        return (merged, generations)
    }

    /// Posts the completions of a work's deliveries.
    private func settle(_ work: LaneWork, generations: [Int]?, with settled: [(disposition: Disposition, reply: [UInt8]?)]) {
        inbox.post(settled.indices.map { index in
            Completion(
                generation: generations?[index] ?? work.generation, deliveryTag: work.tags[index],
                disposition: settled[index].disposition, reply: settled[index].reply
            )
        })
    }

    /// Applies a batch (a lane's, or failed ordered submissions merged) and settles its deliveries; `generations`
    /// as `merge` gives them.
    private func applyAndSettle(
        _ work: LaneWork, generations: [Int]?, failingSince: inout ContinuousClock.Instant?, afterFailure: Bool = false
    ) async {
        // In the parts the store takes in one transaction (PostgreSQL: 250 events), in order, each settled as soon as
        // it is done, so its deliveries are acked while later parts still run (a long retry of a later part must not
        // keep them unacked past the broker's consumer timeout). Once a part is given back, the rest goes back
        // unapplied with it.
        await store.inTransactionParts(of: work.events.count) { part, giveBack in
            let whole = part.count == work.events.count
            let slice = whole ? work : LaneWork(generation: work.generation, tags: Array(work.tags[part]), events: Array(work.events[part]))
            let sliceGenerations = whole ? generations : generations.map { Array($0[part]) }
            let settled: [(disposition: Disposition, reply: [UInt8]?)]
            if giveBack {
                var tally = EventTally()
                for event in slice.events { tally.count(.requeued, type: event.type.rawValue) }
                metrics.events.record(tally)
                settled = Array(repeating: (.requeue, nil), count: slice.events.count)
            } else {
                settled = await apply(slice, failingSince: &failingSince, afterFailure: afterFailure && part.lowerBound == 0)
            }
            abandonIfGivenBack(slice, sliceGenerations, settled)
            settle(slice, generations: sliceGenerations, with: settled)
            return settled.contains { $0.disposition == .requeue }
        }
    }

    /// Applies one transaction's events; retries a busy or unavailable store with back-off until the budget is spent
    /// or the source stops, then gives the messages back to the queue. Events that ask for a reply get its body.
    /// `afterFailure`: the batch just failed once, so the first try waits too.
    private func apply(
        _ work: LaneWork, failingSince: inout ContinuousClock.Instant?, afterFailure: Bool
    ) async -> [(disposition: Disposition, reply: [UInt8]?)] {
        var delay = Duration.milliseconds(100)
        if afterFailure, !stopping.isSet, ContinuousClock.now + delay <= (failingSince ?? .now) + retryBudget {
            try? await Task.sleep(for: delay)
            delay = delay * 2
        }
        while true {
            let deadline = (failingSince ?? ContinuousClock.now) + retryBudget
            do {
                let started = ContinuousClock.now
                let outcomes = try await store.apply(work.events, now: now())
                failingSince = nil
                metrics.events.recordLatency(ContinuousClock.now - started)
                return dispositions(work, outcomes)
            } catch {
                let transient = (error as? StoreError)?.isTransient ?? true
                if failingSince == nil { failingSince = ContinuousClock.now }
                if stopping.isSet || ContinuousClock.now + delay > deadline || !transient {
                    logger.error("store failed, giving \(work.events.count) messages back to the queue", metadata: [
                        "source": "\(sourceName)", "error": "\(error)",
                    ])
                    if !stopping.isSet, let failingSince { await pauseBeforeGivingBack(failingFor: ContinuousClock.now - failingSince) }
                    var tally = EventTally()
                    for event in work.events { tally.count(.requeued, type: event.type.rawValue) }
                    metrics.events.record(tally)
                    return Array(repeating: (.requeue, nil), count: work.events.count)
                }
                logger.warning("store failed, retrying in \(delay)", metadata: ["source": "\(sourceName)", "error": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Messages given back come straight back: without a pause, a store that refuses whole batches (a table dropped,
    /// a password changed), or one still down once the retry budget is spent, turned the queue into a hot loop of
    /// deliveries, reconnections and error lines. The pause grows with how long the store has been failing, from
    /// 100 ms to 5 s, and ends early when the source stops.
    private func pauseBeforeGivingBack(failingFor: Duration) async {
        let end = ContinuousClock.now + min(.seconds(5), max(.milliseconds(100), failingFor))
        while !stopping.isSet, ContinuousClock.now < end {
            try? await Task.sleep(for: min(.milliseconds(100), ContinuousClock.now.duration(to: end)))
        }
    }

    /// What becomes of each message of a work the store committed, and the replies asked for.
    private func dispositions(_ work: LaneWork, _ outcomes: [EventOutcome]) -> [(disposition: Disposition, reply: [UInt8]?)] {
        if logger.logLevel <= .debug {
            // Per-event success is debug: it names the contact, which info and above never do.
            for (outcome, event) in zip(outcomes, work.events) {
                logger.debug("event settled", metadata: [
                    "source": "\(sourceName)", "event_id": "\(event.key.value)", "event_type": "\(event.type.rawValue)",
                    "contact_id": "\(event.contactId)", "outcome": "\(outcome)",
                ])
            }
        }
        var tally = EventTally()
        defer { metrics.events.record(tally) }
        return zip(outcomes, work.events).map { outcome, event in
            (disposition(of: outcome, event, counting: &tally), event.reply?.body(for: outcome))
        }
    }

    /// Counts a store outcome and says what becomes of its message.
    private func disposition(of outcome: EventOutcome, _ event: PlannedEvent, counting tally: inout EventTally) -> Disposition {
        switch outcome {
        case let .applied(notes):
            tally.count(notes.isEmpty ? .applied : .incomplete, type: event.type.rawValue)
            metrics.notes.note(notes, eventType: event.type.rawValue)
        case .duplicate:
            tally.count(.duplicate, type: event.type.rawValue)
        case .unchanged:
            tally.count(.unchanged, type: event.type.rawValue)
        case let .imported(result):
            tally.count(result.duplicate ? .duplicate : .applied, type: event.type.rawValue)
        case let .failed(error):
            tally.count(.rejected, type: event.type.rawValue)
            logger.warning("store refused an event, dead-lettering it", metadata: ["source": "\(sourceName)", "reason": "\(LogRedaction.reason("\(error)"))"])
            return .deadLetter(reason: error.description, code: "store_\(error.code)")
        }
        return .ack
    }

    static func lane(of contactId: String, count: Int) -> Int { Lanes.lane(of: contactId, count: count) }

    /// AMQP headers with text values, and the message properties a converter may read its type from.
    static func metadata(of properties: AMQPProperties) -> (headers: [String: String], attributes: [String: String]) {
        var headers: [String: String] = [:]
        for entry in properties.headers.entries {
            if let text = entry.value.stringValue { headers[entry.key] = text } else if let number = entry.value.intValue { headers[entry.key] = String(number) }
        }
        var attributes: [String: String] = [:]
        attributes["type"] = properties.type
        attributes["app_id"] = properties.appId
        attributes["content_type"] = properties.contentType
        attributes["correlation_id"] = properties.correlationId
        return (headers, attributes)
    }
}

/// Takes delivery batches for a store that commits in submission order: plans each and submits it at once, on the
/// caller's thread (`LanePipeline.orderedIntake`). Call `accept` from one thread at a time, in delivery order.
final class OrderedIntake: Sendable {
    let submissions: OrderedSubmissions
    let submitted: AsyncStream<OrderedSubmissions.Submitted>
    let submitter: any OrderedSubmitter
    /// The batch's events and tags (nil when none needs the store); what needs no store is settled by it.
    private let plan: @Sendable (DeliveryBatch) -> LanePipeline.LaneWork?

    init(
        submissions: OrderedSubmissions, submitted: AsyncStream<OrderedSubmissions.Submitted>, submitter: any OrderedSubmitter,
        plan: @escaping @Sendable (DeliveryBatch) -> LanePipeline.LaneWork?
    ) {
        self.submissions = submissions
        self.submitted = submitted
        self.submitter = submitter
        self.plan = plan
    }

    func accept(_ batch: DeliveryBatch) {
        if let work = plan(batch) { submissions.submit(work) }
    }

    /// No more batches come.
    func finish() { submissions.finish() }

    /// A handoff for the consumer thread.
    var handoff: DeliveryHandoff { DeliveryHandoff(deliver: { self.accept($0) }, finish: { self.finish() }) }
}

/// The submissions of `LanePipeline.settleOrdered`: submitted in order and handed to the task that settles them,
/// or held while that task retries a failed batch.
final class OrderedSubmissions: @unchecked Sendable {
    struct Submitted: Sendable {
        var work: LanePipeline.LaneWork
        var pending: PendingBatch
        var at: ContinuousClock.Instant
    }

    // Everything below is guarded by `lock`, so submitting and handing over happen in the same order.
    private let lock = NSLock()
    private let submitter: any OrderedSubmitter
    private let sink: AsyncStream<Submitted>.Continuation
    private let now: @Sendable () -> Timestamp
    private let abandoned: AbandonedGenerations
    private var paused = false
    private var finished = false
    private var held: [LanePipeline.LaneWork] = []
    private var count = 0

    init(
        submitter: any OrderedSubmitter, sink: AsyncStream<Submitted>.Continuation, now: @escaping @Sendable () -> Timestamp,
        abandoned: AbandonedGenerations
    ) {
        self.submitter = submitter
        self.sink = sink
        self.now = now
        self.abandoned = abandoned
    }

    /// Submits `work`, or holds it while paused; work of a generation given back is dropped (its deliveries come back
    /// when the channel closes).
    func submit(_ work: LanePipeline.LaneWork) {
        lock.withLock {
            if abandoned.contains(work.generation) { return }
            if paused { held.append(work) } else { submitNow(work) }
        }
    }

    /// Holds what comes from now on; returns how many were submitted so far.
    func pause() -> Int {
        lock.withLock {
            paused = true
            return count
        }
    }

    /// Submits what was held, in order, and goes on submitting.
    func unpause() {
        lock.withLock {
            for work in held where !abandoned.contains(work.generation) { submitNow(work) }
            held = []
            paused = false
            if finished { sink.finish() }
        }
    }

    /// No more work comes; the stream of submissions ends once nothing is held.
    func finish() {
        lock.withLock {
            finished = true
            if !paused { sink.finish() }
        }
    }

    private func submitNow(_ work: LanePipeline.LaneWork) {
        sink.yield(Submitted(work: work, pending: submitter.submit(work.events, now: now()), at: .now))
        count += 1
    }
}

/// What one RabbitMQ source reports: the shared event metrics, reconnects, and its connection state.
struct SourceMetrics: Sendable {
    let events: EventMetrics
    let reconnects: Counter
    let board: SourceStatusBoard?
    let notes: ActionNotes

    init(source: String, board: SourceStatusBoard? = nil, logger: Logger = Logger(label: "crm-ingest")) {
        events = EventMetrics(source: source)
        notes = ActionNotes(source: source, logger: logger)
        reconnects = Counter(label: "crm_ingest_source_reconnects_total", dimensions: [("source", source)])
        self.board = board
        board?.set(source, .starting)
    }

    func connected() {
        events.setUp(true)
        board?.set(events.source, .up)
    }

    func disconnected(_ reason: String) {
        reconnects.increment()
        events.setUp(false)
        board?.set(events.source, .down(reason))
    }

    func deadLettered(code: String) { events.deadLettered(reason: code) }
}
