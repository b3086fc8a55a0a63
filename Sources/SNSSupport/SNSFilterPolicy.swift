import CRMCore

/// An SNS subscription filter policy, parsed and checked once, evaluated locally.
///
/// Follows Amazon SNS's documented semantics (developer guide, "Amazon SNS subscription filter policies" and its
/// pages on string, numeric, key matching and AND/OR logic):
///
/// - The policy's keys are ANDed; the values in one key's array are ORed. `"$or": [{…}, {…}]` ORs whole sub-policies
///   (at the top level or inside a nested body key); it is only an operator when its array holds at least two objects
///   none of whose keys is an operator name, otherwise `$or` is an ordinary key, as AWS says.
/// - A value is matched exactly when it is a string, number, `true`, `false` or `null`, or by one operator object:
///   `prefix`, `suffix`, `equals-ignore-case`, `anything-but` (a value, a list, or `{"prefix": …}`), `numeric`
///   (`=`, `<`, `<=`, `>`, `>=`, or a range `[">", 0, "<=", 150]`) and `exists`.
/// - String comparisons are exact and case-sensitive on the UTF-8 bytes (no Unicode normalisation), except
///   `equals-ignore-case`.
/// - A key whose message value is an array (a body array, or a `String.Array` attribute) matches when any element
///   matches. This includes `anything-but`: `["rugby", "baseball"]` passes `{"anything-but": ["rugby"]}` because
///   `baseball` does (AWS's examples for both scopes say so).
/// - A key absent from the message matches only `{"exists": false}`. `{"exists": true}` needs a value that is not
///   null and not the empty string; `{"exists": false}` is its exact opposite, except that with message attributes it
///   never matches a message that has no attributes at all (AWS's note on `exists`).
/// - Strings match strings, numbers match numbers, booleans and null match booleans and null: `"100"` does not
///   match the number `100`, and `numeric` does not look at a `String` attribute that happens to hold digits.
/// - Numbers are compared as `Double`s parsed from their literal text, so `3.015e2` equals `301.5`. AWS documents
///   numeric matching only from -10^9 to 10^9 with five decimal places; inside that range a `Double` is exact to
///   more than five places, so the two can disagree only where AWS's own precision runs out.
/// - Attribute types: `String` values are strings, `Number` values numbers, `String.Array` values a JSON array of
///   strings, numbers, booleans and null; `Binary` attributes are ignored, as if absent.
/// - A body-scoped policy evaluates the payload as a JSON object; a payload that is not a JSON object matches no
///   non-empty policy. Nested policy keys follow nested objects, through arrays of objects at any level.
/// - The empty policy `{}` (how AWS removes a filter) matches everything.
///
/// Not supported: `cidr` (refused when parsing), and AWS's limits on policy size (5 keys, 150 combinations), which
/// AWS itself enforces when the policy is set.
public struct SNSFilterPolicy: Sendable, Equatable {
    /// What the policy looks at: AWS's `FilterPolicyScope`. `MessageAttributes` is AWS's default.
    public enum Scope: String, Sendable, Hashable, CaseIterable {
        case messageAttributes = "MessageAttributes"
        case messageBody = "MessageBody"
    }

    public let scope: Scope
    /// The top-level rules, ANDed.
    let rules: [Rule]

    /// True for the empty policy `{}`, which lets every message through.
    public var matchesEverything: Bool { rules.isEmpty }

    /// Parses a policy document. Nested keys are allowed only with scope `.messageBody`, as in AWS.
    public init(parsing document: JSONValue, scope: Scope = .messageAttributes) throws(SNSFilterPolicyError) {
        guard case let .object(members) = document else {
            throw SNSFilterPolicyError(path: "", reason: "a filter policy must be a JSON object, found \(document.typeName)")
        }
        self.scope = scope
        self.rules = try PolicyParser(scope: scope).rules(members, keys: [], path: "", allowEmpty: true)
    }

