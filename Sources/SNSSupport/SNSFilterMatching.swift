import CRMCore

extension SNSFilterPolicy {
    /// Whether a message with these attributes passes the policy (AWS's scope `MessageAttributes`).
    ///
    /// Attribute names are flat: a nested policy key never finds an attribute. `Binary` attributes are ignored.
    public func matches(attributes: [String: SNSMessageAttribute]) -> Bool {
        if rules.isEmpty { return true }
        var values: [String: [Scalar]] = [:]
        for (name, attribute) in attributes {
            if let scalars = Self.scalars(of: attribute) { values[name] = scalars }
        }
        // AWS: "exists": false only matches if at least one attribute is present.
        return Self.evaluate(rules, existsFalseAllowed: !values.isEmpty) { path in
            path.count == 1 ? values[path[0]] ?? [] : []
        }
    }

    /// Whether a message with this payload passes the policy (AWS's scope `MessageBody`). A payload that is not a
    /// JSON object passes only the empty policy.
    public func matches(body: JSONValue) -> Bool {
        if rules.isEmpty { return true }
        guard case .object = body else { return false }
        return Self.evaluate(rules, existsFalseAllowed: true) { path in
            var leaves: [Scalar] = []
            Self.collectLeaves(body, path: path[...], into: &leaves)
            return leaves
        }
    }

    /// Whether a notification passes the policy, looking at what the policy's scope names: the attributes, or the
    /// `Message` parsed as JSON (a message that is not JSON passes only the empty policy).
    public func matches(envelope: SNSEnvelope, parser: JSONParser = JSONParser()) -> Bool {
        if rules.isEmpty { return true }
        switch scope {
        case .messageAttributes:
            return matches(attributes: envelope.messageAttributes)
        case .messageBody:
            guard let body = try? envelope.payload(parser: parser) else { return false }
            return matches(body: body)
        }
    }

    // MARK: - Evaluation

    private static func evaluate(_ rules: [Rule], existsFalseAllowed: Bool, lookup: ([String]) -> [Scalar]) -> Bool {
        rules.allSatisfy { rule in
            switch rule {
            case let .key(path, conditions):
                let values = lookup(path)
                return conditions.contains { test($0, values, existsFalseAllowed: existsFalseAllowed) }
            case let .anyOf(branches):
                return branches.contains { evaluate($0, existsFalseAllowed: existsFalseAllowed, lookup: lookup) }
            }
        }
    }

    /// A value that makes a key exist for AWS: not null, not empty.
    private static func isPresent(_ value: Scalar) -> Bool {
        switch value {
        case .null: false
        case let .string(text): !text.isEmpty
        case .number, .bool: true
        }
    }

    private static func test(_ condition: Condition, _ values: [Scalar], existsFalseAllowed: Bool) -> Bool {
        switch condition {
        case .exists(true):
            return values.contains(where: isPresent)
        case .exists(false):
            return existsFalseAllowed && !values.contains(where: isPresent)
        case let .equals(expected):
            return values.contains { $0.sameValue(as: expected) }
        case let .prefix(prefix):
            return values.contains { string($0).map { $0.utf8.starts(with: prefix.utf8) } ?? false }
        case let .suffix(suffix):
            return values.contains { string($0).map { hasSuffix($0, suffix) } ?? false }
        case let .equalsIgnoreCase(expected):
            return values.contains { string($0).map { $0.lowercased().utf8.elementsEqual(expected.utf8) } ?? false }
        case let .anythingBut(excluded):
            // Any one value outside the list is enough: AWS's examples let ["rugby", "baseball"] through
            // {"anything-but": ["rugby", "tennis"]}.
            return values.contains { value in value != .null && !excluded.contains { $0.sameValue(as: value) } }
        case let .anythingButPrefix(prefix):
            return values.contains { string($0).map { !$0.utf8.starts(with: prefix.utf8) } ?? false }
        case let .numericEquals(expected):
            return values.contains { number($0) == expected }
        case let .numericRange(lower, upper):
            return values.contains { value in
                guard let number = number(value) else { return false }
                if let lower, lower.inclusive ? number < lower.value : number <= lower.value { return false }
                if let upper, upper.inclusive ? number > upper.value : number >= upper.value { return false }
                return true
            }
        }
    }

    private static func string(_ value: Scalar) -> String? {
        if case let .string(text) = value { text } else { nil }
    }

    private static func number(_ value: Scalar) -> Double? {
        if case let .number(number) = value { number } else { nil }
    }

    private static func hasSuffix(_ text: String, _ suffix: String) -> Bool {
        let count = suffix.utf8.count
        return text.utf8.count >= count && text.utf8.suffix(count).elementsEqual(suffix.utf8)
    }

    // MARK: - Message values

    /// The comparable values of an attribute, nil for one SNS does not compare (`Binary`, or an unknown type).
    static func scalars(of attribute: SNSMessageAttribute) -> [Scalar]? {
        if attribute.type == "String.Array" {
            // A JSON array of strings, numbers, booleans and null; a value that is not one gives nothing to match.
            guard case let .array(items)? = try? JSONParser().parse(attribute.value) else { return [] }
            var leaves: [Scalar] = []
            for item in items { collectLeaves(item, path: [], into: &leaves) }
            return leaves
        }
        // Custom type labels ("Number.float") keep the base type's meaning.
        let base = attribute.type.split(separator: ".", maxSplits: 1).first.map(String.init) ?? attribute.type
        switch base {
        case "String": return [.string(attribute.value)]
        case "Number": return decimalNumber(attribute.value).map { [.number($0)] } ?? []
        default: return nil
        }
    }

    /// The values at `path` below `value`: nested keys follow objects, arrays (at any level) give each element.
    /// An object where the path ends is an intermediate node, not a value.
    private static func collectLeaves(_ value: JSONValue, path: ArraySlice<String>, into leaves: inout [Scalar]) {
        switch value {
        case let .array(items):
            for item in items { collectLeaves(item, path: path, into: &leaves) }
        case let .object(members):
            guard let name = path.first else { return }
            for member in members where member.key == name {
                collectLeaves(member.value, path: path.dropFirst(), into: &leaves)
            }
        case let .string(text):
            if path.isEmpty { leaves.append(.string(text)) }
        case let .number(literal):
            if path.isEmpty, let number = Double(literal), number.isFinite { leaves.append(.number(number)) }
        case let .bool(flag):
            if path.isEmpty { leaves.append(.bool(flag)) }
        case .null:
            if path.isEmpty { leaves.append(.null) }
        }
    }

    /// A `Number` attribute's text as a number: an optionally signed decimal with optional fraction and exponent.
    /// Stricter than `Double(_:)`, which also reads `0x10`, `inf` and `nan`.
    static func decimalNumber(_ text: String) -> Double? {
        var bytes = text.utf8[...]
        if let sign = bytes.first, sign == UInt8(ascii: "-") || sign == UInt8(ascii: "+") { bytes = bytes.dropFirst() }
        func digits() -> Int {
            let count = bytes.prefix(while: { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }).count
            bytes = bytes.dropFirst(count)
            return count
        }
        var mantissa = digits()
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            mantissa += digits()
        }
        guard mantissa > 0 else { return nil }
        if let e = bytes.first, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            if let sign = bytes.first, sign == UInt8(ascii: "-") || sign == UInt8(ascii: "+") { bytes = bytes.dropFirst() }
            guard digits() > 0 else { return nil }
        }
        guard bytes.isEmpty, let number = Double(text), number.isFinite else { return nil }
        return number
    }
}
