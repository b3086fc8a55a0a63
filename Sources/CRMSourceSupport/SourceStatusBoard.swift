import Foundation

/// Whether each source is connected, for `/readyz` and the `crm_ingest_source_up` gauge. Sources write to it from
/// their own threads; the HTTP server reads it.
public final class SourceStatusBoard: @unchecked Sendable {
    // `states` is guarded by `lock`.
    public enum State: Sendable, Equatable {
        case starting
        case up
        /// Not connected, with the reason (the last error).
        case down(String)
    }

    private let lock = NSLock()
    private var states: [String: State] = [:]
    private var order: [String] = []

    public init() {}

    /// Sets a source's state; the first call registers it.
    public func set(_ source: String, _ state: State) {
        lock.withLock {
            if states[source] == nil { order.append(source) }
            states[source] = state
        }
    }

    /// Forgets a source that is no longer configured (a reload removed it).
    public func remove(_ source: String) {
        lock.withLock {
            states[source] = nil
            order.removeAll { $0 == source }
        }
    }

    /// Every source with its state, in registration order.
    public var snapshot: [(source: String, state: State)] {
        lock.withLock { order.map { ($0, states[$0]!) } }
    }
}