    /// Parses a policy from its JSON text (as AWS's `FilterPolicy` subscription attribute holds it).
    public init(parsing text: String, scope: Scope = .messageAttributes, parser: JSONParser = JSONParser()) throws(SNSFilterPolicyError) {
        let document: JSONValue
        do {
            document = try parser.parse(text)
        } catch {
            throw SNSFilterPolicyError(path: "", reason: error.description)
        }
        try self.init(parsing: document, scope: scope)
    }
}

// MARK: - The parsed form

extension SNSFilterPolicy {
    /// A scalar from a policy or a message. Strings compare by UTF-8 bytes, numbers as `Double`s.
    enum Scalar: Sendable, Equatable {
        case string(String)
        case number(Double)
        case bool(Bool)
        case null

        func sameValue(as other: Scalar) -> Bool {
            switch (self, other) {
            case let (.string(a), .string(b)): a.utf8.elementsEqual(b.utf8)
            case let (.number(a), .number(b)): a == b
            case let (.bool(a), .bool(b)): a == b
            case (.null, .null): true
            default: false
            }
        }
    }

    /// One bound of a numeric range.
    struct Bound: Sendable, Equatable {
        var value: Double
        var inclusive: Bool
    }

    /// One entry of a key's match array.
    enum Condition: Sendable, Equatable {
        case equals(Scalar)
        case prefix(String)
        case suffix(String)
        /// The expected value, already lower-cased.
        case equalsIgnoreCase(String)
        case anythingBut([Scalar])
        case anythingButPrefix(String)
        case numericEquals(Double)
        case numericRange(lower: Bound?, upper: Bound?)
        case exists(Bool)
    }

    indirect enum Rule: Sendable, Equatable {
        /// The key at `path` (more than one name for nested body keys) must match one of `conditions`.
        case key(path: [String], conditions: [Condition])
        /// `$or`: one of the branches, each a list of rules ANDed, must match.
        case anyOf([[Rule]])
    }
}

// MARK: - Parsing

/// Operator names: an object using one of them as a key is a match expression, never a nested key or an `$or` branch.
private let operatorNames: Set<String> = [
    "prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists", "cidr", "wildcard",
]

private struct PolicyParser {
    let scope: SNSFilterPolicy.Scope
    typealias Condition = SNSFilterPolicy.Condition
    typealias Scalar = SNSFilterPolicy.Scalar

    func rules(
        _ members: [(key: String, value: JSONValue)], keys: [String], path: String, allowEmpty: Bool = false
    ) throws(SNSFilterPolicyError) -> [SNSFilterPolicy.Rule] {
        if members.isEmpty && !allowEmpty {
            throw SNSFilterPolicyError(path: path, reason: "an empty object: expected at least one key")
        }
        var rules: [SNSFilterPolicy.Rule] = []
        for (key, value) in members {
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            if key == "$or", let branches = orBranches(value) {
                var parsed: [[SNSFilterPolicy.Rule]] = []
                for (index, branch) in branches.enumerated() {
                    parsed.append(try self.rules(branch, keys: keys, path: "\(keyPath)[\(index)]"))
                }
                rules.append(.anyOf(parsed))
                continue
            }
            switch value {
            case let .array(items):
                guard !items.isEmpty else {
                    throw SNSFilterPolicyError(path: keyPath, reason: "an empty array matches nothing: expected at least one value")
                }
                var conditions: [Condition] = []
                for (index, item) in items.enumerated() {
                    conditions.append(try condition(item, path: "\(keyPath)[\(index)]"))
                }
                rules.append(.key(path: keys + [key], conditions: conditions))
            case let .object(nested):
                guard scope == .messageBody else {
                    throw SNSFilterPolicyError(
                        path: keyPath, reason: "nested keys need scope MessageBody; message attributes are not nested")
                }
                rules += try self.rules(nested, keys: keys + [key], path: keyPath)
            default:
                let expected = scope == .messageBody ? "an array of match values or a nested object" : "an array of match values"
                throw SNSFilterPolicyError(path: keyPath, reason: "expected \(expected), found \(value.typeName)")
            }
        }
        return rules
    }

