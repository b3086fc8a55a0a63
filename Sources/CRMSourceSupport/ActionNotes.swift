import Logging
import Synchronization

/// Says in the log that committed events had actions with nothing to act on (`update_contact` for a contact that
/// does not exist, any event of an anonymized contact: the store's notes), without a line per event: the first
/// note at once, then at most one summary a minute with the count and an example. The events are counted as
/// `incomplete` in `crm_ingest_events_total`.
public final class ActionNotes: Sendable {
    let source: String
    let logger: Logger
    let interval: Duration
    private let state = Mutex(State())

    private struct State {
        var unreported = 0
        var example: String?
        var lastReport: ContinuousClock.Instant?
    }

    public init(source: String, logger: Logger, interval: Duration = .seconds(60)) {
        self.source = source
        self.logger = logger
        self.interval = interval
    }

    /// Notes one event's notes (nothing when there are none).
    public func note(_ notes: [String], eventType: String) {
        guard let first = notes.first else { return }
        let now = ContinuousClock.now
        let report: (count: Int, example: String)? = state.withLock { state in
            state.unreported += 1
            if state.example == nil { state.example = "\(eventType): \(first)" }
            if let last = state.lastReport, now - last < interval { return nil }
            defer {
                state.unreported = 0
                state.example = nil
                state.lastReport = now
            }
            return (state.unreported, state.example ?? first)
        }
        guard let report else { return }
        logger.info("\(report.count) event(s) committed with actions that had nothing to act on (counted as incomplete), e.g. \(report.example)",
                    metadata: ["source": "\(source)"])
    }
}
