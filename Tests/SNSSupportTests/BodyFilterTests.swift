import CRMCore
import SNSSupport
import Testing

/// Scope `MessageBody`: the payload as a JSON object, nested keys, arrays.
@Suite("SNS filter policy: message body")
struct BodyFilterTests {
    /// A Jomablue person payload (docs/formats/jomablue.md §8, invented values).
    static let person = #"""
        {"resource_type":"person","generated_at":"2026-05-13T00:02:10.118Z",
         "context":{"event_id":"northwind/event/5","event_name":"서울 클라우드 서밋 2026","event_metadata":{"region":"APAC","cost_centre":"1500"}},
         "identifiers":{"first_name":"지은","last_name":"이","email":"jieun.lee@example.co.kr","phone":"","id":"northwind/event_person/51490","organisation_uid":"0035g00000AbC34AAB"},
         "data":{"job_title":"CTO","cancelled":false,"checked_in":true,"first_check_in":null,"score":42,
                 "categories":[{"id":"northwind/category/12","name":"VIP"},{"id":"northwind/category/11","name":"Delegate"}],
                 "tags":["keynote",["nested","deeper"]]}}
        """#

    static let cases: [MatchCase] = [
        // Top-level and nested keys, exact values of each JSON type.
        .init("top-level string", #"{"resource_type": ["person"]}"#, person, true),
        .init("top-level string, other", #"{"resource_type": ["event", "lead"]}"#, person, false),
        .init("nested boolean (Jomablue's checked-in filter)", #"{"data": {"checked_in": [true]}}"#, person, true),
        .init("the string \"true\" is not the boolean true", #"{"data": {"checked_in": ["true"]}}"#, person, false),
        .init("nested false", #"{"data": {"cancelled": [false]}}"#, person, true),
        .init("three levels", #"{"context": {"event_metadata": {"region": ["APAC", "EMEA"]}}}"#, person, true),
        .init("three levels, other value", #"{"context": {"event_metadata": {"region": ["EMEA"]}}}"#, person, false),
        .init("non-ASCII exact", #"{"identifiers": {"first_name": ["지은"]}}"#, person, true),
        .init("null value", #"{"data": {"first_check_in": [null]}}"#, person, true),
        .init("null does not match an absent key", #"{"data": {"last_check_in": [null]}}"#, person, false),
        .init("number exact, other notation", #"{"data": {"score": [4.2e1]}}"#, person, true),
        .init("policy string vs body number", #"{"data": {"score": ["42"]}}"#, person, false),
        // AND across nested keys
        .init("AND across levels", #"{"resource_type": ["person"], "data": {"checked_in": [true], "cancelled": [false]}}"#, person, true),
        .init("AND across levels, one fails", #"{"resource_type": ["person"], "data": {"checked_in": [true], "cancelled": [true]}}"#, person, false),
        // Arrays: any element; arrays of objects are followed; nested arrays are flattened.
        .init("through an array of objects", #"{"data": {"categories": {"name": ["VIP"]}}}"#, person, true),
        .init("through an array of objects, other", #"{"data": {"categories": {"name": ["Speaker"]}}}"#, person, false),
        .init("array element", #"{"data": {"tags": ["keynote"]}}"#, person, true),
        .init("element of a nested array", #"{"data": {"tags": ["deeper"]}}"#, person, true),
        .init("array: anything-but with one element outside", #"{"c": [{"anything-but": ["rugby", "tennis"]}]}"#, #"{"c": ["rugby", "baseball"]}"#, true),
        .init("array: anything-but with all excluded", #"{"c": [{"anything-but": ["rugby", "tennis"]}]}"#, #"{"c": ["rugby", "tennis"]}"#, false),
        .init("array: numbers anything-but", #"{"price": [{"anything-but": [100, 500]}]}"#, #"{"price": [100, 50]}"#, true),
        .init("array: numbers anything-but, excluded", #"{"price": [{"anything-but": [100, 500]}]}"#, #"{"price": 100}"#, false),
        // Operators on body values
        .init("prefix", #"{"identifiers": {"id": [{"prefix": "northwind/event_person/"}]}}"#, person, true),
        .init("prefix, no match", #"{"identifiers": {"id": [{"prefix": "acme/"}]}}"#, person, false),
        .init("suffix", #"{"identifiers": {"email": [{"suffix": ".co.kr"}]}}"#, person, true),
        .init("suffix, no match", #"{"identifiers": {"email": [{"suffix": ".com"}]}}"#, person, false),
        .init("equals-ignore-case", #"{"data": {"job_title": [{"equals-ignore-case": "cto"}]}}"#, person, true),
        .init("equals-ignore-case, no match", #"{"data": {"job_title": [{"equals-ignore-case": "ceo"}]}}"#, person, false),
        .init("anything-but prefix", #"{"identifiers": {"id": [{"anything-but": {"prefix": "acme/"}}]}}"#, person, true),
        .init("anything-but prefix, excluded", #"{"identifiers": {"id": [{"anything-but": {"prefix": "northwind/"}}]}}"#, person, false),
        .init("anything-but value", #"{"resource_type": [{"anything-but": "lead"}]}"#, person, true),
        .init("anything-but value, excluded", #"{"resource_type": [{"anything-but": ["lead", "person"]}]}"#, person, false),
        .init("numeric range", #"{"data": {"score": [{"numeric": [">", 0, "<=", 42]}]}}"#, person, true),
        .init("numeric range, outside", #"{"data": {"score": [{"numeric": [">", 42]}]}}"#, person, false),
        .init("numeric =", #"{"price_usd": [{"numeric": ["=", 301.5]}]}"#, #"{"price_usd": 3.015e2}"#, true),
        .init("numeric ignores strings", #"{"price_usd": [{"numeric": [">", 0]}]}"#, #"{"price_usd": "210.75"}"#, false),
        // exists, on leaves only; null and "" do not exist.
        .init("exists true", #"{"data": {"job_title": [{"exists": true}]}}"#, person, true),
        .init("exists true, absent", #"{"data": {"badge": [{"exists": true}]}}"#, person, false),
        .init("exists true, empty string", #"{"identifiers": {"phone": [{"exists": true}]}}"#, person, false),
        .init("exists true, null", #"{"data": {"first_check_in": [{"exists": true}]}}"#, person, false),
        .init("exists true on an intermediate node", #"{"data": [{"exists": true}]}"#, person, false),
        .init("exists false, absent", #"{"data": {"badge": [{"exists": false}]}}"#, person, true),
        .init("exists false, null", #"{"data": {"first_check_in": [{"exists": false}]}}"#, person, true),
        .init("exists false, present", #"{"data": {"job_title": [{"exists": false}]}}"#, person, false),
        .init("exists false, parent absent", #"{"venue": {"name": [{"exists": false}]}}"#, person, true),
        .init("absent nested key, exact value", #"{"venue": {"name": ["COEX"]}}"#, person, false),
        // $or, at the top and inside a nested key
        .init("$or top level", #"{"$or": [{"resource_type": ["event"]}, {"data": {"checked_in": [true]}}]}"#, person, true),
        .init("$or top level, no branch", #"{"$or": [{"resource_type": ["event"]}, {"data": {"checked_in": [false]}}]}"#, person, false),
        .init("$or inside a nested key", #"{"data": {"$or": [{"cancelled": [true]}, {"checked_in": [true]}]}}"#, person, true),
        .init("$or inside a nested key, no branch", #"{"data": {"$or": [{"cancelled": [true]}, {"job_title": ["CEO"]}]}}"#, person, false),
        .init("$or ANDed with a sibling", #"{"resource_type": ["lead"], "data": {"$or": [{"cancelled": [true]}, {"checked_in": [true]}]}}"#, person, false),
        // Bodies that are not objects
        .init("body is an array", #"{"a": [{"exists": false}]}"#, #"[{"a": 1}]"#, false),
        .init("body is a string", #"{"a": ["x"]}"#, #""x""#, false),
        .init("empty policy, any body", #"{}"#, #"[1, 2]"#, true),
        .init("empty body object, exists false", #"{"a": [{"exists": false}]}"#, #"{}"#, true),
    ]

    @Test(arguments: cases)
    func matchesLikeSNS(_ testCase: MatchCase) throws {
        let policy = try SNSFilterPolicy(parsing: json(testCase.policy), scope: .messageBody)
        #expect(policy.matches(body: try json(testCase.message)) == testCase.matches)
    }

    /// A flat policy reads the same whichever scope it was parsed for; the scope only decides validation and what
    /// `matches(envelope:)` looks at.
    @Test func flatPolicyWorksOnBothInputs() throws {
        let policy = try SNSFilterPolicy(parsing: json(#"{"resource_type": ["person"]}"#), scope: .messageAttributes)
        #expect(policy.matches(body: try json(Self.person)))
        #expect(policy.matches(attributes: ["resource_type": .string("person")]))
    }
}
