@testable import CRMSourceRabbitMQ
import Testing

@Suite("Ack bookkeeping")
struct DeliveryTrackerTests {
    @Test func acksOnlyOverTagsThatAreAllDone() {
        var tracker = DeliveryTracker()
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
        var tracker = DeliveryTracker()
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
        var tracker = DeliveryTracker()
        tracker.received(1)
        tracker.finished(7, needsAck: true)
        tracker.finished(1, needsAck: true)
        tracker.finished(1, needsAck: true)
        #expect(tracker.outstanding == 0)
        #expect(tracker.advance() == 1)
    }

    @Test func lanesAreStableAndSpread() {
        #expect(LanePipeline.lane(of: "contact-1", count: 8) == LanePipeline.lane(of: "contact-1", count: 8))
        let used = Set((0..<1000).map { LanePipeline.lane(of: "contact-\($0)", count: 8) })
        #expect(used.count == 8)
    }
}
