/// A path into a JSON document, as converters write it: `$.user.address.country`, `$.items[0].sku`,
/// `$["key with.dots"]`. Only member and index steps: no wildcards, no filters.
public struct JSONPath: Sendable, Hashable, CustomStringConvertible {
    public enum Step: Sendable, Hashable {
        case member(String)
        case index(Int)
    }

    public let steps: [Step]
    public let description: String

    /// Parses a path; the error says what is wrong and where.
    public init(_ text: String) throws(JSONPathError) {
        var steps: [Step] = []
        let characters = Array(text)
        guard characters.first == "$" else { throw JSONPathError(path: text, reason: "must start with $") }
        var index = 1
        func fail(_ reason: String) -> JSONPathError { JSONPathError(path: text, reason: "\(reason) at character \(index + 1)") }
        while index < characters.count {
            switch characters[index] {
            case ".":
                index += 1
                let start = index
                while index < characters.count, characters[index] != ".", characters[index] != "[" { index += 1 }
                guard index > start else { throw fail("expected a member name") }
                steps.append(.member(String(characters[start..<index])))
            case "[":
                index += 1
                if index < characters.count, characters[index] == "\"" || characters[index] == "'" {
                    let quote = characters[index]
                    index += 1
                    let start = index
                    while index < characters.count, characters[index] != quote { index += 1 }
                    guard index + 1 < characters.count, characters[index + 1] == "]" else { throw fail("unclosed quoted member") }
                    steps.append(.member(String(characters[start..<index])))
                    index += 2
                } else {
                    let start = index
                    while index < characters.count, characters[index].isASCII, characters[index].isNumber { index += 1 }
                    guard index > start, index < characters.count, characters[index] == "]", let position = Int(String(characters[start..<index])) else {
                        throw fail("expected an index such as [0] or a quoted member such as [\"a b\"]")
                    }
                    steps.append(.index(position))
                    index += 1
                }
            default:
                throw fail("expected . or [")
            }
        }
        self.steps = steps
        self.description = text
    }

    /// The value at this path, or nil when a step finds nothing.
    public func value(in document: JSONValue) -> JSONValue? {
        var current = document
        for step in steps {
            switch (step, current) {
            case let (.member(name), .object):
                guard let next = current[name] else { return nil }
                current = next
            case let (.index(position), .array(elements)):
                guard position < elements.count else { return nil }
                current = elements[position]
            default:
                return nil
            }
        }
        return current
    }
}

public struct JSONPathError: Error, Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "invalid JSON path \"\(path)\": \(reason)" }
}
