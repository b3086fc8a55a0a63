/// A scalar property of an event or an attribute of a contact: string, number (exact text), boolean or null.
public enum PropertyValue: Sendable, Hashable {
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    public var jsonValue: JSONValue {
        switch self {
        case let .string(text): return .string(text)
        case let .number(text): return .number(text)
        case let .bool(flag): return .bool(flag)
        case .null: return .null
        }
    }

    /// The value as a string, for lookups such as "find by email".
    public var stringValue: String? {
        switch self {
        case let .string(text): return text
        case let .number(text): return text
        case let .bool(flag): return flag ? "true" : "false"
        case .null: return nil
        }
    }
}

/// A property's name and value, in the order the event carried them.
public struct Property: Sendable, Hashable {
    public var key: String
    public var value: PropertyValue

    public init(key: String, value: PropertyValue) {
        self.key = key
        self.value = value
    }
}

/// Flattens nested JSON to dotted keys: `{"a":{"b":1},"c":[{"d":2}]}` becomes `a.b = 1`, `c.0.d = 2`.
/// An empty object or array leaves no key.
public enum JSONFlattener {
    public static func flatten(_ value: JSONValue, prefix: String = "") -> [Property] {
        var out: [Property] = []
        flatten(value, prefix: prefix, into: &out)
        return out
    }

    public static func flatten(_ value: JSONValue, prefix: String, into out: inout [Property]) {
        func join(_ key: String) -> String { prefix.isEmpty ? key : prefix + "." + key }
        switch value {
        case let .object(members):
            for member in members { flatten(member.value, prefix: join(member.key), into: &out) }
        case let .array(elements):
            for (offset, element) in elements.enumerated() { flatten(element, prefix: join(String(offset)), into: &out) }
        case let .string(text): out.append(Property(key: prefix, value: .string(text)))
        case let .number(text): out.append(Property(key: prefix, value: .number(text)))
        case let .bool(flag): out.append(Property(key: prefix, value: .bool(flag)))
        case .null: out.append(Property(key: prefix, value: .null))
        }
    }
}
