import Foundation

/// An exact, non-negative decimal amount of money, kept as plain decimal text.
///
/// `100.50` stays `100.50` (scale included), and JSON exponents are written out (`1.5e3` is `1500`).
/// `Decimal` is available for arithmetic; storage and output use the text, so nothing is ever rounded.
public struct DecimalAmount: Sendable, Hashable, CustomStringConvertible {
    /// Plain decimal text: digits, optionally a point and more digits; no sign, no exponent.
    public let text: String

    /// Most digits before the point: a quadrillion is more than any real payment.
    public static let maxIntegerDigits = 15
    /// Most digits after the point.
    public static let maxFractionDigits = 8

    public var description: String { text }

    public var decimal: Decimal { Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) ?? 0 }

    /// Reads a JSON number literal. The error is the reason, ready to follow a field name.
    public static func parse(jsonNumber literal: String) -> Result<DecimalAmount, AmountError> {
        if isPlain(literal) { return .success(DecimalAmount(text: literal)) }
        var bytes = Substring(literal).utf8[...]
        if bytes.first == UInt8(ascii: "-") {
            let magnitude = bytes.dropFirst()
            if magnitude.allSatisfy({ $0 == UInt8(ascii: "0") || $0 == UInt8(ascii: ".") }) {
                bytes = magnitude // -0 and -0.00 are zero
            } else {
                return .failure(.negative(literal))
            }
        }
        var integerDigits: [UInt8] = []
        var fractionDigits: [UInt8] = []
        var exponent = 0
        var part = 0 // 0 integer, 1 fraction, 2 exponent
        var exponentSign = 1
        var exponentDigits = 0
        for byte in bytes {
            switch (part, byte) {
            case (0, UInt8(ascii: "0")...UInt8(ascii: "9")): integerDigits.append(byte)
            case (0, UInt8(ascii: ".")): part = 1
            case (1, UInt8(ascii: "0")...UInt8(ascii: "9")): fractionDigits.append(byte)
            case (0, UInt8(ascii: "e")), (0, UInt8(ascii: "E")), (1, UInt8(ascii: "e")), (1, UInt8(ascii: "E")): part = 2
            case (2, UInt8(ascii: "+")) where exponentDigits == 0: break
            case (2, UInt8(ascii: "-")) where exponentDigits == 0: exponentSign = -1
            case (2, UInt8(ascii: "0")...UInt8(ascii: "9")):
                exponentDigits += 1
                if exponent < 10_000 { exponent = exponent * 10 + Int(byte - UInt8(ascii: "0")) }
            default: return .failure(.notANumber(literal))
            }
        }
        guard !integerDigits.isEmpty else { return .failure(.notANumber(literal)) }
        exponent *= exponentSign
        // A tiny exponent is a fraction too fine for an amount, not a number too large.
        guard exponent >= -64 else { return .failure(.tooPrecise(literal)) }
        guard exponent <= 64 else { return .failure(.outOfRange(literal)) }
        let digits = integerDigits + fractionDigits
        let point = integerDigits.count + exponent
        var whole: [UInt8]
        var fraction: [UInt8]
        if point <= 0 {
            whole = []
            fraction = Array(repeating: UInt8(ascii: "0"), count: -point) + digits
        } else if point >= digits.count {
            whole = digits + Array(repeating: UInt8(ascii: "0"), count: point - digits.count)
            fraction = []
        } else {
            whole = Array(digits[..<point])
            fraction = Array(digits[point...])
        }
        while whole.count > 1, whole.first == UInt8(ascii: "0") { whole.removeFirst() }
        if whole.isEmpty { whole = [UInt8(ascii: "0")] }
        if fraction.count > maxFractionDigits {
            // Trailing zeros beyond the limit carry no value: 1.000000000 is 1.00000000.
            while fraction.count > maxFractionDigits, fraction.last == UInt8(ascii: "0") { fraction.removeLast() }
            guard fraction.count <= maxFractionDigits else { return .failure(.tooPrecise(literal)) }
        }
        guard whole.count <= maxIntegerDigits else { return .failure(.outOfRange(literal)) }
        var text = String(decoding: whole, as: UTF8.self)
        if !fraction.isEmpty { text += "." + String(decoding: fraction, as: UTF8.self) }
        return .success(DecimalAmount(text: text))
    }

    /// Whether the literal is already plain decimal text as `parse` writes it, the common case: `0` or digits
    /// without a leading zero (at most `maxIntegerDigits`), then optionally a point and 1 to `maxFractionDigits`
    /// digits. Such a literal is kept as it is, without the copies the general path makes.
    static func isPlain(_ literal: String) -> Bool {
        var integerDigits = 0
        var fractionDigits = 0
        var sawPoint = false
        var first: UInt8 = 0
        for byte in literal.utf8 {
            if byte == UInt8(ascii: ".") {
                guard !sawPoint, integerDigits > 0 else { return false }
                sawPoint = true
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return false }
            if sawPoint {
                fractionDigits += 1
            } else {
                if integerDigits == 0 { first = byte }
                integerDigits += 1
            }
        }
        guard integerDigits > 0, integerDigits <= maxIntegerDigits, first != UInt8(ascii: "0") || integerDigits == 1 else { return false }
        return sawPoint ? (1...maxFractionDigits).contains(fractionDigits) : true
    }

    private init(text: String) {
        self.text = text
    }
}

public enum AmountError: Error, Sendable, Equatable, CustomStringConvertible {
    case notANumber(String)
    case negative(String)
    case outOfRange(String)
    case tooPrecise(String)

    public var description: String {
        switch self {
        case let .notANumber(text): return "expected a number, got \(text)"
        case let .negative(text): return "must not be negative, got \(text)"
        case let .outOfRange(text):
            return "\(text) is out of range (at most \(DecimalAmount.maxIntegerDigits) digits before the decimal point)"
        case let .tooPrecise(text):
            return "\(text) has more than \(DecimalAmount.maxFractionDigits) digits after the decimal point"
        }
    }
}
