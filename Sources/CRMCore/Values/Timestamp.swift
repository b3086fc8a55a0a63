/// An instant, in microseconds since 1970-01-01T00:00:00Z.
///
/// Parsed from ISO-8601 without Foundation's formatters (they are slow and locale-sensitive); an instant without
/// an offset (`2020-02-05T13:20:00`, as the Symplify seed writes it) is UTC.
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var microsecondsSinceEpoch: Int64

    public init(microsecondsSinceEpoch: Int64) {
        self.microsecondsSinceEpoch = microsecondsSinceEpoch
    }

    public init(secondsSinceEpoch: Int64) {
        self.microsecondsSinceEpoch = secondsSinceEpoch * 1_000_000
    }

    /// Years an event may carry: anything outside is a sender's bug, not a real date.
    public static let acceptedYears = 1900...2200

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.microsecondsSinceEpoch < rhs.microsecondsSinceEpoch
    }

    public var secondsSinceEpoch: Int64 { microsecondsSinceEpoch.floorDivided(by: 1_000_000) }

    /// RFC 3339 in UTC, with a fraction only when there is one: `2020-02-05T13:20:00Z`.
    public var description: String { rfc3339 }

    public var rfc3339: String {
        let seconds = secondsSinceEpoch
        let micros = microsecondsSinceEpoch - seconds * 1_000_000
        let days = seconds.floorDivided(by: 86_400)
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = Timestamp.civil(fromDays: days)
        var text = "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T"
        text += "\(pad(Int(secondOfDay / 3600), 2)):\(pad(Int(secondOfDay % 3600 / 60), 2)):\(pad(Int(secondOfDay % 60), 2))"
        if micros != 0 {
            var fraction = pad(Int(micros), 6)
            while fraction.hasSuffix("0") { fraction.removeLast() }
            text += "." + fraction
        }
        return text + "Z"
    }

    /// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fraction]]` with an optional `Z` or `±HH:MM` / `±HHMM` offset.
    /// The error is the reason, ready to follow a field name.
    public static func parseISO8601(_ text: String) -> Result<Timestamp, TimestampError> {
        // Native strings lend their UTF-8 as it is; a copy only for the others (bridged or lazily decoded ones).
        if let result = text.utf8.withContiguousStorageIfAvailable({ parseISO8601(text, bytes: $0) }) { return result }
        return Array(text.utf8).withUnsafeBufferPointer { parseISO8601(text, bytes: $0) }
    }

    private static func parseISO8601(_ text: String, bytes: UnsafeBufferPointer<UInt8>) -> Result<Timestamp, TimestampError> {
        var cursor = ISO8601Cursor(bytes: bytes)
        let bad = TimestampError.notISO8601(text)
        guard let year = cursor.number(4), cursor.expect("-"), let month = cursor.number(2), cursor.expect("-"),
              let day = cursor.number(2) else {
            return .failure(bad)
        }
        var hour = 0, minute = 0, second = 0, micros = 0, offsetSeconds = 0
        if let separator = cursor.next {
            guard separator == UInt8(ascii: "T") || separator == UInt8(ascii: "t") || separator == UInt8(ascii: " ") else {
                return .failure(bad)
            }
            cursor.index += 1
            guard let h = cursor.number(2), cursor.expect(":"), let m = cursor.number(2) else { return .failure(bad) }
            hour = h
            minute = m
            if cursor.expect(":") {
                guard let s = cursor.number(2) else { return .failure(bad) }
                second = s
                if cursor.expect(".") || cursor.expect(",") {
                    var digits = 0
                    while let byte = cursor.next, byte >= 48, byte <= 57 {
                        if digits < 6 { micros = micros * 10 + Int(byte - 48) }
                        digits += 1
                        cursor.index += 1
                    }
                    guard digits > 0, digits <= 9 else { return .failure(bad) }
                    if digits < 6 { for _ in digits..<6 { micros *= 10 } }
                }
            }
            if let zone = cursor.next {
                if cursor.expect("Z") || cursor.expect("z") {
                    // UTC
                } else if zone == UInt8(ascii: "+") || zone == UInt8(ascii: "-") {
                    let sign = zone == UInt8(ascii: "-") ? -1 : 1
                    cursor.index += 1
                    guard let oh = cursor.number(2) else { return .failure(bad) }
                    _ = cursor.expect(":")
                    guard let om = cursor.number(2), oh <= 23, om <= 59 else { return .failure(bad) }
                    offsetSeconds = sign * (oh * 3600 + om * 60)
                } else {
                    return .failure(bad)
                }
            }
        }
        guard cursor.next == nil else { return .failure(bad) }
        guard acceptedYears.contains(year) else { return .failure(.outOfRange(text)) }
        guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day),
              hour <= 23, minute <= 59, second <= 59 else {
            return .failure(.invalidDate(text))
        }
        let days = Int64(daysFromCivil(year: year, month: month, day: day))
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetSeconds)
        return .success(Timestamp(microsecondsSinceEpoch: seconds * 1_000_000 + Int64(micros)))
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = Int(days) + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// This instant moved by a calendar amount in UTC; a day past the end of the month clamps to its last day
    /// (January 31 plus one month is the last day of February).
    public func adding(_ amount: Int, _ unit: CalendarUnit) -> Timestamp {
        switch unit {
        case .minutes: return Timestamp(microsecondsSinceEpoch: microsecondsSinceEpoch + Int64(amount) * 60_000_000)
        case .hours: return Timestamp(microsecondsSinceEpoch: microsecondsSinceEpoch + Int64(amount) * 3_600_000_000)
        case .days: return Timestamp(microsecondsSinceEpoch: microsecondsSinceEpoch + Int64(amount) * 86_400_000_000)
        case .months, .years:
            let seconds = secondsSinceEpoch
            let rest = microsecondsSinceEpoch - seconds.floorDivided(by: 86_400) * 86_400_000_000
            let (year, month, day) = Timestamp.civil(fromDays: seconds.floorDivided(by: 86_400))
            let totalMonths = year * 12 + (month - 1) + (unit == .months ? amount : amount * 12)
            let newYear = totalMonths.floorDivided(by: 12)
            let newMonth = totalMonths - newYear * 12 + 1
            let newDay = min(day, Timestamp.daysIn(month: newMonth, year: newYear))
            let days = Int64(Timestamp.daysFromCivil(year: newYear, month: newMonth, day: newDay))
            return Timestamp(microsecondsSinceEpoch: days * 86_400_000_000 + rest)
        }
    }
}

