/// Which deliveries of one channel are settled, and how far a `multiple` ack may reach.
///
/// Delivery tags of a channel count up from 1. A multiple ack settles every outstanding delivery up to its tag, so
/// it may only be sent for a tag below which every delivery is done; deliveries settled one by one (rejected,
/// nacked) are skipped over, and never named by an ack.
///
/// The deliveries between the ack watermark and the highest tag received sit in a window indexed by tag, which
/// also keeps the delivery itself when the source needs it until settlement (for a dead letter or a reply): no
/// hashing per delivery, and the slots are reused as the watermark moves on.
struct DeliveryTracker<Kept> {
    private enum State {
        case pending
        /// Done; `needsAck` false when it was rejected or nacked by itself and must not be acked.
        case done(needsAck: Bool)
    }

    private struct Slot {
        var state: State
        var kept: Kept?
    }

    /// The lowest tag not yet passed by the ack watermark: the tag of `window[head]`.
    private(set) var watermark: UInt64 = 1
    private(set) var highestReceived: UInt64 = 0
    /// Slots of tags `watermark...highestReceived`, from `head` on; the slots before `head` are spent and are
    /// dropped once they make up half the array.
    private var window: [Slot] = []
    private var head = 0

    /// Deliveries received and not yet done.
    private(set) var outstanding = 0

    init() {}

    /// Records a delivery, keeping `kept` (the delivery) until `take` or the watermark passes it.
    mutating func received(_ tag: UInt64, keeping kept: Kept? = nil) {
        guard tag >= watermark else { return }
        while highestReceived < tag {
            window.append(Slot(state: .pending, kept: nil))
            highestReceived += 1
        }
        guard let index = index(of: tag) else { return }
        window[index].kept = kept
        outstanding += 1
    }

    /// Marks a delivery done. `needsAck` false: it was rejected or nacked by itself and must not be acked.
    mutating func finished(_ tag: UInt64, needsAck: Bool) {
        guard let index = index(of: tag), case .pending = window[index].state else { return }
        window[index].state = .done(needsAck: needsAck)
        window[index].kept = nil
        outstanding -= 1
    }

    /// The delivery kept for a tag still in the window.
    func kept(_ tag: UInt64) -> Kept? {
        index(of: tag).flatMap { window[$0].kept }
    }

    /// Hands over the delivery kept for a tag (it stays pending until `finished`).
    mutating func take(_ tag: UInt64) -> Kept? {
        guard let index = index(of: tag) else { return nil }
        defer { window[index].kept = nil }
        return window[index].kept
    }

    /// Moves the watermark over every done tag in a row; returns the tag for a multiple ack, if any needs one.
    mutating func advance() -> UInt64? {
        var ackUpTo: UInt64?
        while head < window.count, case let .done(needsAck) = window[head].state {
            if needsAck { ackUpTo = watermark }
            watermark += 1
            head += 1
        }
        if head == window.count {
            window.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024, head * 2 >= window.count {
            window.removeFirst(head)
            head = 0
        }
        return ackUpTo
    }

    private func index(of tag: UInt64) -> Int? {
        guard tag >= watermark, tag <= highestReceived else { return nil }
        return head + Int(tag - watermark)
    }
}
