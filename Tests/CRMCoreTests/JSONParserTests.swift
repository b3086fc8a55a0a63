import CRMCore
import Testing

@Suite("JSON parser")
struct JSONParserTests {
    let parser = JSONParser()

    @Test func keepsNumbersAsWritten() throws {
        let value = try parser.parse(#"{"a": 100.50, "b": 12345678901234567890123, "c": -0.0e+5}"#)
        #expect(value["a"] == .number("100.50"))
        #expect(value["b"] == .number("12345678901234567890123"))
        #expect(value["c"] == .number("-0.0e+5"))
    }

    @Test func readsEscapesAndSurrogatePairs() throws {
        let value = try parser.parse(#"["a\"b\\c\/\n\t", "\u00e9\ud83d\ude00"]"#)
        #expect(value == .array([.string("a\"b\\c/\n\t"), .string("é😀")]))
    }

    @Test func keepsMemberOrder() throws {
        guard case let .object(members) = try parser.parse(#"{"z":1,"a":2,"m":3}"#) else {
            Issue.record("not an object")
            return
        }
        #expect(members.map(\.key) == ["z", "a", "m"])
    }

    @Test func toleratesByteOrderMark() throws {
        #expect(try parser.parse([0xEF, 0xBB, 0xBF] + Array("{}".utf8)) == .object([]))
    }

    @Test(arguments: [
        (#"{"a":1,"a":2}"#, #"duplicate key "a""#),
        (#"{"a":1"#, "unexpected end of input in an object"),
        (#"{"a":1} x"#, "unexpected data after the document"),
        (#"["\ud800"]"#, #"lone surrogate \uD800 in a string"#),
        (#"["\udc00x"]"#, #"lone surrogate \uDC00 in a string"#),
        (#"[01]"#, "invalid number: leading zero"),
        (#"[1.]"#, "invalid number: no digit after '.'"),
        (#"[tru]"#, "invalid literal"),
        ("[\"a\u{01}\"]", "control character 0x01 in a string"),
        ("", "unexpected end of input"),
        (#"{'a':1}"#, "expected a member name in quotes"),
        (#"["\x"]"#, "invalid escape \\'x'"),
    ])
    func refusesInvalidDocuments(text: String, reason: String) {
        #expect(self.reason(parser, text) == reason)
    }

    @Test(arguments: [
        [0xC3, 0x28] as [UInt8], // a lead byte without its continuation
        [0xED, 0xA0, 0x80], // a UTF-8-encoded lone surrogate (U+D800)
        [0xF8, 0x88, 0x80, 0x80, 0x80], // a five-byte form
        [0xC0, 0xAF], // an overlong "/"
        [0x80], // a continuation byte alone
        [0xEF, 0xBF, 0xBD, 0xFF], // a real U+FFFD, then an invalid byte: repairing would look the same length
    ])
    func refusesInvalidUTF8(invalid: [UInt8]) {
        for (prefix, suffix) in [(#"{"a":""#, #""}"#), (#"{"a":"x\n"#, #""}"#)] {
            let bytes: [UInt8] = Array(prefix.utf8) + invalid + Array(suffix.utf8)
            #expect(throws: JSONParseError(offset: 6, reason: "string is not valid UTF-8")) { try parser.parse(bytes) }
        }
    }

    @Test func keepsValidUTF8AndTheReplacementCharacter() throws {
        let text = #"{"a":"Zoë – 東京 🚀 \#u{FFFD}","b":"esc\"aped é"}"#
        let value = try parser.parse(Array(text.utf8))
        #expect(value["a"] == .string("Zoë – 東京 🚀 \u{FFFD}"))
        #expect(value["b"] == .string("esc\"aped é"))
    }

    @Test func refusesDeepNestingWithoutCrashing() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(reason(parser, deep) == "nesting deeper than 32 levels")
    }

    func reason(_ parser: JSONParser, _ text: String) -> String? {
        do {
            _ = try parser.parse(text)
            return nil
        } catch {
            return error.reason
        }
    }

    @Test func enforcesSizeAndMemberLimits() {
        #expect(reason(JSONParser(limits: JSONLimits(maxBytes: 10)), #"{"a":"0123456789"}"#) == "document is larger than 10 bytes")
        #expect(reason(JSONParser(limits: JSONLimits(maxObjectMembers: 2)), #"{"a":1,"b":2,"c":3}"#) == "object has more than 2 members")
        #expect(reason(JSONParser(limits: JSONLimits(maxStringBytes: 3)), #"["abcd"]"#) == "string longer than 3 bytes")
    }

    @Test func detectsDuplicatesInLargeObjects() {
        let members = (0..<100).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        #expect(throws: JSONParseError.self) { try parser.parse("{\(members),\"k50\":1}") }
        #expect((try? parser.parse("{\(members)}")) != nil)
    }

    @Test func canonicalFormIgnoresOrderAndSpacing() throws {
        let a = try parser.parse(#"{ "b": [1, {"y":true,"x":null}], "a": "é" }"#)
        let b = try parser.parse(#"{"a":"é","b":[1,{"x":null,"y":true}]}"#)
        #expect(JSONWriter.canonicalBytes(a) == JSONWriter.canonicalBytes(b))
        #expect(String(decoding: JSONWriter.canonicalBytes(a), as: UTF8.self) == #"{"a":"é","b":[1,{"x":null,"y":true}]}"#)
    }

    @Test func writerEscapesWhatItMust() {
        #expect(JSONWriter.string(.string("a\"b\\\n\u{01}")) == #""a\"b\\\n\u0001""#)
    }

    /// Strings without anything to escape are copied whole; one byte to escape anywhere takes the escaping path.
    @Test(arguments: ["", "plain", "é – ünïcode ✓", "ends with a quote\"", "\ttab first", "x\u{1F}y"])
    func writtenStringsReadBackAsTheyWere(text: String) throws {
        let written = JSONWriter.string(.object([("k", .string(text))]))
        #expect(try JSONParser().parse(Array(written.utf8)) == .object([("k", .string(text))]))
        if !text.unicodeScalars.contains(where: { $0 == "\"" || $0 == "\\" || $0.value < 0x20 }) {
            #expect(written == "{\"k\":\"" + text + "\"}")
        }
    }
}
