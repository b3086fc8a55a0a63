import Crypto
import Foundation

/// Signs HTTP requests with AWS Signature Version 4, in an `Authorization` header or as a presigned URL.
///
/// A value with no clock and no I/O: the date is an argument, so a signature is a pure function of its inputs
/// and AWS's own test suite pins every step (`Tests/AWSSigV4Tests`). Fetching or refreshing credentials is the
/// caller's job; make a new signer when they change.
public struct AWSSigner: Sendable {
    /// Header fields in order; a name may repeat. Names are matched without regard to case.
    public typealias Headers = [(name: String, value: String)]

    /// What the body contributes to the signature.
    public enum Body: Sendable {
        case empty
        case data(Data)
        case string(String)
        /// Sign the literal `UNSIGNED-PAYLOAD` instead of a hash. Only S3 accepts it.
        case unsignedPayload
    }

    public struct Options: Sendable, Hashable {
        /// Remove `.` and `..` path segments and collapse repeated slashes before signing. Every service but S3
        /// signs the normalized path; S3 signs the path as sent.
        public var normalizePath: Bool
        /// Add an `x-amz-content-sha256` header with the payload hash and sign it (header signing only). S3
        /// requires it; other services accept it.
        public var addContentSHA256Header: Bool
        /// Send the session token (`X-Amz-Security-Token`) but leave it out of the signature. A few services
        /// (IoT's websocket endpoint) want the token added after signing; everyone else signs it.
        public var omitSessionTokenFromSignature: Bool

        public init(normalizePath: Bool = true, addContentSHA256Header: Bool = false, omitSessionTokenFromSignature: Bool = false) {
            self.normalizePath = normalizePath
            self.addContentSHA256Header = addContentSHA256Header
            self.omitSessionTokenFromSignature = omitSessionTokenFromSignature
        }
    }

    /// Every intermediate text, for tests and for debugging a `SignatureDoesNotMatch` (AWS's error message
    /// quotes the canonical request and string to sign it expected).
    public struct Steps: Sendable, Hashable {
        public let canonicalRequest: String
        public let stringToSign: String
        public let signature: String
        /// `host;x-amz-date`: the signed header names, lower-cased and sorted.
        public let signedHeaders: String
    }

    public struct HeaderSignature: Sendable {
        /// The headers to send: the caller's, plus `Host` if it was missing, `X-Amz-Security-Token`, `X-Amz-Date`,
        /// `x-amz-content-sha256` if asked for, and `Authorization`.
        public let headers: Headers
        public let steps: Steps
    }

    public struct QuerySignature: Sendable {
        /// The URL with the `X-Amz-*` parameters appended after the caller's own.
        public let url: URL
        public let steps: Steps
    }

    public static let algorithm = "AWS4-HMAC-SHA256"
    /// AWS refuses presigned URLs that live longer than seven days.
    public static let maximumExpiry: Duration = .seconds(7 * 24 * 60 * 60)

    public let credentials: AWSCredentials
    /// The signing name of the service (`sqs`, `s3`, `execute-api`).
    public let name: String
    public let region: String
    public let options: Options

    public init(credentials: AWSCredentials, name: String, region: String, options: Options = Options()) {
        self.credentials = credentials
        self.name = name
        self.region = region
        self.options = options
    }

    // MARK: Signing with an Authorization header

    /// The headers to send with the request, signed for `date`.
    ///
    /// Headers the signer sets (`Authorization`, `X-Amz-Date`, and `X-Amz-Security-Token` when the credentials
    /// have a token, `x-amz-content-sha256` when asked for) replace any the caller passed, so re-signing a retried
    /// request is safe. `url` must be the URL the request goes to, path and query included.
    public func signHeaders(
        method: String,
        url: URL,
        headers: Headers = [],
        body: Body = .empty,
        date: Date
    ) throws(AWSSignerError) -> Headers {
        try headerSignature(method: method, url: url, headers: headers, body: body, date: date).headers
    }

