import AWSSigV4
import CurlHTTP
import Foundation

/// Reads what STS answers `AssumeRoleWithWebIdentity` (XML, the query protocol): the credentials of a success, or the
/// `Code` and `Message` of a refusal. Only these few elements are read, by name; nothing else of the document is,
/// and no error repeats the answer itself: an endpoint that is not STS may echo the request, token included.
enum STSAnswer {
    /// `<Credentials>`'s `AccessKeyId`, `SecretAccessKey`, `SessionToken` and `Expiration`.
    static func credentials(_ body: [UInt8], from source: AWSCredentialsSource) throws(AWSCredentialsError) -> ExpiringCredentials {
        let text = String(decoding: body, as: UTF8.self)
        guard let section = element("Credentials", in: text[...]) else {
            throw AWSCredentialsError("\(source): the answer (\(body.count) bytes) has no <Credentials>: is the endpoint STS?")
        }
        guard let key = element("AccessKeyId", in: section), let secret = element("SecretAccessKey", in: section),
            let token = element("SessionToken", in: section), !key.isEmpty, !secret.isEmpty, !token.isEmpty
        else {
            throw AWSCredentialsError("\(source): the answer's Credentials lack AccessKeyId, SecretAccessKey or SessionToken")
        }
        guard let expirationText = element("Expiration", in: section) else {
            throw AWSCredentialsError("\(source): the answer's Credentials have no Expiration")
        }
        guard let expiration = date(expirationText) else {
            throw AWSCredentialsError("\(source): Expiration is not an ISO 8601 time: \(expirationText)")
        }
        return ExpiringCredentials(
            AWSCredentials(accessKeyId: unescaped(key), secretAccessKey: unescaped(secret), sessionToken: unescaped(token)), expiration: expiration
        )
    }

    /// `Code: Message` of an `<ErrorResponse>`; of any other answer only its size and content type.
    static func refusal(_ response: HTTPResponse) -> String {
        let text = String(decoding: response.body, as: UTF8.self)
        guard let error = element("Error", in: text[...]), let code = element("Code", in: error) else {
            return "an answer of \(response.body.count) bytes (\(response.header("content-type") ?? "no content type")) that is not an STS error"
        }
        guard let message = element("Message", in: error) else { return unescaped(code) }
        return "\(unescaped(code)): \(unescaped(message))"
    }

    /// The content of the first `<name>…</name>` in `text` (no attributes on the tag, as STS writes them).
    static func element(_ name: String, in text: Substring) -> Substring? {
        guard let open = text.range(of: "<\(name)>"), let close = text.range(of: "</\(name)>", range: open.upperBound..<text.endIndex) else {
            return nil
        }
        return text[open.upperBound..<close.lowerBound]
    }

    /// XML's five named entities and numeric references.
    static func unescaped(_ text: Substring) -> String {
        guard text.contains("&") else { return String(text) }
        var out = ""
        var rest = text
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semicolon = rest[amp...].firstIndex(of: ";") else { break }
            let entity = rest[rest.index(after: amp)..<semicolon]
            let named = ["amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'"][String(entity)]
            if let named {
                out += named
            } else if entity.hasPrefix("#"), let scalar = numericReference(entity.dropFirst()) {
                out.unicodeScalars.append(scalar)
            } else {
                out += rest[amp...semicolon]
            }
            rest = rest[rest.index(after: semicolon)...]
        }
        return out + rest
    }

    private static func numericReference(_ digits: Substring) -> Unicode.Scalar? {
        let value = digits.hasPrefix("x") || digits.hasPrefix("X") ? UInt32(digits.dropFirst(), radix: 16) : UInt32(digits, radix: 10)
        return value.flatMap(Unicode.Scalar.init)
    }

    /// `2025-12-07T23:00:00Z`; fractional seconds (STS writes none, moto writes microseconds) are dropped: renewal
    /// runs minutes ahead.
    static func date(_ text: Substring) -> Date? {
        var trimmed = String(text).trimmingCharacters(in: .whitespaces)
        if let dot = trimmed.firstIndex(of: "."), let end = trimmed[dot...].firstIndex(where: { !$0.isNumber && $0 != "." }) {
            trimmed.removeSubrange(dot..<end)
        }
        return try? Date(trimmed, strategy: .iso8601)
    }
}
