import CRMCore
import SNSSupport
import Testing

/// Policies AWS refuses are refused here too, with the path of the offending value and the reason.
@Suite("SNS filter policy: parsing")
struct FilterPolicyParsingTests {
    struct Invalid: Sendable, CustomTestStringConvertible {
        var policy: String
        var scope: SNSFilterPolicy.Scope
        var error: String

        init(_ policy: String, _ error: String, scope: SNSFilterPolicy.Scope = .messageAttributes) {
            self.policy = policy
            self.scope = scope
            self.error = error
        }

        var testDescription: String { "\(policy) (\(scope.rawValue))" }
    }

    static let invalid: [Invalid] = [
        // The document and its keys
        .init(#"["resource_type"]"#, "a filter policy must be a JSON object, found an array"),
        .init(#"{"resource_type": "person"}"#, "resource_type: expected an array of match values, found a string"),
        .init(#"{"resource_type": "person"}"#, "resource_type: expected an array of match values or a nested object, found a string", scope: .messageBody),
        .init(#"{"resource_type": []}"#, "resource_type: an empty array matches nothing: expected at least one value"),
        .init(#"{"data": {"checked_in": [true]}}"#, "data: nested keys need scope MessageBody; message attributes are not nested"),
        .init(#"{"data": {}}"#, "data: an empty object: expected at least one key", scope: .messageBody),
        // Match values
        .init(#"{"resource_type": [["person"]]}"#, "resource_type[0]: expected a string, number, boolean, null or operator object, found an array"),
        .init(#"{"resource_type": ["person", {}]}"#, #"resource_type[1]: an empty operator object: expected one operator such as {"prefix": "abc"}"#),
        .init(#"{"a": [{"prefix": "x", "suffix": "y"}]}"#, #"a[0]: an operator object takes exactly one operator, found 2: "prefix", "suffix""#),
        .init(#"{"a": [{"prefx": "x"}]}"#, #"a[0]: unknown operator "prefx" (expected prefix, suffix, equals-ignore-case, anything-but, numeric or exists)"#),
        .init(#"{"a": [{"wildcard": "x*"}]}"#, #"a[0]: unknown operator "wildcard" (expected prefix, suffix, equals-ignore-case, anything-but, numeric or exists)"#),
        .init(#"{"a": [{"cidr": "10.0.0.0/24"}]}"#, "a[0]: cidr (IP address) matching is not supported"),
        .init(#"{"a": [{"prefix": 1}]}"#, "a[0].prefix: expected a string, found a number"),
        .init(#"{"a": [{"suffix": null}]}"#, "a[0].suffix: expected a string, found null"),
        .init(#"{"a": [{"equals-ignore-case": ["x"]}]}"#, "a[0].equals-ignore-case: expected a string, found an array"),
        .init(#"{"a": [{"exists": "true"}]}"#, "a[0].exists: expected true or false, found a string"),
        // anything-but
        .init(#"{"a": [{"anything-but": []}]}"#, "a[0].anything-but: an empty array: expected at least one value to exclude"),
        .init(#"{"a": [{"anything-but": ["x", true]}]}"#, "a[0].anything-but[1]: expected a string or number, found a boolean"),
        .init(#"{"a": [{"anything-but": null}]}"#, #"a[0].anything-but: expected a string, a number, an array of them or {"prefix": …}, found null"#),
        .init(#"{"a": [{"anything-but": {"suffix": "x"}}]}"#, #"a[0].anything-but: only "prefix" is supported inside anything-but, found "suffix""#),
        .init(#"{"a": [{"anything-but": {"prefix": 5}}]}"#, "a[0].anything-but.prefix: expected a string, found a number"),
        .init(#"{"a": [{"anything-but": {}}]}"#, #"a[0].anything-but: expected exactly one operator inside anything-but: {"prefix": …}"#),
        // numeric
        .init(#"{"a": [{"numeric": 5}]}"#, #"a[0].numeric: expected an array of comparisons such as [">", 0, "<=", 150], found a number"#),
        .init(#"{"a": [{"numeric": []}]}"#, #"a[0].numeric: an empty array: expected comparisons such as [">", 0, "<=", 150]"#),
        .init(#"{"a": [{"numeric": ["!=", 5]}]}"#, #"a[0].numeric[0]: expected one of =, <, <=, >, >=, found "!=""#),
        .init(#"{"a": [{"numeric": [5]}]}"#, "a[0].numeric[0]: expected one of =, <, <=, >, >=, found a number"),
        .init(#"{"a": [{"numeric": [">"]}]}"#, #"a[0].numeric: expected a number after ">""#),
        .init(#"{"a": [{"numeric": [">", "5"]}]}"#, #"a[0].numeric[1]: expected a number after ">", found a string"#),
        .init(#"{"a": [{"numeric": ["=", 5, "<", 6]}]}"#, #"a[0].numeric: "=" takes one number; only a range starting with ">" or ">=" has a second comparison"#),
        .init(#"{"a": [{"numeric": ["<", 5, ">", 0]}]}"#, #"a[0].numeric: "<" takes one number; only a range starting with ">" or ">=" has a second comparison"#),
        .init(#"{"a": [{"numeric": [">", 0, ">", 5]}]}"#, #"a[0].numeric[2]: expected "<" or "<=" to close the range, found ">""#),
        .init(#"{"a": [{"numeric": [">", 0, 5]}]}"#, #"a[0].numeric[2]: expected "<" or "<=" to close the range, found a number"#),
        .init(#"{"a": [{"numeric": [">", 0, "<"]}]}"#, #"a[0].numeric: expected a number after "<""#),
        .init(#"{"a": [{"numeric": [">", 10, "<", 5]}]}"#, "a[0].numeric: the range's lower bound must be less than its upper bound"),
        .init(#"{"a": [{"numeric": [">=", 5, "<=", 5]}]}"#, "a[0].numeric: the range's lower bound must be less than its upper bound"),
        .init(#"{"a": [{"numeric": [">", 0, "<", 5, "<", 6]}]}"#, "a[0].numeric: a range has at most two comparisons, found 6 elements"),
        .init(#"{"a": [1e999]}"#, "a[0]: the number 1e999 is out of range"),
        // Paths through $or and nested keys
        .init(#"{"$or": [{"a": ["x"]}, {"b": [{"numeric": [">", "x"]}]}]}"#, #"$or[1].b[0].numeric[1]: expected a number after ">", found a string"#),
        .init(#"{"data": {"checked_in": [{"exists": 1}]}}"#, "data.checked_in[0].exists: expected true or false, found a number", scope: .messageBody),
        .init(#"{"data": {"$or": [{"a": ["x"]}, {"b": {"c": []}}]}}"#, "data.$or[1].b.c: an empty array matches nothing: expected at least one value", scope: .messageBody),
        .init(#"{"$or": [{"a": ["x"]}, {}]}"#, "$or[1]: an empty object: expected at least one key"),
        .init(#"{"$or": [{"a": ["x"]}, {"b": {"c": ["y"]}}]}"#, "$or[1].b: nested keys need scope MessageBody; message attributes are not nested"),
        // "$or" is an ordinary key unless it holds at least two objects without operator names (AWS's own example).
        .init(#"{"$or": [{"numeric": 123}, {"prefix": "abc"}]}"#, #"$or[0].numeric: expected an array of comparisons such as [">", 0, "<=", 150], found a number"#),
        .init(#"{"$or": [{"a": ["x"]}]}"#, #"$or[0]: unknown operator "a" (expected prefix, suffix, equals-ignore-case, anything-but, numeric or exists)"#),
        .init(#"{"$or": "x"}"#, "$or: expected an array of match values, found a string"),
    ]

    @Test(arguments: invalid)
    func refusesWithPathAndReason(_ testCase: Invalid) throws {
        let document = try json(testCase.policy)
        let error = #expect(throws: SNSFilterPolicyError.self) { try SNSFilterPolicy(parsing: document, scope: testCase.scope) }
        #expect(error?.description == testCase.error)
    }

    @Test func refusesTextThatIsNotJSON() {
        do {
            _ = try SNSFilterPolicy(parsing: #"{"a": ["x"]"#)
            Issue.record("parsed")
        } catch {
            #expect(error.path == "")
            #expect(error.description == "invalid JSON at byte 11: unexpected end of input in an object")
        }
    }

    @Test func parsesFromText() throws {
        let policy = try SNSFilterPolicy(parsing: #"{"resource_type": ["person"]}"#)
        #expect(policy.scope == .messageAttributes)
        #expect(!policy.matchesEverything)
        #expect(policy.matches(attributes: ["resource_type": .string("person")]))
        #expect(try SNSFilterPolicy(parsing: "{}", scope: .messageBody).matchesEverything)
    }

    @Test(arguments: SNSFilterPolicy.Scope.allCases)
    func scopeNamesAreAWSs(_ scope: SNSFilterPolicy.Scope) {
        #expect(SNSFilterPolicy.Scope(rawValue: scope.rawValue) == scope)
        #expect(["MessageAttributes", "MessageBody"].contains(scope.rawValue))
    }

    /// Every documented shape parses (AWS's examples), in both scopes where it is flat.
    @Test(arguments: [
        #"{"store": ["example_corp"], "event": [{"anything-but": "order_cancelled"}], "customer_interests": ["rugby", "football", "baseball"], "price_usd": [{"numeric": [">=", 100]}]}"#,
        #"{"price_usd": [{"numeric": [">", 0, "<=", 150]}], "x": [{"numeric": ["=", 301.5]}], "y": [{"numeric": ["<", 0]}]}"#,
        #"{"event": [{"anything-but": {"prefix": "order-"}}], "price": [{"anything-but": [100, 500]}], "c": [{"anything-but": ["rugby", "tennis"]}]}"#,
        #"{"store": [{"exists": true}], "other": [{"exists": false}], "c": [{"prefix": "bas"}, {"suffix": "ball"}, {"equals-ignore-case": "X"}]}"#,
        #"{"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]}"#,
        #"{"a": ["x", 1, true, false, null]}"#,
    ])
    func parsesDocumentedShapes(_ text: String) throws {
        _ = try SNSFilterPolicy(parsing: text, scope: .messageAttributes)
        _ = try SNSFilterPolicy(parsing: text, scope: .messageBody)
    }
}
