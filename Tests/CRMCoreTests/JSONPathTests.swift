import CRMCore
import Testing

@Suite("JSON paths")
struct JSONPathTests {
    static let document = try! JSONParser().parse(#"{"user":{"id":"u-1","address":{"country":"SE"}},"items":[{"sku":"A"},{"sku":"B"}],"key with.dots":7}"#)

    @Test(arguments: [
        ("$.user.id", JSONValue.string("u-1")),
        ("$.user.address.country", .string("SE")),
        ("$.items[1].sku", .string("B")),
        (#"$["key with.dots"]"#, .number("7")),
        ("$['user']['id']", .string("u-1")),
        ("$.items", .array([.object([("sku", .string("A"))]), .object([("sku", .string("B"))])])),
    ])
    func findsValues(path: String, expected: JSONValue) throws {
        #expect(try JSONPath(path).value(in: Self.document) == expected)
    }

    @Test(arguments: ["$.user.name", "$.items[2].sku", "$.user.id.x", "$.items.sku", "$.user[0]"])
    func missingStepsFindNothing(path: String) throws {
        #expect(try JSONPath(path).value(in: Self.document) == nil)
    }

    @Test(arguments: [
        ("user.id", #"invalid JSON path "user.id": must start with $"#),
        ("$.", #"invalid JSON path "$.": expected a member name at character 3"#),
        ("$.a[x]", #"invalid JSON path "$.a[x]": expected an index such as [0] or a quoted member such as ["a b"] at character 5"#),
        ("$.a['b", #"invalid JSON path "$.a['b": unclosed quoted member at character 7"#),
        ("$a", #"invalid JSON path "$a": expected . or [ at character 2"#),
    ])
    func refusesMalformedPaths(path: String, message: String) {
        #expect(throws: JSONPathError.self) { try JSONPath(path) }
        do {
            _ = try JSONPath(path)
        } catch {
            #expect(error.description == message)
        }
    }
}
