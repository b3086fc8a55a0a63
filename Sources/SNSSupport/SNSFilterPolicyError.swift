/// Why a filter policy was refused: where in the policy (`resource_type[0]`, `data.checked_in`, `$or[1].price[0].numeric`;
/// empty for the document itself) and what is wrong there.
public struct SNSFilterPolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    /// `path: reason`, or the reason alone for the document itself.
    public var description: String { path.isEmpty ? reason : "\(path): \(reason)" }
}