/// Units of a temporary block, as the Symplify seed names them.
public enum CalendarUnit: String, Sendable, CaseIterable {
    case minutes, hours, days, months, years
}

public enum TimestampError: Error, Sendable, Equatable, CustomStringConvertible {
    case notISO8601(String)
    case invalidDate(String)
    case outOfRange(String)

    public var description: String {
        switch self {
        case let .notISO8601(text): return "expected an ISO-8601 date and time, got \"\(text)\""
        case let .invalidDate(text): return "no such date or time \"\(text)\""
        case let .outOfRange(text):
            return "\"\(text)\" is out of range (years \(Timestamp.acceptedYears.lowerBound) to \(Timestamp.acceptedYears.upperBound))"
        }
    }
}

private func pad(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

extension BinaryInteger {
    /// Division rounding toward negative infinity, so instants before 1970 split into days correctly.
    func floorDivided(by divisor: Self) -> Self {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }
}

import Foundation

extension Timestamp {
    /// The wall clock. Code that needs the time takes a `@Sendable () -> Timestamp` defaulting to this, so tests
    /// can pass their own.
    public static func now() -> Timestamp {
        Timestamp(microsecondsSinceEpoch: Int64((Date().timeIntervalSince1970 * 1_000_000).rounded()))
    }
}

/// Reads an ISO 8601 text byte by byte. A struct with mutating methods, not local functions capturing the
/// position: captured, the position was checked for exclusive access at run time on every byte.
private struct ISO8601Cursor {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// The byte at the position; nil at the end.
    var next: UInt8? { index < bytes.count ? bytes[index] : nil }

    /// `width` decimal digits as a number, or nil (and the position unchanged).
    mutating func number(_ width: Int) -> Int? {
        guard index + width <= bytes.count else { return nil }
        var value = 0
        for offset in 0..<width {
            let byte = bytes[index + offset]
            guard byte >= 48 && byte <= 57 else { return nil }
            value = value * 10 + Int(byte - 48)
        }
        index += width
        return value
    }

    /// Steps over `ascii` if it is next.
    mutating func expect(_ ascii: Unicode.Scalar) -> Bool {
        guard index < bytes.count, bytes[index] == UInt8(ascii: ascii) else { return false }
        index += 1
        return true
    }
}
