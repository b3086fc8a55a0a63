/// Why a message could not become an event: the field and the reason, e.g.
/// `DEPOSIT_APPROVED.amount: expected a number, got "abc"`.
public struct EventError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        fileprivate enum Value: String { case invalidJSON, notAnObject, unknownType, missingField, invalidField, unresolvable }
        fileprivate let value: Value

        /// The body is not JSON.
        public static let invalidJSON = Code(value: .invalidJSON)
        /// The body is JSON but not an object.
        public static let notAnObject = Code(value: .notAnObject)
        /// `type` names no event this format knows.
        public static let unknownType = Code(value: .unknownType)
        /// A required field is absent.
        public static let missingField = Code(value: .missingField)
        /// A field has the wrong type or an unacceptable value.
        public static let invalidField = Code(value: .invalidField)
        /// The event is valid, but the configured actions need something it does not carry.
        public static let unresolvable = Code(value: .unresolvable)

        public var description: String { value.rawValue }
    }

    public var code: Code
    /// Dotted path of the field, starting with the event type when it is known; empty for the whole message.
    public var field: String
    public var reason: String

    public init(_ code: Code, field: String, reason: String) {
        self.code = code
        self.field = field
        self.reason = reason
    }

    public var description: String { field.isEmpty ? reason : "\(field): \(reason)" }
}
