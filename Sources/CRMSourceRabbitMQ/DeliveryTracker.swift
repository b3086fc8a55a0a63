/// Which deliveries of one channel are settled, and how far a `multiple` ack may reach.
///
/// Delivery tags of a channel count up from 1. A multiple ack settles every outstanding delivery up to its tag, so
/// it may only be sent for a tag below which every delivery is done; deliveries settled one by one (rejected,
/// nacked) are skipped over, and never named by an ack.
struct DeliveryTracker {
    /// The lowest tag not yet passed by the ack watermark.
    private(set) var watermark: UInt64 = 1
    private(set) var highestReceived: UInt64 = 0
    /// Done tags at or above the watermark: true when the delivery still needs an ack, false when it was settled alone.
    private var done: [UInt64: Bool] = [:]

    /// Deliveries received and not yet done.
    private(set) var outstanding = 0

    mutating func received(_ tag: UInt64) {
        highestReceived = max(highestReceived, tag)
        outstanding += 1
    }

    /// Marks a delivery done. `needsAck` false: it was rejected or nacked by itself and must not be acked.
    mutating func finished(_ tag: UInt64, needsAck: Bool) {
        guard tag >= watermark, done[tag] == nil, tag <= highestReceived else { return }
        done[tag] = needsAck
        outstanding -= 1
    }

    /// Moves the watermark over every done tag in a row; returns the tag for a multiple ack, if any needs one.
    mutating func advance() -> UInt64? {
        var ackUpTo: UInt64?
        while let needsAck = done.removeValue(forKey: watermark) {
            if needsAck { ackUpTo = watermark }
            watermark += 1
        }
        return ackUpTo
    }
}
