@testable import CRMSourceRabbitMQ
import Testing

@Suite("Ack bookkeeping")
struct DeliveryTrackerTests {
    @Test func acksOnlyOverTagsThatAreAllDone() {
        var tracker = DeliveryTracker<String>()
        for tag in UInt64(1)...5 { tracker.received(tag) }
        tracker.finished(2, needsAck: true)
        tracker.finished(3, needsAck: true)
        #expect(tracker.advance() == nil) // 1 is still in flight
        tracker.finished(1, needsAck: true)
        #expect(tracker.advance() == 3)
        #expect(tracker.outstanding == 2)
        tracker.finished(5, needsAck: true)
        #expect(tracker.advance() == nil)
        tracker.finished(4, needsAck: true)
        #expect(tracker.advance() == 5)
        #expect(tracker.outstanding == 0)
    }

    @Test func deliveriesSettledAloneAreNeverNamedByAnAck() {
        var tracker = DeliveryTracker<String>()
        for tag in UInt64(1)...4 { tracker.received(tag) }
        tracker.finished(1, needsAck: true)
        tracker.finished(2, needsAck: false) // rejected to the dead-letter exchange
        #expect(tracker.advance() == 1)
        tracker.finished(3, needsAck: false)
        #expect(tracker.advance() == nil)
        tracker.finished(4, needsAck: true)
        #expect(tracker.advance() == 4)
    }

    @Test func ignoresUnknownAndRepeatedTags() {
        var tracker = DeliveryTracker<String>()
        tracker.received(1)
        tracker.finished(7, needsAck: true)
        tracker.finished(1, needsAck: true)
        tracker.finished(1, needsAck: true)
        #expect(tracker.outstanding == 0)
        #expect(tracker.advance() == 1)
    }

    @Test func keepsEachDeliveryUntilItIsSettledOrTaken() {
        var tracker = DeliveryTracker<String>()
        for tag in UInt64(1)...3 { tracker.received(tag, keeping: "message \(tag)") }
        #expect(tracker.kept(2) == "message 2")
        #expect(tracker.take(2) == "message 2")
        #expect(tracker.kept(2) == nil)
        #expect(tracker.outstanding == 3) // taken for a dead letter, not yet settled
        tracker.finished(1, needsAck: true)
        #expect(tracker.kept(1) == nil)
        #expect(tracker.kept(3) == "message 3")
        #expect(tracker.kept(9) == nil)
    }

    @Test func theWindowFollowsTheWatermarkOverManyDeliveries() {
        var tracker = DeliveryTracker<Int>()
        var acked: UInt64 = 0
        // Deliveries settled out of order within each batch of 100, a few rejected alone, over 50,000 tags.
        for batch in 0..<500 {
            let first = UInt64(batch * 100 + 1)
            for tag in first..<(first + 100) { tracker.received(tag, keeping: Int(tag)) }
            for tag in (first..<(first + 100)).reversed() { tracker.finished(tag, needsAck: tag % 37 != 0) }
            if let tag = tracker.advance() { acked = tag }
            #expect(tracker.outstanding == 0)
        }
        #expect(acked == 50_000)
        #expect(tracker.watermark == 50_001)
        tracker.received(50_001, keeping: 1)
        #expect(tracker.kept(50_001) == 1)
        #expect(tracker.advance() == nil)
    }

    @Test func lanesAreStableAndSpread() {
        #expect(LanePipeline.lane(of: "contact-1", count: 8) == LanePipeline.lane(of: "contact-1", count: 8))
        let used = Set((0..<1000).map { LanePipeline.lane(of: "contact-\($0)", count: 8) })
        #expect(used.count == 8)
    }
}
