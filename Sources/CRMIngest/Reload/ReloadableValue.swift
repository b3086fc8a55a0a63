import Synchronization

/// A value a reload replaces while readers use it: the mapping's processor of a source, the HTTP integration table,
/// the ledger retention. Readers take it once per batch or request, so work in process finishes with the value it
/// started with.
final class ReloadableValue<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>

    init(_ value: Value) {
        storage = Mutex(value)
    }

    /// The value in force.
    var current: Value { storage.withLock { $0 } }

    func replace(with value: Value) {
        storage.withLock { $0 = value }
    }
}
