/// Why a request could not be signed. A struct around a private code, so new cases don't break callers' switches.
public struct AWSSignerError: Error, Hashable, CustomStringConvertible {
    private enum Code: Hashable {
        case missingHost
        case invalidPercentEncoding
        case invalidHeaderName
        case invalidExpiry
        case invalidURL
    }

    private let code: Code
    /// What was wrong, for logs: the offending URL part, header name or value. Never a credential.
    public let detail: String

    private init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    /// The URL has no host and the headers carry no `Host`.
    public static let missingHost = AWSSignerError(.missingHost, "the URL has no host and there is no Host header")
    /// A `%` in the URL's path or query is not followed by two hex digits.
    public static func invalidPercentEncoding(_ text: String) -> AWSSignerError { AWSSignerError(.invalidPercentEncoding, text) }
    /// A header name is empty or holds whitespace, a colon or a control character.
    public static func invalidHeaderName(_ name: String) -> AWSSignerError { AWSSignerError(.invalidHeaderName, name) }
    /// A presigned URL's lifetime is outside the 1 second to 7 days that AWS accepts.
    public static func invalidExpiry(_ description: String) -> AWSSignerError { AWSSignerError(.invalidExpiry, description) }
    /// The signed query could not be put back into the URL.
    public static func invalidURL(_ url: String) -> AWSSignerError { AWSSignerError(.invalidURL, url) }

    public var description: String {
        switch code {
        case .missingHost: "AWS signing: \(detail)"
        case .invalidPercentEncoding: "AWS signing: invalid percent-encoding in \"\(detail)\""
        case .invalidHeaderName: "AWS signing: invalid header name \"\(detail)\""
        case .invalidExpiry: "AWS signing: a presigned URL must expire after 1 second to 7 days, not \(detail)"
        case .invalidURL: "AWS signing: cannot build the presigned URL from \(detail)"
        }
    }
}