    /// `signHeaders` with its intermediate steps.
    public func headerSignature(
        method: String,
        url: URL,
        headers: Headers = [],
        body: Body = .empty,
        date: Date
    ) throws(AWSSignerError) -> HeaderSignature {
        let signingDate = SigningDate(date)
        let payloadHash = Self.payloadHash(body)

        var replaced: Set<String> = ["authorization", "x-amz-date"]
        if credentials.sessionToken != nil { replaced.insert("x-amz-security-token") }
        if options.addContentSHA256Header { replaced.insert("x-amz-content-sha256") }
        var sent = try withHost(headers.filter { !replaced.contains($0.name.lowercased()) }, url: url)

        // aws-c-auth's order, so a signed request reads the same as AWS's expected ones.
        var signed = sent
        if let token = credentials.sessionToken {
            sent.append((name: "X-Amz-Security-Token", value: token))
            if !options.omitSessionTokenFromSignature { signed.append((name: "X-Amz-Security-Token", value: token)) }
        }
        sent.append((name: "X-Amz-Date", value: signingDate.amzDate))
        signed.append((name: "X-Amz-Date", value: signingDate.amzDate))
        if options.addContentSHA256Header {
            sent.append((name: "x-amz-content-sha256", value: payloadHash))
            signed.append((name: "x-amz-content-sha256", value: payloadHash))
        }

        let canonical = try CanonicalRequest(
            method: method,
            percentEncodedPath: url.path(percentEncoded: true),
            queryItems: try CanonicalRequest.queryItems(percentEncodedQuery: url.query(percentEncoded: true)),
            headers: signed,
            payloadHash: payloadHash,
            normalizePath: options.normalizePath
        )
        let steps = self.steps(canonical, date: signingDate)
        sent.append((
            name: "Authorization",
            value: "\(Self.algorithm) Credential=\(credentials.accessKeyId)/\(credentialScope(signingDate)), "
                + "SignedHeaders=\(steps.signedHeaders), Signature=\(steps.signature)"
        ))
        return HeaderSignature(headers: sent, steps: steps)
    }

    // MARK: Presigned URLs

    /// A URL that carries its own signature in the query, valid from `date` for `expires` (1 second to 7 days).
    ///
    /// `headers` are signed too (and `Host`, from the URL if absent), so whoever uses the URL must send them.
    /// The payload hash is of `body`; pass `.unsignedPayload` for S3 uploads whose body is not known yet.
    public func presignURL(
        method: String,
        url: URL,
        headers: Headers = [],
        body: Body = .empty,
        expires: Duration,
        date: Date
    ) throws(AWSSignerError) -> URL {
        try querySignature(method: method, url: url, headers: headers, body: body, expires: expires, date: date).url
    }

    /// `presignURL` with its intermediate steps.
    public func querySignature(
        method: String,
        url: URL,
        headers: Headers = [],
        body: Body = .empty,
        expires: Duration,
        date: Date
    ) throws(AWSSignerError) -> QuerySignature {
        let seconds = expires.components.seconds
        guard expires.components.attoseconds == 0, seconds >= 1, expires <= Self.maximumExpiry else {
            throw .invalidExpiry("\(expires)")
        }
        let signingDate = SigningDate(date)
        let signed = try withHost(headers.filter { $0.name.lowercased() != "authorization" }, url: url)
        let signedHeaders = try CanonicalRequest.canonicalHeaders(signed).map(\.name).joined(separator: ";")

        // The caller's own parameters stay as they were written; any X-Amz-* from an earlier presigning go.
        let ownPieces = (url.query(percentEncoded: true) ?? "")
            .split(separator: "&")
            .filter { piece in !Self.presignParameterNames.contains(String(piece.prefix { $0 != "=" })) }
        let ownItems = try CanonicalRequest.queryItems(percentEncodedQuery: ownPieces.joined(separator: "&"))

        var added: [(name: String, value: String)] = [
            ("X-Amz-Algorithm", Self.algorithm),
            ("X-Amz-Credential", "\(credentials.accessKeyId)/\(credentialScope(signingDate))"),
            ("X-Amz-Date", signingDate.amzDate),
            ("X-Amz-SignedHeaders", signedHeaders),
            ("X-Amz-Expires", String(seconds)),
        ]
        var addedAfterSigning: [(name: String, value: String)] = []
        if let token = credentials.sessionToken {
            if options.omitSessionTokenFromSignature {
                addedAfterSigning.append(("X-Amz-Security-Token", token))
            } else {
                added.append(("X-Amz-Security-Token", token))
            }
        }
        let encodedAdded = added.map { CanonicalRequest.QueryItem(name: $0.name, value: URIEncoding.encode($0.value)) }

        let canonical = try CanonicalRequest(
            method: method,
            percentEncodedPath: url.path(percentEncoded: true),
            queryItems: ownItems + encodedAdded,
            headers: signed,
            payloadHash: Self.payloadHash(body),
            normalizePath: options.normalizePath
        )
        let steps = self.steps(canonical, date: signingDate)

        let appended = (added + addedAfterSigning + [("X-Amz-Signature", steps.signature)])
            .map { "\($0.name)=\(URIEncoding.encode($0.value))" }
        let query = (ownPieces.map(String.init) + appended).joined(separator: "&")
        guard let presigned = Self.replacingQuery(of: url, with: query) else { throw .invalidURL(url.absoluteString) }
        return QuerySignature(url: presigned, steps: steps)
    }

