import CRMCore

/// Event ids for incoming requests: RFC 9562 version 7 UUIDs, 48 bits of Unix milliseconds followed by 74 random
/// bits, printed like `UUID().uuidString`.
///
/// They sort by the time they were made, so the store's recorded requests (keyed by event id) grow at one end of
/// their index instead of at a random page per request; a random (version 4) id made every request write a page of
/// its own. Ids made in one millisecond are ordered at random among themselves, and are still unique.
public enum TimeOrderedEventId {
    /// A new id for a request received at `now`.
    public static func make(at now: Timestamp) -> String {
        var random = SystemRandomNumberGenerator()
        return make(milliseconds: UInt64(max(0, now.microsecondsSinceEpoch / 1_000)), randomHigh: random.next(), randomLow: random.next())
    }

    /// The id of `milliseconds` since 1970 with these random bits (the version and variant bits overwrite some).
    static func make(milliseconds: UInt64, randomHigh: UInt64, randomLow: UInt64) -> String {
        let ms = milliseconds & 0xFFFF_FFFF_FFFF
        let bytes: [UInt8] = [
            UInt8(truncatingIfNeeded: ms >> 40), UInt8(truncatingIfNeeded: ms >> 32), UInt8(truncatingIfNeeded: ms >> 24),
            UInt8(truncatingIfNeeded: ms >> 16), UInt8(truncatingIfNeeded: ms >> 8), UInt8(truncatingIfNeeded: ms),
            0x70 | UInt8(truncatingIfNeeded: randomHigh >> 8) & 0x0F, UInt8(truncatingIfNeeded: randomHigh),
            0x80 | UInt8(truncatingIfNeeded: randomLow >> 56) & 0x3F, UInt8(truncatingIfNeeded: randomLow >> 48),
            UInt8(truncatingIfNeeded: randomLow >> 40), UInt8(truncatingIfNeeded: randomLow >> 32),
            UInt8(truncatingIfNeeded: randomLow >> 24), UInt8(truncatingIfNeeded: randomLow >> 16),
            UInt8(truncatingIfNeeded: randomLow >> 8), UInt8(truncatingIfNeeded: randomLow),
        ]
        // 8-4-4-4-12 upper-case hex digits, as `UUID().uuidString` prints them.
        return String(unsafeUninitializedCapacity: 36) { out in
            let digits: StaticString = "0123456789ABCDEF"
            let table = UnsafeRawBufferPointer(start: digits.utf8Start, count: 16)
            var index = 0
            for (offset, byte) in bytes.enumerated() {
                if offset == 4 || offset == 6 || offset == 8 || offset == 10 {
                    out[index] = UInt8(ascii: "-")
                    index += 1
                }
                out[index] = table[Int(byte >> 4)]
                out[index + 1] = table[Int(byte & 0x0F)]
                index += 2
            }
            return index
        }
    }
}
