import CRMConfig
import CRMCore
import Foundation
import JWTKit
import Synchronization

/// Why a request's token was refused; answered as 401 with this reason.
public struct AuthenticationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Verifies `Authorization: Bearer <JWT>` for one integration. The algorithm comes from the configuration, never
/// from the token: a token whose `alg` differs (`none`, or HS256 signed with an RSA public key as its secret) is
/// refused before any signature check. Signatures are checked by jwt-kit's algorithm for the configured key; claims
/// here, against the injected clock.
///
/// The signature check calls the key's `JWTAlgorithm` directly rather than `JWTKeyCollection.verify`: the
/// collection is an actor, so every request of the server would queue on one executor for its whole verification.
///
/// A client sends the same token with every request until it expires, so tokens whose signature verified are
/// remembered (`VerifiedTokens`, keyed by the token's whole text) with their claims; a remembered token skips the
/// decoding and the signature check, never the claims check against the clock, so it stops working when it expires.
/// A changed key (a configuration reload) makes a new verifier and so a new, empty memory.
///
/// Several keys (`keys:`, for a rotation): when the keys have ids, a token whose header names a `kid` is checked
/// with that key only, and an unknown `kid` is refused; any other token is checked with each key in turn.
public struct IncomingJWTVerifier: Sendable {
    public let config: JWTAuthConfig
    /// The keys' algorithms, in the configuration's order, with their ids.
    let algorithms: [(kid: String?, algorithm: any JWTAlgorithm)]
    let verified = VerifiedTokens(capacity: VerifiedTokens.defaultCapacity)

