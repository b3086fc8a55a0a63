/// The canonical request: the one text both sides build from a request, whose hash SigV4 signs.
/// Each rule here is pinned by a case in AWS's test suite (Tests/Fixtures/sigv4).
struct CanonicalRequest {
    /// A query parameter, name and value already in SigV4's encoding.
    struct QueryItem {
        let name: String
        let value: String
    }

    let text: String
    /// Lower-cased names of the signed headers, sorted, joined by `;`.
    let signedHeaders: String

    init(
        method: String,
        percentEncodedPath: String,
        queryItems: [QueryItem],
        headers: AWSSigner.Headers,
        payloadHash: String,
        normalizePath: Bool
    ) throws(AWSSignerError) {
        let path = try Self.canonicalPath(percentEncodedPath, normalize: normalizePath)
        let query = Self.canonicalQuery(queryItems)
        let canonicalHeaders = try Self.canonicalHeaders(headers)
        let signedHeaders = canonicalHeaders.map(\.name).joined(separator: ";")
        let headerBlock = canonicalHeaders.map { "\($0.name):\($0.value)\n" }.joined()
        self.text = [method, path, query, headerBlock, signedHeaders, payloadHash].joined(separator: "\n")
        self.signedHeaders = signedHeaders
    }

    // MARK: Path

    /// Each segment is decoded and encoded once, so a URL that Foundation escaped (`/example%20space/`) and the raw
    /// path in AWS's vectors (`/example space/`) sign alike.
    ///
    /// With `normalize`, `.` and `..` segments go and runs of slashes collapse (RFC 3986 section 5.2.4); a path that
    /// ended in a slash or a dot segment keeps a trailing slash. S3 signs the path exactly as sent, so it turns
    /// normalization off.
    static func canonicalPath(_ percentEncodedPath: String, normalize: Bool) throws(AWSSignerError) -> String {
        var segments: [[UInt8]] = []
        for segment in percentEncodedPath.split(separator: "/", omittingEmptySubsequences: false) {
            segments.append(try URIEncoding.decode(segment))
        }

        guard normalize else {
            let joined = segments.map { URIEncoding.encode($0) }.joined(separator: "/")
            return joined.hasPrefix("/") ? joined : "/" + joined
        }

        let dot = Array(".".utf8)
        let dotDot = Array("..".utf8)
        var kept: [[UInt8]] = []
        var endsWithSlash = false
        for (index, segment) in segments.enumerated() {
            let isLast = index == segments.count - 1
            if segment.isEmpty || segment == dot {
                endsWithSlash = isLast
            } else if segment == dotDot {
                _ = kept.popLast()
                endsWithSlash = isLast
            } else {
                kept.append(segment)
                endsWithSlash = false
            }
        }
        guard !kept.isEmpty else { return "/" }
        return "/" + kept.map { URIEncoding.encode($0) }.joined(separator: "/") + (endsWithSlash ? "/" : "")
    }

    // MARK: Query

    /// Splits a URL's percent-encoded query into parameters in SigV4's encoding. A parameter without `=` has an
    /// empty value (signed as `name=`); empty pieces (`a=1&&b=2`) are dropped.
    static func queryItems(percentEncodedQuery: String?) throws(AWSSignerError) -> [QueryItem] {
        guard let percentEncodedQuery else { return [] }
        var items: [QueryItem] = []
        for piece in percentEncodedQuery.split(separator: "&") {
            let name: Substring
            let value: Substring
            if let equals = piece.firstIndex(of: "=") {
                name = piece[..<equals]
                value = piece[piece.index(after: equals)...]
            } else {
                name = piece
                value = ""
            }
            items.append(QueryItem(name: try URIEncoding.reencode(name), value: try URIEncoding.reencode(value)))
        }
        return items
    }

    /// Sorted by encoded name, then encoded value, comparing bytes (`%E1…` sorts before `P`, `Param` before `Param-3`).
    static func canonicalQuery(_ items: [QueryItem]) -> String {
        items
            .sorted { lhs, rhs in
                lhs.name == rhs.name
                    ? lhs.value.utf8.lexicographicallyPrecedes(rhs.value.utf8)
                    : lhs.name.utf8.lexicographicallyPrecedes(rhs.name.utf8)
            }
            .map { "\($0.name)=\($0.value)" }
            .joined(separator: "&")
    }

    // MARK: Headers

    /// Headers that are never signed: `Authorization` carries the signature, and the others are routinely added,
    /// changed or dropped between client and AWS (by curl, proxies, load balancers), which would break a signature
    /// that covered them. The same list the AWS SDKs use.
    static let unsignableHeaderNames: Set<String> = [
        "authorization", "connection", "expect", "keep-alive", "proxy-authenticate", "proxy-authorization",
        "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id",
    ]

    /// Lower-cased names, sorted; values trimmed, inner runs of whitespace (including folded line breaks) collapsed
    /// to one space, and the values of repeated names joined by commas in the order given.
    static func canonicalHeaders(_ headers: AWSSigner.Headers) throws(AWSSignerError) -> [(name: String, value: String)] {
        var valuesByName: [String: [String]] = [:]
        for header in headers {
            guard isValidHeaderName(header.name) else { throw .invalidHeaderName(header.name) }
            let name = header.name.lowercased()
            guard !unsignableHeaderNames.contains(name) else { continue }
            valuesByName[name, default: []].append(canonicalHeaderValue(header.value))
        }
        return valuesByName.keys
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            .map { name in (name: name, value: valuesByName[name, default: []].joined(separator: ",")) }
    }

    static func canonicalHeaderValue(_ value: String) -> String {
        var out: [UInt8] = []
        var pendingSpace = false
        for byte in value.utf8 {
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(UInt8(ascii: " ")) }
                pendingSpace = false
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// An HTTP token: not empty, no whitespace, controls or colon. Anything else would make the canonical text
    /// ambiguous, and no server would accept the header anyway.
    static func isValidHeaderName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }
    }
}
