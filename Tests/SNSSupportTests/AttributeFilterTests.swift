import SNSSupport
import Testing

/// Scope `MessageAttributes`. Examples are AWS's own where it gives them (string-value-matching,
/// numeric-value-matching, attribute-key-matching, and-or-logic, example-filter-policies pages).
@Suite("SNS filter policy: message attributes")
struct AttributeFilterTests {
    static let cases: [MatchCase] = [
        // Exact strings: OR within the key's array, case-sensitive, byte-exact.
        .init("exact string", #"{"resource_type": ["person", "event"]}"#, #"{"resource_type": {"Type": "String", "Value": "event"}}"#, true),
        .init("exact string, other value", #"{"resource_type": ["person", "event"]}"#, #"{"resource_type": {"Type": "String", "Value": "lead"}}"#, false),
        .init("exact string is case-sensitive", #"{"resource_type": ["Person"]}"#, #"{"resource_type": {"Type": "String", "Value": "person"}}"#, false),
        .init("exact string: no Unicode normalisation", #"{"name": ["\u00e9"]}"#, #"{"name": {"Type": "String", "Value": "e\u0301"}}"#, false),
        .init("exact string, same bytes", #"{"name": ["\u00e9"]}"#, #"{"name": {"Type": "String", "Value": "\u00e9"}}"#, true),
        // Exact numbers: compared as numbers; a number never matches a string.
        .init("exact number, other notation", #"{"price": [301.5]}"#, #"{"price": {"Type": "Number", "Value": "3.015e2"}}"#, true),
        .init("exact number, other value", #"{"price": [301.5]}"#, #"{"price": {"Type": "Number", "Value": "301.50001"}}"#, false),
        .init("policy number vs String attribute", #"{"price": [100]}"#, #"{"price": {"Type": "String", "Value": "100"}}"#, false),
        .init("policy string vs Number attribute", #"{"price": ["100"]}"#, #"{"price": {"Type": "Number", "Value": "100"}}"#, false),
        .init("custom Number type label", #"{"price": [100]}"#, #"{"price": {"Type": "Number.int", "Value": "100"}}"#, true),
        // prefix, suffix, equals-ignore-case
        .init("prefix", #"{"sport": [{"prefix": "bas"}]}"#, #"{"sport": {"Type": "String", "Value": "basketball"}}"#, true),
        .init("prefix, no match", #"{"sport": [{"prefix": "bas"}]}"#, #"{"sport": {"Type": "String", "Value": "rugby"}}"#, false),
        .init("suffix", #"{"sport": [{"suffix": "ball"}]}"#, #"{"sport": {"Type": "String", "Value": "baseball"}}"#, true),
        .init("suffix, no match", #"{"sport": [{"suffix": "ball"}]}"#, #"{"sport": {"Type": "String", "Value": "balloon"}}"#, false),
        .init("equals-ignore-case", #"{"type": [{"equals-ignore-case": "PERSON"}]}"#, #"{"type": {"Type": "String", "Value": "Person"}}"#, true),
        .init("equals-ignore-case, no match", #"{"type": [{"equals-ignore-case": "PERSON"}]}"#, #"{"type": {"Type": "String", "Value": "persons"}}"#, false),
        .init("prefix ignores numbers", #"{"code": [{"prefix": "1"}]}"#, #"{"code": {"Type": "Number", "Value": "12"}}"#, false),
        // anything-but: a value, a list, numbers, a prefix.
        .init("anything-but value", #"{"event": [{"anything-but": "order_cancelled"}]}"#, #"{"event": {"Type": "String", "Value": "order_placed"}}"#, true),
        .init("anything-but value, excluded", #"{"event": [{"anything-but": "order_cancelled"}]}"#, #"{"event": {"Type": "String", "Value": "order_cancelled"}}"#, false),
        .init("anything-but list", #"{"c": [{"anything-but": ["rugby", "tennis"]}]}"#, #"{"c": {"Type": "String", "Value": "football"}}"#, true),
        .init("anything-but list, excluded", #"{"c": [{"anything-but": ["rugby", "tennis"]}]}"#, #"{"c": {"Type": "String", "Value": "tennis"}}"#, false),
        .init("anything-but numbers", #"{"price": [{"anything-but": [100, 500]}]}"#, #"{"price": {"Type": "Number", "Value": "100.1"}}"#, true),
        .init("anything-but numbers, excluded (1e2 is 100)", #"{"price": [{"anything-but": [100, 500]}]}"#, #"{"price": {"Type": "Number", "Value": "1e2"}}"#, false),
        .init("anything-but prefix", #"{"event": [{"anything-but": {"prefix": "order-"}}]}"#, #"{"event": {"Type": "String", "Value": "order_number"}}"#, true),
        .init("anything-but prefix, other", #"{"event": [{"anything-but": {"prefix": "order-"}}]}"#, #"{"event": {"Type": "String", "Value": "data-entry"}}"#, true),
        .init("anything-but prefix, excluded", #"{"event": [{"anything-but": {"prefix": "order-"}}]}"#, #"{"event": {"Type": "String", "Value": "order-cancelled"}}"#, false),
        .init("anything-but needs the key", #"{"event": [{"anything-but": "x"}]}"#, #"{"other": {"Type": "String", "Value": "y"}}"#, false),
        .init("anything-but or exists false, absent", #"{"event": [{"anything-but": "x"}, {"exists": false}]}"#, #"{"other": {"Type": "String", "Value": "y"}}"#, true),
        .init("anything-but or exists false, excluded", #"{"event": [{"anything-but": "x"}, {"exists": false}]}"#, #"{"event": {"Type": "String", "Value": "x"}}"#, false),
        // numeric
        .init("numeric =", #"{"p": [{"numeric": ["=", 301.5]}]}"#, #"{"p": {"Type": "Number", "Value": "3.015e2"}}"#, true),
        .init("numeric =, other", #"{"p": [{"numeric": ["=", 301.5]}]}"#, #"{"p": {"Type": "Number", "Value": "301.6"}}"#, false),
        .init("numeric <", #"{"p": [{"numeric": ["<", 0]}]}"#, #"{"p": {"Type": "Number", "Value": "-0.5"}}"#, true),
        .init("numeric <, bound", #"{"p": [{"numeric": ["<", 0]}]}"#, #"{"p": {"Type": "Number", "Value": "0"}}"#, false),
        .init("numeric <=, bound", #"{"p": [{"numeric": ["<=", 0]}]}"#, #"{"p": {"Type": "Number", "Value": "0"}}"#, true),
        .init("numeric <=, above", #"{"p": [{"numeric": ["<=", 0]}]}"#, #"{"p": {"Type": "Number", "Value": "0.00001"}}"#, false),
        .init("numeric >", #"{"p": [{"numeric": [">", 100]}]}"#, #"{"p": {"Type": "Number", "Value": "100.5"}}"#, true),
        .init("numeric >, bound", #"{"p": [{"numeric": [">", 100]}]}"#, #"{"p": {"Type": "Number", "Value": "100"}}"#, false),
        .init("numeric >=, bound", #"{"p": [{"numeric": [">=", 100]}]}"#, #"{"p": {"Type": "Number", "Value": "100"}}"#, true),
        .init("numeric >=, below", #"{"p": [{"numeric": [">=", 100]}]}"#, #"{"p": {"Type": "Number", "Value": "99.99999"}}"#, false),
        .init("numeric range, top included", #"{"p": [{"numeric": [">", 0, "<=", 150]}]}"#, #"{"p": {"Type": "Number", "Value": "150"}}"#, true),
        .init("numeric range, bottom excluded", #"{"p": [{"numeric": [">", 0, "<=", 150]}]}"#, #"{"p": {"Type": "Number", "Value": "0"}}"#, false),
        .init("numeric range, above", #"{"p": [{"numeric": [">", 0, "<=", 150]}]}"#, #"{"p": {"Type": "Number", "Value": "150.1"}}"#, false),
        .init("numeric range, bottom included", #"{"p": [{"numeric": [">=", 0, "<", 150]}]}"#, #"{"p": {"Type": "Number", "Value": "0"}}"#, true),
        .init("numeric range, top excluded", #"{"p": [{"numeric": [">=", 0, "<", 150]}]}"#, #"{"p": {"Type": "Number", "Value": "150"}}"#, false),
        .init("numeric ignores String attributes", #"{"p": [{"numeric": [">", 10]}]}"#, #"{"p": {"Type": "String", "Value": "50"}}"#, false),
        // exists
        .init("exists true", #"{"store": [{"exists": true}]}"#, #"{"store": {"Type": "String", "Value": "fans"}, "x": {"Type": "String", "Value": "y"}}"#, true),
        .init("exists true, absent", #"{"store": [{"exists": true}]}"#, #"{"x": {"Type": "String", "Value": "y"}}"#, false),
        .init("exists false, absent", #"{"store": [{"exists": false}]}"#, #"{"x": {"Type": "String", "Value": "y"}}"#, true),
        .init("exists false, present", #"{"store": [{"exists": false}]}"#, #"{"store": {"Type": "String", "Value": "fans"}}"#, false),
        .init("exists false, no attributes at all", #"{"store": [{"exists": false}]}"#, #"{}"#, false),
        .init("absent key, exact value", #"{"encrypted": [false]}"#, #"{"store": {"Type": "String", "Value": "example_corp"}}"#, false),
        // Binary attributes are ignored.
        .init("Binary is ignored: exists true", #"{"blob": [{"exists": true}]}"#, #"{"blob": {"Type": "Binary", "Value": "AAE="}}"#, false),
        .init("Binary is ignored: exists false", #"{"blob": [{"exists": false}]}"#, #"{"blob": {"Type": "Binary", "Value": "AAE="}, "x": {"Type": "String", "Value": "y"}}"#, true),
        .init("only Binary counts as no attributes", #"{"store": [{"exists": false}]}"#, #"{"blob": {"Type": "Binary", "Value": "AAE="}}"#, false),
        .init("Binary value is not a string", #"{"blob": ["AAE="]}"#, #"{"blob": {"Type": "Binary", "Value": "AAE="}}"#, false),
        // String.Array: any element.
        .init("String.Array, one element matches", #"{"c": ["rugby", "tennis"]}"#, #"{"c": {"Type": "String.Array", "Value": "[\"soccer\", \"rugby\", \"hockey\"]"}}"#, true),
        .init("String.Array, none matches", #"{"c": ["rugby", "tennis"]}"#, #"{"c": {"Type": "String.Array", "Value": "[\"baseball\"]"}}"#, false),
        .init("String.Array, prefix", #"{"c": [{"prefix": "hock"}]}"#, #"{"c": {"Type": "String.Array", "Value": "[\"soccer\", \"hockey\"]"}}"#, true),
        .init("String.Array, anything-but with one element outside", #"{"c": [{"anything-but": ["rugby", "tennis"]}]}"#, #"{"c": {"Type": "String.Array", "Value": "[\"rugby\", \"baseball\"]"}}"#, true),
        .init("String.Array, anything-but with all excluded", #"{"c": [{"anything-but": ["rugby", "tennis"]}]}"#, #"{"c": {"Type": "String.Array", "Value": "[\"rugby\", \"tennis\"]"}}"#, false),
        .init("String.Array, numbers", #"{"n": [{"numeric": [">", 10]}]}"#, #"{"n": {"Type": "String.Array", "Value": "[5, 20]"}}"#, true),
        .init("String.Array, booleans", #"{"b": [true]}"#, #"{"b": {"Type": "String.Array", "Value": "[false, true]"}}"#, true),
        .init("String.Array, empty", #"{"c": [{"exists": true}]}"#, #"{"c": {"Type": "String.Array", "Value": "[]"}}"#, false),
        .init("String.Array, not JSON", #"{"c": ["not json"]}"#, #"{"c": {"Type": "String.Array", "Value": "not json"}}"#, false),
        // AND between keys
        .init("AND, both", #"{"a": ["x"], "b": [{"numeric": [">", 100]}]}"#, #"{"a": {"Type": "String", "Value": "x"}, "b": {"Type": "Number", "Value": "101"}}"#, true),
        .init("AND, one fails", #"{"a": ["x"], "b": [{"numeric": [">", 100]}]}"#, #"{"a": {"Type": "String", "Value": "x"}, "b": {"Type": "Number", "Value": "99"}}"#, false),
        .init("AND, one absent", #"{"a": ["x"], "b": ["y"]}"#, #"{"a": {"Type": "String", "Value": "x"}}"#, false),
        // $or
        .init("$or, first branch", Self.orPolicy, #"{"source": {"Type": "String", "Value": "aws.cloudwatch"}, "metricName": {"Type": "String", "Value": "CPUUtilization"}}"#, true),
        .init("$or, second branch", Self.orPolicy, #"{"source": {"Type": "String", "Value": "aws.cloudwatch"}, "namespace": {"Type": "String", "Value": "AWS/EC2"}}"#, true),
        .init("$or, no branch", Self.orPolicy, #"{"source": {"Type": "String", "Value": "aws.cloudwatch"}, "namespace": {"Type": "String", "Value": "AWS/ES"}}"#, false),
        .init("$or, branch but not the ANDed key", Self.orPolicy, #"{"metricName": {"Type": "String", "Value": "CPUUtilization"}}"#, false),
        .init("nested $or, inner branch", Self.nestedOrPolicy, #"{"b": {"Type": "String", "Value": "2"}, "d": {"Type": "String", "Value": "4"}}"#, true),
        .init("nested $or, outer branch", Self.nestedOrPolicy, #"{"a": {"Type": "String", "Value": "1"}}"#, true),
        .init("nested $or, inner $or fails", Self.nestedOrPolicy, #"{"b": {"Type": "String", "Value": "2"}}"#, false),
        .init("$or that is only a key name", #"{"$or": ["a", "b"]}"#, #"{"$or": {"Type": "String", "Value": "b"}}"#, true),
        // The empty policy lets everything through.
        .init("empty policy", #"{}"#, #"{}"#, true),
    ]

    static let orPolicy = #"{"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]}"#
    static let nestedOrPolicy = #"{"$or": [{"a": ["1"]}, {"b": ["2"], "$or": [{"c": ["3"]}, {"d": ["4"]}]}]}"#

    @Test(arguments: cases)
    func matchesLikeSNS(_ testCase: MatchCase) throws {
        let policy = try SNSFilterPolicy(parsing: json(testCase.policy), scope: .messageAttributes)
        #expect(policy.matches(attributes: try attributes(testCase.message)) == testCase.matches)
    }

    /// AWS's example message and its two example policies ("Amazon SNS example filter policies").
    @Test func awsExamplePolicies() throws {
        let message = try attributes(
            #"""
            {"customer_interests": {"Type": "String.Array", "Value": "[\"soccer\", \"rugby\", \"hockey\"]"},
             "store": {"Type": "String", "Value": "example_corp"},
             "event": {"Type": "String", "Value": "order_placed"},
             "price_usd": {"Type": "Number", "Value": "210.75"}}
            """#)
        let accepts = try SNSFilterPolicy(
            parsing: json(
                #"""
                {"store": ["example_corp"], "event": [{"anything-but": "order_cancelled"}],
                 "customer_interests": ["rugby", "football", "baseball"], "price_usd": [{"numeric": [">=", 100]}]}
                """#))
        let rejects = try SNSFilterPolicy(
            parsing: json(
                #"""
                {"store": ["example_corp"], "event": ["order_cancelled"], "encrypted": [false],
                 "customer_interests": ["basketball", "baseball"]}
                """#))
        #expect(accepts.matches(attributes: message))
        #expect(!rejects.matches(attributes: message))
    }

    /// A `Number` attribute is read as a decimal number; what `Double(_:)` alone would also accept is not one.
    @Test(arguments: [
        ("3.015e2", true), ("-0.5", true), ("+5", true), (".5", true), ("5.", true), ("1E-3", true),
        ("0x10", false), ("inf", false), ("nan", false), ("1e", false), ("", false), (" 5", false), ("1e400", false), ("5 ", false),
    ])
    func numberAttributeText(_ text: String, isNumber: Bool) throws {
        let anyNumber = try SNSFilterPolicy(parsing: json(#"{"n": [{"numeric": [">", -1000000000000]}]}"#))
        #expect(anyNumber.matches(attributes: ["n": .number(text)]) == isNumber)
    }

    /// Nested keys never find a (flat) attribute, even when a body-scoped policy is evaluated against attributes.
    @Test func nestedKeysFindNoAttribute() throws {
        let policy = try SNSFilterPolicy(parsing: json(#"{"data": {"checked_in": [{"exists": false}]}}"#), scope: .messageBody)
        #expect(policy.matches(attributes: ["data": .string("x")]))
        let present = try SNSFilterPolicy(parsing: json(#"{"data": {"checked_in": ["x"]}}"#), scope: .messageBody)
        #expect(!present.matches(attributes: ["data.checked_in": .string("x"), "data": .string("x")]))
    }
}