    /// The branches when `value` makes `$or` an operator (AWS: an array of at least two objects, none of them with
    /// an operator name as a key); nil when `$or` is then an ordinary key.
    private func orBranches(_ value: JSONValue) -> [[(key: String, value: JSONValue)]]? {
        guard case let .array(items) = value, items.count >= 2 else { return nil }
        var branches: [[(key: String, value: JSONValue)]] = []
        for item in items {
            guard case let .object(members) = item, !members.contains(where: { operatorNames.contains($0.key) }) else { return nil }
            branches.append(members)
        }
        return branches
    }

    private func condition(_ value: JSONValue, path: String) throws(SNSFilterPolicyError) -> Condition {
        switch value {
        case let .string(text): return .equals(.string(text))
        case let .number(literal): return .equals(.number(try number(literal, path: path)))
        case let .bool(flag): return .equals(.bool(flag))
        case .null: return .equals(.null)
        case .array:
            throw SNSFilterPolicyError(path: path, reason: "expected a string, number, boolean, null or operator object, found an array")
        case let .object(members):
            guard members.count == 1, let member = members.first else {
                let names = members.map { "\"\($0.key)\"" }.joined(separator: ", ")
                throw SNSFilterPolicyError(
                    path: path,
                    reason: members.isEmpty
                        ? "an empty operator object: expected one operator such as {\"prefix\": \"abc\"}"
                        : "an operator object takes exactly one operator, found \(members.count): \(names)")
            }
            return try operatorCondition(member.key, member.value, path: path)
        }
    }

    private func operatorCondition(_ name: String, _ argument: JSONValue, path: String) throws(SNSFilterPolicyError) -> Condition {
        let argumentPath = "\(path).\(name)"
        switch name {
        case "prefix": return .prefix(try string(argument, path: argumentPath))
        case "suffix": return .suffix(try string(argument, path: argumentPath))
        case "equals-ignore-case": return .equalsIgnoreCase(try string(argument, path: argumentPath).lowercased())
        case "exists":
            guard case let .bool(flag) = argument else {
                throw SNSFilterPolicyError(path: argumentPath, reason: "expected true or false, found \(argument.typeName)")
            }
            return .exists(flag)
        case "anything-but": return try anythingBut(argument, path: argumentPath)
        case "numeric": return try numeric(argument, path: argumentPath)
        case "cidr":
            throw SNSFilterPolicyError(path: path, reason: "cidr (IP address) matching is not supported")
        default:
            throw SNSFilterPolicyError(
                path: path,
                reason: "unknown operator \"\(name)\" (expected prefix, suffix, equals-ignore-case, anything-but, numeric or exists)")
        }
    }

    private func anythingBut(_ argument: JSONValue, path: String) throws(SNSFilterPolicyError) -> Condition {
        switch argument {
        case let .string(text): return .anythingBut([.string(text)])
        case let .number(literal): return .anythingBut([.number(try number(literal, path: path))])
        case let .array(items):
            guard !items.isEmpty else {
                throw SNSFilterPolicyError(path: path, reason: "an empty array: expected at least one value to exclude")
            }
            var excluded: [Scalar] = []
            for (index, item) in items.enumerated() {
                switch item {
                case let .string(text): excluded.append(.string(text))
                case let .number(literal): excluded.append(.number(try number(literal, path: "\(path)[\(index)]")))
                default:
                    throw SNSFilterPolicyError(path: "\(path)[\(index)]", reason: "expected a string or number, found \(item.typeName)")
                }
            }
            return .anythingBut(excluded)
        case let .object(members):
            guard members.count == 1, let member = members.first else {
                throw SNSFilterPolicyError(path: path, reason: "expected exactly one operator inside anything-but: {\"prefix\": …}")
            }
            guard member.key == "prefix" else {
                throw SNSFilterPolicyError(
                    path: path, reason: "only \"prefix\" is supported inside anything-but, found \"\(member.key)\"")
            }
            return .anythingButPrefix(try string(member.value, path: "\(path).prefix"))
        case .bool, .null:
            throw SNSFilterPolicyError(
                path: path, reason: "expected a string, a number, an array of them or {\"prefix\": …}, found \(argument.typeName)")
        }
    }

