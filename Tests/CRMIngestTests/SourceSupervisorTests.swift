import AMQPClient
import CRMConfig
import CRMCore
@testable import CRMIngest
import Foundation
import Logging
import ServiceLifecycle
import Testing

/// The supervisor without servers: fake sources that record their starts and stops.
@Suite("Source supervisor")
struct SourceSupervisorTests {
    /// What the fake sources did, in order.
    final class Journal: @unchecked Sendable {
        // Guarded by `lock`.
        private let lock = NSLock()
        private var entries: [String] = []
        func add(_ entry: String) { lock.withLock { entries.append(entry) } }
        var all: [String] { lock.withLock { entries } }
    }

    /// Runs until graceful shutdown (or fails at once when its queue is named "fail").
    struct FakeSource: Service {
        let name: String
        let queue: String
        let journal: Journal
        let processor: ReloadableValue<EventProcessor>

        struct Broken: Error {}

        func run() async throws {
            journal.add("start \(name) \(queue)")
            if queue == "fail" { throw Broken() }
            try? await gracefulShutdown()
            journal.add("stop \(name)")
        }
    }

    static func source(_ name: String, queue: String) -> (SourceConfig, EventProcessor) {
        let config = SourceConfig(name: name, transport: .rabbitmq(RabbitMQSourceConfig(endpoint: AMQPEndpoint(host: "127.0.0.1", port: 5672), queue: queue)))
        return (config, EventProcessor(mapping: Mapping(attributes: [], actions: [:])))
    }

    func supervisor(_ sources: [(SourceConfig, EventProcessor)], journal: Journal) -> SourceSupervisor {
        SourceSupervisor(sources: sources, logger: Logger(label: "test")) { source, processor in
            guard case let .rabbitmq(rabbitmq) = source.transport else { return nil }
            return FakeSource(name: source.name, queue: rabbitmq.queue, journal: journal, processor: processor)
        }
    }

    func eventually(_ condition: () async -> Bool) async throws -> Bool {
        for _ in 0..<3_000 { // up to 30 s: a loaded machine may keep a new task waiting for a pool thread
            if await condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return await condition()
    }

    @Test func applyRestartsOnlyChangedSourcesAndStopsEveryOneAtShutdown() async throws {
        let journal = Journal()
        let supervisor = supervisor([Self.source("a", queue: "qa"), Self.source("b", queue: "qb")], journal: journal)
        let group = ServiceGroup(configuration: .init(services: [.init(service: supervisor)], logger: Logger(label: "test")))
        let task = Task { try await group.run() }
        #expect(try await eventually { await supervisor.runningSources == ["a", "b"] && journal.all.count == 2 })

        await supervisor.apply([Self.source("a", queue: "qa2"), Self.source("b", queue: "qb"), Self.source("c", queue: "qc")])
        // The old a stopped before the new one started; c started; b untouched.
        #expect(try await eventually { journal.all.contains("start a qa2") && journal.all.contains("start c qc") })
        let entries = journal.all
        #expect(try #require(entries.firstIndex(of: "stop a")) < #require(entries.firstIndex(of: "start a qa2")))
        #expect(!journal.all.contains("stop b"))
        await supervisor.apply([Self.source("a", queue: "qa2")])
        #expect(try await eventually { await supervisor.runningSources == ["a"] })
        #expect(Set(journal.all.suffix(2)) == ["stop b", "stop c"])

        await group.triggerGracefulShutdown()
        try await task.value
        #expect(journal.all.last == "stop a")
        #expect(journal.all.filter { $0.hasPrefix("start") }.count == journal.all.filter { $0.hasPrefix("stop") }.count)
    }

    @Test func aFailingSourceEndsTheSupervisorWithItsName() async throws {
        let journal = Journal()
        let supervisor = supervisor([Self.source("good", queue: "qg"), Self.source("bad", queue: "fail")], journal: journal)
        do {
            try await supervisor.run()
            Issue.record("the supervisor ended without error")
        } catch let failure as SourceSupervisor.SourceFailure {
            #expect(failure.source == "bad")
            #expect(failure.description.hasPrefix("source bad: "))
        }
        #expect(journal.all.contains("stop good"), "the other sources are stopped gracefully, not abandoned")
    }
}
