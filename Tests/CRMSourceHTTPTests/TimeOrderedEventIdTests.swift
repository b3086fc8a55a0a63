import CRMCore
import Foundation
import Testing
@testable import CRMSourceHTTP

@Suite("Time-ordered event ids")
struct TimeOrderedEventIdTests {
    @Test func anIdIsAVersion7UUIDThatStartsWithItsMilliseconds() throws {
        let id = TimeOrderedEventId.make(milliseconds: 0x0192_3456_789A, randomHigh: .max, randomLow: .max)
        #expect(id == "01923456-789A-7FFF-BFFF-FFFFFFFFFFFF")
        let zeros = TimeOrderedEventId.make(milliseconds: 0x0192_3456_789A, randomHigh: 0, randomLow: 0)
        #expect(zeros == "01923456-789A-7000-8000-000000000000")
        #expect(UUID(uuidString: id) != nil)
    }

    @Test func idsSortByTheMillisecondTheyWereMadeIn() {
        var random = SystemRandomNumberGenerator()
        let start = Timestamp(microsecondsSinceEpoch: 1_764_000_000_000_000)
        let ids = (0..<2_000).map { index in
            TimeOrderedEventId.make(at: Timestamp(microsecondsSinceEpoch: start.microsecondsSinceEpoch + Int64(index) * 1_000))
        }
        #expect(ids.sorted() == ids)
        // Random bits never outweigh the time: a later millisecond sorts after any id of an earlier one.
        let early = TimeOrderedEventId.make(milliseconds: 1_000, randomHigh: .max, randomLow: .max)
        let late = TimeOrderedEventId.make(milliseconds: 1_001, randomHigh: random.next(), randomLow: random.next())
        #expect(early < late)
    }

    @Test func idsOfOneMillisecondAreDistinct() {
        let now = Timestamp(microsecondsSinceEpoch: 1_764_000_000_000_000)
        let ids = (0..<20_000).map { _ in TimeOrderedEventId.make(at: now) }
        #expect(Set(ids).count == ids.count)
        #expect(Set(ids.map { $0.prefix(13) }).count == 1)
    }
}

@Suite("Content-Type media type")
struct MediaTypeTests {
    @Test(arguments: [
        ("application/json", "application/json"),
        ("Application/JSON; charset=utf-8", "application/json"),
        (" \tapplication/vnd.shop+json ;v=2", "application/vnd.shop+json"),
        ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"),
        ("", ""),
        ("; charset=utf-8", ""),
    ])
    func theMediaTypeIsTheLowercasedValueBeforeItsParameters(value: String, expected: String) {
        #expect(IncomingRequestHandler.mediaType(of: value) == expected)
    }
}
