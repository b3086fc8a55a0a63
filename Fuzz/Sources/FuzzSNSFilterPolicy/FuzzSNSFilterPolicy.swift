import CRMCore
import FuzzSupport
import SNSSupport

/// Feeds arbitrary bytes to SNS filter policies: the first line is a policy (`SNSFilterPolicy(parsing:)`, both
/// scopes), the rest a message it is evaluated against (`matches(body:)` on the rest as JSON, and
/// `matches(attributes:)` on the members of that JSON object as message attributes: strings as `String`, numbers
/// as `Number`, arrays as `String.Array`, objects as `{"Type","Value"}` attributes).
let parser = JSONParser(limits: InputLimits().json)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = FuzzInput(start, count)
    let parts = input.parts(separatedBy: UInt8(ascii: "\n"), maxParts: 2)
    let policyText = text(parts[0])
    let message = parts.count == 2 ? try? parser.parse(Array(parts[1])) : nil
    for scope in SNSFilterPolicy.Scope.allCases {
        guard let policy = try? SNSFilterPolicy(parsing: policyText, scope: scope, parser: parser) else { continue }
        _ = policy.matchesEverything
        guard let message else { continue }
        _ = policy.matches(body: message)
        _ = policy.matches(attributes: attributes(message))
    }
    return 0
}

/// The members of a JSON object read as SNS message attributes.
func attributes(_ message: JSONValue) -> [String: SNSMessageAttribute] {
    guard case let .object(members) = message else { return [:] }
    var attributes: [String: SNSMessageAttribute] = [:]
    for member in members {
        switch member.value {
        case let .string(text): attributes[member.key] = .string(text)
        case let .number(text): attributes[member.key] = .number(text)
        case .array: attributes[member.key] = .stringArray(JSONWriter.string(member.value))
        case let .object(fields):
            let type = fields.first { $0.key == "Type" }.flatMap { if case let .string(text) = $0.value { text } else { nil } }
            let value = fields.first { $0.key == "Value" }.flatMap { if case let .string(text) = $0.value { text } else { nil } }
            attributes[member.key] = SNSMessageAttribute(type: type ?? "String", value: value ?? "")
        case let .bool(flag): attributes[member.key] = .string(flag ? "true" : "false")
        case .null: continue
        }
    }
    return attributes
}
