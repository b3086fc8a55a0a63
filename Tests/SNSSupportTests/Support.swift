import CRMCore
import SNSSupport
import Testing

/// Parses JSON test input, failing the test (not crashing) on a typo.
func json(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
    try #require(try? JSONParser().parse(text), "test JSON does not parse: \(text)", sourceLocation: sourceLocation)
}

/// Message attributes written as SNS writes them in an envelope: `{"name": {"Type": "String", "Value": "x"}}`.
func attributes(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: SNSMessageAttribute] {
    guard case let .object(members) = try json(text, sourceLocation: sourceLocation) else {
        Issue.record("attributes must be an object: \(text)", sourceLocation: sourceLocation)
        return [:]
    }
    var result: [String: SNSMessageAttribute] = [:]
    for (name, value) in members {
        guard case let .string(type)? = value["Type"], case let .string(text)? = value["Value"] else {
            Issue.record("attribute \(name) needs string Type and Value", sourceLocation: sourceLocation)
            continue
        }
        result[name] = SNSMessageAttribute(type: type, value: text)
    }
    return result
}

/// One matching case: a policy, a message (attributes or body, as JSON text), and whether AWS delivers it.
struct MatchCase: Sendable, CustomTestStringConvertible {
    var policy: String
    var message: String
    var matches: Bool
    var note: String

    init(_ note: String, _ policy: String, _ message: String, _ matches: Bool) {
        self.note = note
        self.policy = policy
        self.message = message
        self.matches = matches
    }

    var testDescription: String { "\(note): \(policy) vs \(message) → \(matches)" }
}
