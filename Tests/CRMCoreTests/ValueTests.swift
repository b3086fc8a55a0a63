import Crypto
import Foundation
import CRMCore
import Testing

@Suite("Timestamps")
struct TimestampTests {
    @Test(arguments: [
        ("2020-02-05T13:20:00", "2020-02-05T13:20:00Z"),
        ("2020-02-05T13:20:00Z", "2020-02-05T13:20:00Z"),
        ("2020-02-05T15:20:00+02:00", "2020-02-05T13:20:00Z"),
        ("2020-02-05T08:20:00-0500", "2020-02-05T13:20:00Z"),
        ("2020-02-05T13:20:00.250Z", "2020-02-05T13:20:00.25Z"),
        ("2020-02-05T13:20", "2020-02-05T13:20:00Z"),
        ("2020-02-05", "2020-02-05T00:00:00Z"),
        ("2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z"),
        ("1969-12-31T23:59:59Z", "1969-12-31T23:59:59Z"),
        ("2020-02-05 13:20:00z", "2020-02-05T13:20:00Z"),
        ("2020-02-05t13:20:00,5Z", "2020-02-05T13:20:00.5Z"),
        ("2020-02-05T13:20:00.1234567Z", "2020-02-05T13:20:00.123456Z"),
    ])
    func parsesISO8601(text: String, expected: String) throws {
        #expect(try Timestamp.parseISO8601(text).get().rfc3339 == expected)
    }

    @Test func withoutOffsetIsUTC() throws {
        #expect(try Timestamp.parseISO8601("1970-01-01T00:00:01").get().microsecondsSinceEpoch == 1_000_000)
    }

    @Test(arguments: [
        ("05/02/2020", TimestampError.notISO8601("05/02/2020")),
        ("2020-02-30T00:00:00", .invalidDate("2020-02-30T00:00:00")),
        ("2023-02-29", .invalidDate("2023-02-29")),
        ("2020-02-05T24:00:00", .invalidDate("2020-02-05T24:00:00")),
        ("9999-01-01T00:00:00Z", .outOfRange("9999-01-01T00:00:00Z")),
        ("0001-01-01T00:00:00Z", .outOfRange("0001-01-01T00:00:00Z")),
        ("2020-02-05T13:20:00+25:00", .notISO8601("2020-02-05T13:20:00+25:00")),
        ("2020-02-05T13:20:00.1234567890Z", .notISO8601("2020-02-05T13:20:00.1234567890Z")),
        ("", .notISO8601("")),
        ("2020-02-05T13:20:00Zx", .notISO8601("2020-02-05T13:20:00Zx")),
        ("2020-02-05T", .notISO8601("2020-02-05T")),
    ])
    func refusesBadTimestamps(text: String, error: TimestampError) {
        #expect(Timestamp.parseISO8601(text) == .failure(error))
    }

    @Test func addsCalendarUnitsInUTC() throws {
        let start = try Timestamp.parseISO8601("2020-01-31T10:00:00Z").get()
        #expect(start.adding(1, .months).rfc3339 == "2020-02-29T10:00:00Z")
        #expect(start.adding(1, .years).rfc3339 == "2021-01-31T10:00:00Z")
        #expect(start.adding(30, .days).rfc3339 == "2020-03-01T10:00:00Z")
        #expect(start.adding(90, .minutes).rfc3339 == "2020-01-31T11:30:00Z")
        #expect(start.adding(-2, .hours).rfc3339 == "2020-01-31T08:00:00Z")
        #expect(start.adding(11, .months).rfc3339 == "2020-12-31T10:00:00Z")
    }
}

