import CoreMetrics
import Foundation
import Synchronization

/// The metrics every source reports, through swift-metrics (the daemon bootstraps Prometheus; `/metrics` serves
/// them). The same names and label names for every source, as Prometheus requires:
///
/// - `crm_ingest_events_total{source, type, outcome}`: outcome is `received`, `applied`, `duplicate`, `unchanged`,
///   `skipped`, `rejected`, `filtered`, `requeued`, `failed` or `incomplete`; type is the event type, or `unknown` when the message never decoded.
///   A source labels at most `maxTypeLabels` distinct types; later new ones count as `other`, so a client sending
///   made-up types (an HTTP integration reads its type from the body) cannot grow `/metrics` without bound.
/// - `crm_ingest_processing_seconds{source}`: from receipt to commit, as a histogram.
/// - `crm_ingest_dead_letters_total{source, reason}`.
/// - `crm_ingest_source_up{source}`: 1 while the source is connected (a broker) or serving (HTTP), else 0.
public final class EventMetrics: @unchecked Sendable {
    // `counters` is guarded by `lock`; swift-metrics handlers are thread-safe.
    public let source: String
    private let factory: any MetricsFactory
    private let lock = NSLock()
    private var counters: [Key: Counter] = [:]
    /// The type labels in use, by source, for every instance: a reload makes new instances for the same source,
    /// and the cap holds for the source, not for each of them.
    private static let typeLabels = Mutex<[String: Set<String>]>([:])
    /// How many distinct type labels a source may use; the default formats have twelve types.
    public let maxTypeLabels: Int
    private let latency: CoreMetrics.Timer
    private let up: Gauge
    private var deadLetters: [String: Counter] = [:]

    private struct Key: Hashable {
        var type: String
        var outcome: String
    }

    public enum Outcome: String, Sendable {
        case received, applied, duplicate, unchanged, skipped, rejected, filtered, requeued, failed, incomplete
    }

    /// `factory`: the process's bootstrapped one by default; tests pass their own.
    public init(source: String, factory: any MetricsFactory = MetricsSystem.factory, maxTypeLabels: Int = 100) {
        self.source = source
        self.maxTypeLabels = maxTypeLabels
        self.factory = factory
        latency = CoreMetrics.Timer(label: "crm_ingest_processing_seconds", dimensions: [("source", source)], factory: factory)
        up = Gauge(label: "crm_ingest_source_up", dimensions: [("source", source)], factory: factory)
    }

    public func count(_ outcome: Outcome, type: String?, by amount: Int = 1) {
        guard amount > 0 else { return }
        var key = Key(type: type ?? "unknown", outcome: outcome.rawValue)
        let counter = lock.withLock {
            if let counter = counters[key] { return counter }
            let labelled = Self.typeLabels.withLock { labels in
                if labels[source, default: []].contains(key.type) { return true }
                guard labels[source, default: []].count < maxTypeLabels else { return false }
                labels[source, default: []].insert(key.type)
                return true
            }
            if !labelled {
                key.type = "other"
                if let counter = counters[key] { return counter }
            }
            let counter = Counter(
                label: "crm_ingest_events_total",
                dimensions: [("source", source), ("type", key.type), ("outcome", key.outcome)], factory: factory
            )
            counters[key] = counter
            return counter
        }
        counter.increment(by: amount)
    }

    /// Adds what a tally counted: one lock and one counter update per type and outcome, however many events.
    public func record(_ tally: EventTally) {
        for total in tally.totals { count(total.outcome, type: total.type, by: total.amount) }
    }

    public func recordLatency(_ duration: Duration) {
        latency.recordNanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    public func deadLettered(reason: String) {
        let counter = lock.withLock {
            if let counter = deadLetters[reason] { return counter }
            let counter = Counter(label: "crm_ingest_dead_letters_total", dimensions: [("source", source), ("reason", reason)], factory: factory)
            deadLetters[reason] = counter
            return counter
        }
        counter.increment()
    }

    public func setUp(_ isUp: Bool) {
        up.record(isUp ? 1 : 0)
    }
}

/// Event counts gathered while a batch is handled, recorded in one go (`EventMetrics.record`): a batch of thousands
/// of events then costs a few counter updates instead of two or three per event.
public struct EventTally: Sendable {
    /// Each type and outcome counted, with its total, in the order first counted.
    public private(set) var totals: [(outcome: EventMetrics.Outcome, type: String?, amount: Int)] = []

    public init() {}

    public mutating func count(_ outcome: EventMetrics.Outcome, type: String?, by amount: Int = 1) {
        // A batch holds a dozen types at most: a linear search beats hashing two strings per event.
        for index in totals.indices where totals[index].outcome == outcome && totals[index].type == type {
            totals[index].amount += amount
            return
        }
        totals.append((outcome, type, amount))
    }
}