    /// Splices the query into the URL's text. Not `URLComponents.percentEncodedQuery`: its setter traps on text it
    /// dislikes, where this returns nil.
    private static func replacingQuery(of url: URL, with query: String) -> URL? {
        var text = Substring(url.absoluteString)
        var fragment: Substring = ""
        if let hash = text.firstIndex(of: "#") {
            fragment = text[hash...]
            text = text[..<hash]
        }
        if let mark = text.firstIndex(of: "?") { text = text[..<mark] }
        return URL(string: "\(text)?\(query)\(fragment)", encodingInvalidCharacters: false)
    }

    private static let presignParameterNames: Set<String> = [
        "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Expires",
        "X-Amz-Security-Token", "X-Amz-Signature",
    ]

    // MARK: The steps, one by one

    /// The canonical request for exactly this method, URL, headers and payload hash: nothing is added, so pass
    /// the headers as they will be signed (`X-Amz-Date` included for header signing).
    public func canonicalRequest(method: String, url: URL, headers: Headers, payloadHash: String) throws(AWSSignerError) -> String {
        try CanonicalRequest(
            method: method,
            percentEncodedPath: url.path(percentEncoded: true),
            queryItems: try CanonicalRequest.queryItems(percentEncodedQuery: url.query(percentEncoded: true)),
            headers: headers,
            payloadHash: payloadHash,
            normalizePath: options.normalizePath
        ).text
    }

    /// `AWS4-HMAC-SHA256`, the time, the credential scope and the canonical request's SHA-256, one per line.
    public func stringToSign(canonicalRequest: String, date: Date) -> String {
        stringToSign(canonicalRequest: canonicalRequest, date: SigningDate(date))
    }

    /// The hex HMAC of the string to sign, keyed by the secret derived for this day, region and service.
    public func signature(stringToSign: String, date: Date) -> String {
        signature(stringToSign: stringToSign, date: SigningDate(date))
    }

    /// The hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    public static func payloadHash(_ body: Body) -> String {
        switch body {
        case .empty: Hex.encode(SHA256.hash(data: [UInt8]()))
        case .data(let data): Hex.encode(SHA256.hash(data: data))
        case .string(let string): Hex.encode(SHA256.hash(data: Array(string.utf8)))
        case .unsignedPayload: "UNSIGNED-PAYLOAD"
        }
    }

    // MARK: Internals

    private func steps(_ canonical: CanonicalRequest, date: SigningDate) -> Steps {
        let stringToSign = stringToSign(canonicalRequest: canonical.text, date: date)
        return Steps(
            canonicalRequest: canonical.text,
            stringToSign: stringToSign,
            signature: signature(stringToSign: stringToSign, date: date),
            signedHeaders: canonical.signedHeaders
        )
    }

    private func credentialScope(_ date: SigningDate) -> String {
        "\(date.day)/\(region)/\(name)/aws4_request"
    }

    private func stringToSign(canonicalRequest: String, date: SigningDate) -> String {
        [
            Self.algorithm,
            date.amzDate,
            credentialScope(date),
            Hex.encode(SHA256.hash(data: Array(canonicalRequest.utf8))),
        ].joined(separator: "\n")
    }

    private func signature(stringToSign: String, date: SigningDate) -> String {
        var key = SymmetricKey(data: Array("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [date.day, region, name, "aws4_request"] {
            key = SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key))
        }
        return Hex.encode(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
    }

    /// The headers with `Host` in front if the caller gave none: the URL's host, and its port unless it is the
    /// scheme's default (which clients leave out of the header they send).
    private func withHost(_ headers: Headers, url: URL) throws(AWSSignerError) -> Headers {
        if headers.contains(where: { $0.name.lowercased() == "host" }) { return headers }
        guard let host = url.host(percentEncoded: true), !host.isEmpty else { throw .missingHost }
        // An IPv6 literal goes back in brackets, as in the URL and the Host header a client sends.
        var value = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        if let port = url.port, !(url.scheme == "https" && port == 443), !(url.scheme == "http" && port == 80) {
            value += ":\(port)"
        }
        return [(name: "Host", value: value)] + headers
    }
}

extension AWSSigner: CustomStringConvertible {
    /// Names the key, never the secret.
    public var description: String {
        "AWSSigner(\(name), \(region), \(credentials))"
    }
}
