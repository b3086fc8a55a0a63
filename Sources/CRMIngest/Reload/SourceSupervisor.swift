import CRMConfig
import CRMCore
import Logging
import ServiceLifecycle

/// Runs the broker sources (RabbitMQ, SQS), each in a service group of its own, so a reload can stop one source
/// gracefully and start it again while the others go on consuming. Its own graceful shutdown stops every source the
/// same way (consumer cancelled, deliveries in process finished and settled). A source that fails, or ends without
/// being asked to, ends the daemon with its error, as a service of the daemon's group would.
actor SourceSupervisor: Service {
    /// Builds the service of one broker source; the processor is read once per batch.
    typealias MakeSource = @Sendable (SourceConfig, ReloadableValue<EventProcessor>) -> (any Service)?

    private struct Running {
        var config: SourceConfig
        var processor: ReloadableValue<EventProcessor>
        var group: ServiceGroup
        var task: Task<Void, Never>
    }

    /// A source's service failed or ended by itself.
    struct SourceFailure: Error, CustomStringConvertible {
        var source: String
        var reason: String
        var description: String { "source \(source): \(reason)" }
    }

    private let makeSource: MakeSource
    private let logger: Logger
    private var desired: [(SourceConfig, EventProcessor)]
    private var running: [String: Running] = [:]
    private var stopping: Set<String> = []
    private var started = false
    private let failures: AsyncStream<SourceFailure>
    private let failuresContinuation: AsyncStream<SourceFailure>.Continuation

    /// - Parameter sources: the broker sources with their processors; http sources are ignored.
    init(sources: [(SourceConfig, EventProcessor)], logger: Logger, makeSource: @escaping MakeSource) {
        desired = sources.filter { $0.0.isBrokerSource }
        self.logger = logger
        self.makeSource = makeSource
        (failures, failuresContinuation) = AsyncStream.makeStream()
    }

    /// The names of the sources running now, sorted.
    var runningSources: [String] { running.keys.sorted() }

    func run() async throws {
        started = true
        for (source, processor) in desired { start(source, processor: processor) }
        let failures = self.failures
        let continuation = failuresContinuation
        let failure = await withGracefulShutdownHandler { () async -> SourceFailure? in
            for await failure in failures { return failure }
            return nil
        } onGracefulShutdown: {
            continuation.finish()
        }
        await stop(Array(running.keys))
        if let failure { throw failure }
    }

    /// Switches to a new set of broker sources: sources whose settings changed are stopped gracefully and started
    /// again, new ones started, removed ones stopped; every other source keeps consuming and gets its new processor.
    func apply(_ sources: [(SourceConfig, EventProcessor)]) async {
        let wanted = sources.filter { $0.0.isBrokerSource }
        guard started else {
            desired = wanted
            return
        }
        let wantedByName = Dictionary(wanted.map { ($0.0.name, $0.0) }, uniquingKeysWith: { first, _ in first })
        let outdated = running.values.filter { wantedByName[$0.config.name] != $0.config }.map(\.config.name)
        await stop(outdated)
        for (source, processor) in wanted {
            if let current = running[source.name] {
                current.processor.replace(with: processor)
            } else {
                start(source, processor: processor)
            }
        }
    }

    private func start(_ source: SourceConfig, processor: EventProcessor) {
        let box = ReloadableValue(processor)
        guard let service = makeSource(source, box) else { return }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: service, serviceName: "source \(source.name)")],
            gracefulShutdownSignals: [],
            cancellationSignals: [],
            logger: logger
        ))
        let name = source.name
        // Detached: a task would inherit the caller's graceful-shutdown context (the supervisor's, or the reloader's
        // when a reload starts the source), and the source's group would stop with that service, not when the
        // supervisor stops it.
        let task = Task.detached {
            var reason: String?
            do {
                try await group.run()
            } catch {
                reason = "\(error)"
            }
            await self.ended(name, reason: reason)
        }
        running[name] = Running(config: source, processor: box, group: group, task: task)
        logger.info("source started", metadata: ["source": "\(name)"])
    }

    private func ended(_ name: String, reason: String?) {
        guard !stopping.contains(name) else { return }
        running[name] = nil
        failuresContinuation.yield(SourceFailure(source: name, reason: reason ?? "stopped by itself"))
    }

    /// Stops these sources gracefully, all at once, and waits until each has settled its deliveries.
    private func stop(_ names: [String]) async {
        let stopped = names.compactMap { running[$0] }
        guard !stopped.isEmpty else { return }
        for source in stopped {
            stopping.insert(source.config.name)
            await source.group.triggerGracefulShutdown()
        }
        for source in stopped {
            await source.task.value
            running[source.config.name] = nil
            stopping.remove(source.config.name)
            logger.info("source stopped", metadata: ["source": "\(source.config.name)"])
        }
    }
}
