import Foundation
import CRMSourceSupport
import CRMTestSupport
import Prometheus
import Testing

@Suite("Event counts per batch")
struct EventTallyTests {
    @Test func aTallyAddsUpToTheSameCountersAsCountingOneByOne() {
        let registry = PrometheusCollectorRegistry()
        let metrics = EventMetrics(source: "app-events", factory: PrometheusMetricsFactory(registry: registry))
        var tally = EventTally()
        for _ in 0..<1_000 { tally.count(.received, type: "USER_UPDATE") }
        for _ in 0..<3 { tally.count(.received, type: nil) }
        tally.count(.rejected, type: nil, by: 3)
        tally.count(.applied, type: "USER_UPDATE", by: 998)
        tally.count(.duplicate, type: "USER_UPDATE", by: 2)
        #expect(tally.totals.count == 5)
        metrics.record(tally)
        metrics.count(.received, type: "USER_UPDATE") // one by one still adds to the same counter
        metrics.record(EventTally()) // an empty tally changes nothing

        let text = registry.emitToString()
        #expect(text.contains(#"crm_ingest_events_total{source="app-events",type="USER_UPDATE",outcome="received"} 1001"#))
        #expect(text.contains(#"crm_ingest_events_total{source="app-events",type="USER_UPDATE",outcome="applied"} 998"#))
        #expect(text.contains(#"crm_ingest_events_total{source="app-events",type="USER_UPDATE",outcome="duplicate"} 2"#))
        #expect(text.contains(#"crm_ingest_events_total{source="app-events",type="unknown",outcome="received"} 3"#))
        #expect(text.contains(#"crm_ingest_events_total{source="app-events",type="unknown",outcome="rejected"} 3"#))
    }

    /// Made-up types (an HTTP client choosing its `type`) stop getting series of their own past the cap: they count
    /// as `other`, and the types already labelled keep theirs.
    @Test func typeLabelsAreCapped() {
        let registry = PrometheusCollectorRegistry()
        let source = "capped-\(UUID().uuidString.prefix(8))"
        let metrics = EventMetrics(source: source, factory: PrometheusMetricsFactory(registry: registry), maxTypeLabels: 3)
        for index in 0..<1_000 { metrics.count(.received, type: "T\(index)") }
        metrics.count(.applied, type: "T1")
        // A reload makes a new instance for the same source: the cap is the source's, not the instance's.
        let reloaded = EventMetrics(source: source, factory: PrometheusMetricsFactory(registry: registry), maxTypeLabels: 3)
        reloaded.count(.received, type: "T1000")
        let text = registry.emitToString()
        #expect(text.contains(#"crm_ingest_events_total{source="\#(source)",type="T1",outcome="applied"} 1"#))
        #expect(text.contains(#"crm_ingest_events_total{source="\#(source)",type="other",outcome="received"} 998"#))
        let series = text.split(separator: "\n").filter { $0.hasPrefix("crm_ingest_events_total{") }
        #expect(series.count == 5) // T0, T1, T2 received, other received, T1 applied
    }
}

@Suite("Notes of committed events")
struct ActionNotesTests {
    @Test func theFirstNoteIsLoggedAtOnceThenAtMostOneSummaryPerInterval() async throws {
        let logs = CapturedLogs()
        let notes = ActionNotes(source: "app-events", logger: logs.logger, interval: .milliseconds(300))
        notes.note([], eventType: "USER_UPDATE") // nothing to say
        #expect(logs.count("nothing to act on") == 0)
        notes.note(["update_contact: no contact c1 in list 1"], eventType: "USER_UPDATE")
        #expect(logs.count("1 event(s) committed with actions that had nothing to act on") == 1)
        #expect(logs.contains("e.g. USER_UPDATE: update_contact: no contact c1 in list 1"))
        for index in 2...50 { notes.note(["update_contact: no contact c\(index) in list 1"], eventType: "USER_UPDATE") }
        #expect(logs.count("nothing to act on") == 1, "one line per interval, not one per event")
        try await Task.sleep(for: .milliseconds(350))
        notes.note(["create_purchase_row: no contact c51 in list 1"], eventType: "DEPOSIT_APPROVED")
        #expect(logs.count("nothing to act on") == 2)
        #expect(logs.contains("50 event(s) committed with actions that had nothing to act on (counted as incomplete), e.g. USER_UPDATE: update_contact: no contact c2 in list 1"))
    }
}
