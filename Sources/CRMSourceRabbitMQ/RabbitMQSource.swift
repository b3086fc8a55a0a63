import CRMConfig
import CRMSourceSupport
import CRMCore
import Dispatch
import Logging
import ServiceLifecycle

/// A RabbitMQ queue as a source of events: a `Service` that consumes until graceful shutdown, then drains.
///
/// Guarantees: a delivery is acked only after the store committed its event (or recorded it as a duplicate);
/// bad messages are dead-lettered with their reason and consumption goes on; per-contact order is kept (in submission order with SQLite, across lanes with PostgreSQL);
/// on SIGTERM the consumer is cancelled, in-flight deliveries are finished and acked, and the connection closed.
public struct RabbitMQSource: Service {
    public let name: String
    public let config: RabbitMQSourceConfig
    let processor: @Sendable () -> EventProcessor
    let store: any CRMStore
    let logger: Logger
    let now: @Sendable () -> Timestamp
    let retryBudget: Duration
    let statusBoard: SourceStatusBoard?

    /// - Parameters:
    ///   - processor: the mapping's processor, read once per batch: a batch is planned with one mapping.
    ///   - retryBudget: how long a busy or unavailable store is retried before messages go back to the queue; kept
    ///     under RabbitMQ's 30-minute consumer_timeout, and long, because every requeue counts as a redelivery.
    public init(
        name: String, config: RabbitMQSourceConfig, processor: @escaping @Sendable () -> EventProcessor, store: any CRMStore,
        logger: Logger, now: @escaping @Sendable () -> Timestamp = Timestamp.now, retryBudget: Duration = .seconds(1_200),
        statusBoard: SourceStatusBoard? = nil
    ) {
        self.statusBoard = statusBoard
        self.name = name
        self.config = config
        self.processor = processor
        self.store = store
        self.logger = logger
        self.now = now
        self.retryBudget = retryBudget
    }

    public func run() async throws {
        let inbox = CompletionInbox()
        let stopping = StopFlag()
        let metrics = SourceMetrics(source: name, board: statusBoard, logger: logger)
        let submitter = store.makeOrderedSubmitter()
        let pipeline = LanePipeline(
            sourceName: name, laneCount: config.lanes, maxRedeliveries: config.maxRedeliveries, processor: processor,
            store: store, inbox: inbox, stopping: stopping, logger: logger, now: now, metrics: metrics, retryBudget: retryBudget
        )
        // A store that commits in submission order takes each batch straight from the consumer thread, planned there;
        // lanes take them from a stream.
        let intake = submitter.map(pipeline.orderedIntake)
        let handoff: DeliveryHandoff
        let batches: AsyncStream<DeliveryBatch>?
        if let intake {
            handoff = intake.handoff
            batches = nil
        } else {
            let made = DeliveryHandoff.stream()
            handoff = made.0
            batches = made.1
        }
        let consumer = ConsumerThread(
            sourceName: name, config: config, inbox: inbox, stopFlag: stopping, logger: logger, metrics: metrics,
            lanesInUse: submitter == nil ? config.lanes : nil, handoff: handoff, abandoned: pipeline.abandoned
        )
        consumer.start()
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                // Ends when the consumer thread finished its handoff: stopped, and every delivery settled.
                if let intake {
                    await pipeline.settleOrdered(intake)
                } else if let batches {
                    await pipeline.run(batches, orderedSubmitter: nil)
                }
            } onCancel: {
                consumer.requestStop()
            }
        } onGracefulShutdown: {
            consumer.requestStop()
        }
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                consumer.join()
                done.resume()
            }
        }
    }
}
