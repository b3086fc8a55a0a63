import Foundation

/// Work waiting for one lane. The lane takes everything queued at once, so while a transaction runs, the
/// deliveries that arrive meanwhile pile up and go into the next transaction together (group commit).
public final class LaneQueue<Item: Sendable>: @unchecked Sendable {
    public init() {}

    // `items`, `waiter` and `finished` are guarded by `lock`.
    private let lock = NSLock()
    private var items: [Item] = []
    private var waiter: CheckedContinuation<[Item]?, Never>?
    private var finished = false

    public func append(_ item: Item) {
        let resume: CheckedContinuation<[Item]?, Never>? = lock.withLock {
            items.append(item)
            defer { waiter = nil }
            return waiter
        }
        if let resume {
            let taken = lock.withLock { () -> [Item] in
                defer { items.removeAll() }
                return items
            }
            resume.resume(returning: taken)
        }
    }

    /// No more items will come; a waiting `takeAll` returns nil once the queue is empty.
    public func finish() {
        let resume: CheckedContinuation<[Item]?, Never>? = lock.withLock {
            finished = true
            defer { waiter = nil }
            return items.isEmpty ? waiter : nil
        }
        resume?.resume(returning: nil)
    }

    /// Everything queued, waiting for at least one item; nil when finished and empty.
    public func takeAll() async -> [Item]? {
        await withCheckedContinuation { continuation in
            let immediate: [Item]?? = lock.withLock {
                if !items.isEmpty {
                    defer { items.removeAll() }
                    return .some(items)
                }
                if finished { return .some(nil) }
                waiter = continuation
                return .none
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }
}