    /// Fails when a configured key is unusable (an RSA key jwt-kit refuses, e.g. under 2048 bits).
    public init(config: JWTAuthConfig) async throws {
        self.config = config
        var algorithms: [(kid: String?, algorithm: any JWTAlgorithm)] = []
        for named in config.keys {
            let keys = JWTKeyCollection()
            switch (config.algorithm, named.key) {
            case let (.hs256, .secret(secret)): await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
            case let (.hs384, .secret(secret)): await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha384)
            case let (.hs512, .secret(secret)): await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha512)
            case let (.rs256, .publicKeyPEM(pem)): await keys.add(rsa: try Self.rsaKey(pem), digestAlgorithm: .sha256)
            case let (.rs384, .publicKeyPEM(pem)): await keys.add(rsa: try Self.rsaKey(pem), digestAlgorithm: .sha384)
            case let (.rs512, .publicKeyPEM(pem)): await keys.add(rsa: try Self.rsaKey(pem), digestAlgorithm: .sha512)
            default: throw AuthenticationFailure("\(config.algorithm.rawValue) does not go with the configured key kind")
            }
            algorithms.append((named.kid, try await keys.getKey()))
        }
        self.algorithms = algorithms
    }

    /// The keys a token with header `kid` may be signed with.
    func candidates(kid: String?) -> Result<[any JWTAlgorithm], AuthenticationFailure> {
        guard let kid, algorithms.contains(where: { $0.kid != nil }) else { return .success(algorithms.map(\.algorithm)) }
        let named = algorithms.filter { $0.kid == kid }.map(\.algorithm)
        guard !named.isEmpty else {
            return .failure(AuthenticationFailure("unknown kid \(JSONValue.string(kid).excerpt): not one of this integration's keys"))
        }
        return .success(named)
    }

    static func rsaKey(_ pem: String) throws -> Insecure.RSA.PublicKey {
        if pem.contains("-----BEGIN CERTIFICATE-----") { return try Insecure.RSA.PublicKey(certificatePEM: pem) }
        return try Insecure.RSA.PublicKey(pem: pem)
    }

    /// The verified claims of the request's token, or why it is refused.
    public func verify(authorization: String?, now: Timestamp) async -> Result<JSONValue, AuthenticationFailure> {
        guard let authorization, !authorization.isEmpty else {
            return .failure(AuthenticationFailure("missing Authorization header: send Authorization: Bearer <JWT>"))
        }
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            return .failure(AuthenticationFailure("the Authorization header must be Bearer <JWT>"))
        }
        // Without surrounding spaces and tabs, looked at as bytes (Foundation's trimming went through NSString).
        let bytes = parts[1].utf8
        let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        let start = bytes.firstIndex { !isBlank($0) } ?? bytes.endIndex
        let end = bytes.lastIndex { !isBlank($0) }.map { bytes.index(after: $0) } ?? start
        return await verify(token: String(parts[1][start..<end]), now: now)
    }

    /// Longest token accepted: real ones are well under 2 KiB; anything near this is an attack or a mistake.
    public static let maxTokenBytes = 8_192

    public func verify(token: String, now: Timestamp) async -> Result<JSONValue, AuthenticationFailure> {
        guard token.utf8.count <= Self.maxTokenBytes else {
            return .failure(AuthenticationFailure("token larger than \(Self.maxTokenBytes) bytes"))
        }
        if let claims = verified.claims(of: token) {
            if let failure = checkClaims(claims, now: now) { return .failure(failure) }
            return .success(claims)
        }
        let segments = token.split(separator: ".", omittingEmptySubsequences: false)
        guard segments.count == 3 else {
            return .failure(AuthenticationFailure("malformed token: expected 3 dot-separated segments, got \(segments.count)"))
        }
        guard let headerBytes = Base64URL.decode(segments[0]) else {
            return .failure(AuthenticationFailure("malformed token: the header is not base64url"))
        }
        guard case let .object(header)? = try? JSONParser().parse(headerBytes) else {
            return .failure(AuthenticationFailure("malformed token: the header is not a JSON object"))
        }
        let headerValue = JSONValue.object(header)
        guard case let .string(alg)? = headerValue["alg"] else {
            return .failure(AuthenticationFailure("malformed token: the header has no alg"))
        }
        if alg.lowercased() == "none" {
            return .failure(AuthenticationFailure("alg none is refused: tokens must be signed with \(config.algorithm.rawValue)"))
        }
        guard alg == config.algorithm.rawValue else {
            return .failure(AuthenticationFailure("token alg \(alg) does not match the configured \(config.algorithm.rawValue)"))
        }
        if let crit = headerValue["crit"] {
            return .failure(AuthenticationFailure("unsupported critical header parameters \(crit.excerpt): none are understood"))
        }
        guard !segments[2].isEmpty else {
            return .failure(AuthenticationFailure("missing signature"))
        }
        guard let payloadBytes = Base64URL.decode(segments[1]) else {
            return .failure(AuthenticationFailure("malformed token: the payload is not base64url"))
        }
        guard let signature = Base64URL.decode(segments[2]) else {
            return .failure(AuthenticationFailure("malformed token: the signature is not base64url"))
        }
        var kid: String?
        switch headerValue["kid"] {
        case nil: break
        case let .string(text)?: kid = text
        case let other?: return .failure(AuthenticationFailure("malformed token: kid must be a string, got \(other.excerpt)"))
        }
        let keys: [any JWTAlgorithm]
        switch candidates(kid: kid) {
        case let .success(found): keys = found
        case let .failure(failure): return .failure(failure)
        }
        // The signing input is the token's text up to its second dot (RFC 7515 §5.2).
        let signingInput = Array(token.utf8.prefix(segments[0].utf8.count + 1 + segments[1].utf8.count))
        do {
            guard try keys.contains(where: { try $0.verify(signature, signs: signingInput) }) else {
                return .failure(AuthenticationFailure(keys.count > 1 ? "signature does not verify with any of the \(keys.count) keys" : "signature does not verify"))
            }
        } catch {
            return .failure(AuthenticationFailure("malformed token: \(error)"))
        }
        guard case let .object(members)? = try? JSONParser().parse(payloadBytes) else {
            return .failure(AuthenticationFailure("malformed token: the payload is not a JSON object"))
        }
        let claims = JSONValue.object(members)
        verified.remember(token, claims: claims)
        if let failure = checkClaims(claims, now: now) { return .failure(failure) }
        return .success(claims)
    }

    /// `exp` required; `nbf` when present; `aud` and `iss` when configured. Times allow the configured leeway.
    func checkClaims(_ claims: JSONValue, now: Timestamp) -> AuthenticationFailure? {
        let nowSeconds = Double(now.microsecondsSinceEpoch) / 1_000_000
        let leeway = Double(config.leewaySeconds)
        guard let expValue = claims["exp"] else { return AuthenticationFailure("missing exp claim: tokens must expire") }
        guard case let .number(expText) = expValue, let exp = Double(expText) else {
            return AuthenticationFailure("exp must be a NumericDate (seconds since 1970), got \(expValue.excerpt)")
        }
        if nowSeconds > exp + leeway { return AuthenticationFailure("token expired at \(Self.describe(exp))") }
        if let nbfValue = claims["nbf"] {
            guard case let .number(nbfText) = nbfValue, let nbf = Double(nbfText) else {
                return AuthenticationFailure("nbf must be a NumericDate (seconds since 1970), got \(nbfValue.excerpt)")
            }
            if nowSeconds + leeway < nbf { return AuthenticationFailure("token not valid before \(Self.describe(nbf))") }
        }
        if let audience = config.audience {
            let audiences: [String]
            switch claims["aud"] {
            case let .string(one)?: audiences = [one]
            case let .array(many)?: audiences = many.compactMap { if case let .string(text) = $0 { return text } else { return nil } }
            case nil: return AuthenticationFailure("missing aud claim: expected \(audience)")
            case let other?: return AuthenticationFailure("aud must be a string or a list of strings, got \(other.excerpt)")
            }
            if !audiences.contains(audience) {
                return AuthenticationFailure("wrong audience \(JSONValue.array(audiences.map(JSONValue.string)).excerpt): expected \(audience)")
            }
        }
        if let issuer = config.issuer {
            guard case let .string(iss)? = claims["iss"] else { return AuthenticationFailure("missing iss claim: expected \(issuer)") }
            if iss != issuer { return AuthenticationFailure("wrong issuer \(JSONValue.string(iss).excerpt): expected \(issuer)") }
        }
        return nil
    }

    static func describe(_ seconds: Double) -> String {
        Timestamp(microsecondsSinceEpoch: Int64((seconds * 1_000_000).rounded())).rfc3339
    }
}