    private static let lowerOperators: Set<String> = [">", ">="]
    private static let upperOperators: Set<String> = ["<", "<="]
    private static let allOperators: Set<String> = ["=", "<", "<=", ">", ">="]

    /// `["=", n]`, `[op, n]` for `<`, `<=`, `>`, `>=`, or a range: a lower bound (`>`, `>=`) then an upper one
    /// (`<`, `<=`), the lower below the upper (the shapes AWS accepts).
    private func numeric(_ argument: JSONValue, path: String) throws(SNSFilterPolicyError) -> Condition {
        guard case let .array(items) = argument else {
            throw SNSFilterPolicyError(
                path: path, reason: "expected an array of comparisons such as [\">\", 0, \"<=\", 150], found \(argument.typeName)")
        }
        guard !items.isEmpty else {
            throw SNSFilterPolicyError(path: path, reason: "an empty array: expected comparisons such as [\">\", 0, \"<=\", 150]")
        }
        let first = try comparison(items, 0, allowed: Self.allOperators, path: path)
        let firstValue = try operand(items, 1, after: first, path: path)
        if items.count == 2 {
            switch first {
            case "=": return .numericEquals(firstValue)
            case ">": return .numericRange(lower: .init(value: firstValue, inclusive: false), upper: nil)
            case ">=": return .numericRange(lower: .init(value: firstValue, inclusive: true), upper: nil)
            case "<": return .numericRange(lower: nil, upper: .init(value: firstValue, inclusive: false))
            default: return .numericRange(lower: nil, upper: .init(value: firstValue, inclusive: true))
            }
        }
        guard Self.lowerOperators.contains(first) else {
            throw SNSFilterPolicyError(
                path: path, reason: "\"\(first)\" takes one number; only a range starting with \">\" or \">=\" has a second comparison")
        }
        let second = try comparison(items, 2, allowed: Self.upperOperators, path: path)
        let secondValue = try operand(items, 3, after: second, path: path)
        guard items.count == 4 else {
            throw SNSFilterPolicyError(path: path, reason: "a range has at most two comparisons, found \(items.count) elements")
        }
        guard firstValue < secondValue else {
            throw SNSFilterPolicyError(path: path, reason: "the range's lower bound must be less than its upper bound")
        }
        return .numericRange(
            lower: .init(value: firstValue, inclusive: first == ">="), upper: .init(value: secondValue, inclusive: second == "<="))
    }

    private func comparison(_ items: [JSONValue], _ index: Int, allowed: Set<String>, path: String) throws(SNSFilterPolicyError) -> String {
        let expected = allowed == Self.upperOperators ? "\"<\" or \"<=\" to close the range" : "one of =, <, <=, >, >="
        guard case let .string(name) = items[index] else {
            throw SNSFilterPolicyError(path: "\(path)[\(index)]", reason: "expected \(expected), found \(items[index].typeName)")
        }
        guard allowed.contains(name) else {
            throw SNSFilterPolicyError(path: "\(path)[\(index)]", reason: "expected \(expected), found \"\(name)\"")
        }
        return name
    }

    private func operand(_ items: [JSONValue], _ index: Int, after name: String, path: String) throws(SNSFilterPolicyError) -> Double {
        guard index < items.count else {
            throw SNSFilterPolicyError(path: path, reason: "expected a number after \"\(name)\"")
        }
        guard case let .number(literal) = items[index] else {
            throw SNSFilterPolicyError(path: "\(path)[\(index)]", reason: "expected a number after \"\(name)\", found \(items[index].typeName)")
        }
        return try number(literal, path: "\(path)[\(index)]")
    }

    private func string(_ value: JSONValue, path: String) throws(SNSFilterPolicyError) -> String {
        guard case let .string(text) = value else {
            throw SNSFilterPolicyError(path: path, reason: "expected a string, found \(value.typeName)")
        }
        return text
    }

    private func number(_ literal: String, path: String) throws(SNSFilterPolicyError) -> Double {
        guard let value = Double(literal), value.isFinite else {
            throw SNSFilterPolicyError(path: path, reason: "the number \(literal) is out of range")
        }
        return value
    }
}