@Suite("Exact amounts")
struct DecimalAmountTests {
    @Test(arguments: [
        ("100.50", "100.50"), ("0", "0"), ("1e2", "100"), ("1.5E+3", "1500"), ("12.5e-1", "1.25"),
        ("-0", "0"), ("-0.00", "0.00"), ("0.00000001", "0.00000001"), ("5.000000000", "5.00000000"),
        ("999999999999999.99", "999999999999999.99"),
        // Around the plain-text shortcut (`isPlain`): what it keeps as it is, and what it leaves to the general path.
        ("10", "10"), ("123456789012345", "123456789012345"), ("0.12345678", "0.12345678"), ("007.5", "7.5"),
        ("1.", "1"), ("0.123456780", "0.12345678"),
    ])
    func keepsTheExactValue(literal: String, text: String) throws {
        #expect(try DecimalAmount.parse(jsonNumber: literal).get().text == text)
    }

    @Test(arguments: [
        ("-1", AmountError.negative("-1")),
        ("1e400", .outOfRange("1e400")),
        ("12345678901234567890123", .outOfRange("12345678901234567890123")),
        ("0.000000001", .tooPrecise("0.000000001")),
        ("1234567890123456", .outOfRange("1234567890123456")), (".5", .notANumber(".5")), ("1.2.3", .notANumber("1.2.3")),
    ])
    func refusesAbsurdAmounts(literal: String, error: AmountError) {
        #expect(DecimalAmount.parse(jsonNumber: literal) == .failure(error))
    }

    @Test func decimalIsExact() throws {
        let amount = try DecimalAmount.parse(jsonNumber: "100.50").get()
        #expect(amount.decimal * 100 == 10050)
    }
}

@Suite("Flattening")
struct FlattenerTests {
    @Test func flattensNestedObjectsAndArraysToDottedKeys() throws {
        let value = try JSONParser().parse(#"{"a":{"b":1,"c":{"d":"x"}},"e":[{"f":true},null],"g":{}}"#)
        #expect(JSONFlattener.flatten(value) == [
            Property(key: "a.b", value: .number("1")),
            Property(key: "a.c.d", value: .string("x")),
            Property(key: "e.0.f", value: .bool(true)),
            Property(key: "e.1", value: .null),
        ])
    }
}

@Suite("Log redaction")
struct LogRedactionTests {
    @Test(arguments: [
        ("amount: expected a number, got \"ann@example.com\"", "amount: expected a number, (the value is not logged)"),
        ("type: unknown event type \"USER_DELETE\"", "type: unknown event type \"…\""),
        ("contactId: expected a string, got 4915112345678", "contactId: expected a string, (the value is not logged)"),
        ("properties.note: \"say \\\"hi\\\" to Ann\" is too long", "properties.note: \"…\" is too long"),
        ("not valid JSON: unexpected end at offset 12", "not valid JSON: unexpected end at offset 12"),
        ("an unterminated \"quote", "an unterminated \"…"),
    ])
    func reasonsLoseTheValuesTheyQuote(reason: String, logged: String) {
        #expect(LogRedaction.reason(reason) == logged)
    }

    @Test func endpointsShowTheirFirstCharactersOnly() {
        #expect(LogRedaction.endpoint("6374ce15-b804-4188-b4ab-9d584f7d0c25") == "6374…")
        #expect(LogRedaction.endpoint("abc") == "…")
    }
}

@Suite("Hex strings")
struct HexStringTests {
    @Test func aDigestAndItsBytesGiveTheSameLowerCaseHex() {
        let digest = SHA256.hash(data: Array("abc".utf8))
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        #expect(digest.withUnsafeBytes(hexString) == expected)
        #expect(hexString(Array(digest)) == expected)
        #expect(hexString(AnySequence(Array(digest))) == expected)
        #expect(hexString([0x00, 0x0F, 0xF0, 0xFF] as [UInt8]) == "000ff0ff")
        #expect(hexString([UInt8]()) == "")
    }
}

@Suite("Duration units")
struct DurationUnitsTests {
    @Test func wholeDurationsInNanosecondsAndSeconds() {
        #expect(Duration.milliseconds(1_500).totalNanoseconds == 1_500_000_000)
        #expect(Duration.nanoseconds(7).totalNanoseconds == 7)
        #expect(Duration.milliseconds(2_500).totalSeconds == 2.5)
        #expect(Duration.zero.totalSeconds == 0)
    }
}