/// Tokens whose signature verified, with their claims: at most `capacity`, forgotten all at once when full (only
/// correctly signed tokens get in, so this bounds memory, not an attack surface).
final class VerifiedTokens: Sendable {
    static let defaultCapacity = 256
    let capacity: Int
    private let tokens = Mutex<[String: JSONValue]>([:])

    init(capacity: Int) { self.capacity = capacity }

    func claims(of token: String) -> JSONValue? { tokens.withLock { $0[token] } }

    func remember(_ token: String, claims: JSONValue) {
        tokens.withLock { tokens in
            if tokens.count >= capacity { tokens.removeAll(keepingCapacity: true) }
            tokens[token] = claims
        }
    }

    var count: Int { tokens.withLock { $0.count } }
}

/// base64url without padding (RFC 7515), refusing anything else.
///
/// Works on the UTF-8 bytes: translated to standard base64 and padded in one pass, decoded by Foundation. (The
/// `Character`-level version, with `isLetter` and `replacingOccurrences`, was a sixth of the HTTP path's CPU.)
enum Base64URL {
    static func decode(_ text: Substring) -> [UInt8]? {
        var base64: [UInt8] = []
        base64.reserveCapacity(text.utf8.count + 3)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                base64.append(byte)
            case UInt8(ascii: "-"): base64.append(UInt8(ascii: "+"))
            case UInt8(ascii: "_"): base64.append(UInt8(ascii: "/"))
            default: return nil
            }
        }
        while base64.count % 4 != 0 { base64.append(UInt8(ascii: "=")) }
        return Data(base64Encoded: Data(base64)).map { [UInt8]($0) }
    }
}
