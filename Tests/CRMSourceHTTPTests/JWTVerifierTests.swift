import CRMConfig
import CRMCore
@testable import CRMSourceHTTP
import CryptoExtras
import Testing

/// Every acceptance and refusal of `IncomingJWTVerifier`, against a clock given as an argument.
@Suite("JWT verification")
struct JWTVerifierTests {
    static let secret = Array("0123456789abcdef0123456789abcdef-shop".utf8)
    static let now = Timestamp(secondsSinceEpoch: 1_790_000_000)
    static let later = 1_790_000_000 + 600

    static func hs256Verifier(audience: String? = "crm", issuer: String? = "shop") async throws -> IncomingJWTVerifier {
        try await IncomingJWTVerifier(config: JWTAuthConfig(algorithm: .hs256, key: .secret(secret), audience: audience, issuer: issuer, leewaySeconds: 30))
    }

    static func rs256Verifier() async throws -> IncomingJWTVerifier {
        try await IncomingJWTVerifier(config: JWTAuthConfig(
            algorithm: .rs256, key: .publicKeyPEM(TestRSAKey.shared.publicKey.pemRepresentation), audience: "crm", issuer: "shop"
        ))
    }

    func refusal(_ result: Result<JSONValue, AuthenticationFailure>) -> String? {
        if case let .failure(failure) = result { return failure.reason }
        return nil
    }

    @Test func aValidHS256TokenIsAccepted() async throws {
        let token = TokenMaker.hs256(claims: TokenMaker.claims(exp: Int64(Self.later)), secret: Self.secret)
        let result = try await Self.hs256Verifier().verify(authorization: "Bearer \(token)", now: Self.now)
        guard case let .success(claims) = result else { Issue.record("refused: \(refusal(result) ?? "")"); return }
        #expect(claims["sub"] == .string("tester"))
    }

    @Test func aValidRS256TokenIsAccepted() async throws {
        let token = try TokenMaker.rs256(claims: TokenMaker.claims(exp: Int64(Self.later)), key: TestRSAKey.shared)
        let result = try await Self.rs256Verifier().verify(authorization: "Bearer \(token)", now: Self.now)
        #expect(refusal(result) == nil)
    }

    @Test func algNoneIsRefused() async throws {
        let input = TokenMaker.signingInput(header: #"{"alg":"none"}"#, claims: TokenMaker.claims(exp: Int64(Self.later)))
        let reason = refusal(try await Self.hs256Verifier().verify(token: input + ".", now: Self.now))
        #expect(reason?.contains("alg none is refused") == true)
    }

    /// The classic confusion: a token claiming HS256, "signed" with the RSA public key's PEM as the HMAC secret.
    @Test func hs256SignedWithTheRSAPublicKeyIsRefusedByAnRS256Integration() async throws {
        let pem = TestRSAKey.shared.publicKey.pemRepresentation
        let token = TokenMaker.hs256(claims: TokenMaker.claims(exp: Int64(Self.later)), secret: Array(pem.utf8))
        let reason = refusal(try await Self.rs256Verifier().verify(token: token, now: Self.now))
        #expect(reason == "token alg HS256 does not match the configured RS256")
    }

    @Test func anExpiredTokenIsRefusedBeyondTheLeeway() async throws {
        let verifier = try await Self.hs256Verifier()
        let exp: Int64 = 1_790_000_000 - 20 // expired 20 s ago: inside the 30 s leeway
        let withinLeeway = TokenMaker.hs256(claims: TokenMaker.claims(exp: exp), secret: Self.secret)
        #expect(refusal(await verifier.verify(token: withinLeeway, now: Self.now)) == nil)
        let expired = TokenMaker.hs256(claims: TokenMaker.claims(exp: 1_790_000_000 - 31), secret: Self.secret)
        #expect(refusal(await verifier.verify(token: expired, now: Self.now))?.hasPrefix("token expired at 2026-") == true)
    }

    @Test func aTokenWithoutExpIsRefused() async throws {
        let token = TokenMaker.hs256(claims: TokenMaker.claims(exp: nil), secret: Self.secret)
        #expect(refusal(try await Self.hs256Verifier().verify(token: token, now: Self.now)) == "missing exp claim: tokens must expire")
    }

    @Test func aTokenNotYetValidIsRefused() async throws {
        let token = TokenMaker.hs256(claims: TokenMaker.claims(exp: Int64(Self.later), nbf: 1_790_000_000 + 120), secret: Self.secret)
        #expect(refusal(try await Self.hs256Verifier().verify(token: token, now: Self.now))?.hasPrefix("token not valid before") == true)
    }

    @Test func theWrongAudienceIsRefused() async throws {
        let token = TokenMaker.hs256(claims: TokenMaker.claims(exp: Int64(Self.later), aud: "billing"), secret: Self.secret)
        #expect(refusal(try await Self.hs256Verifier().verify(token: token, now: Self.now)) == #"wrong audience ["billing"]: expected crm"#)
        let none = TokenMaker.hs256(claims: TokenMaker.claims(exp: Int64(Self.later), aud: nil), secret: Self.secret)
        #expect(refusal(try await Self.hs256Verifier().verify(token: none, now: Self.now)) == "missing aud claim: expected crm")
    }

    @Test func theWrongIssuerIsRefused() async throws {
        let token = TokenMaker.hs256(claims: TokenMaker.claims(exp: Int64(Self.later), iss: "mallory"), secret: Self.secret)
        #expect(refusal(try await Self.hs256Verifier().verify(token: token, now: Self.now)) == #"wrong issuer "mallory": expected shop"#)
    }

    @Test func aTamperedPayloadIsRefused() async throws {
        let token = TokenMaker.hs256(claims: TokenMaker.claims(exp: Int64(Self.later)), secret: Self.secret)
        let parts = token.split(separator: ".").map(String.init)
        let forged = TokenMaker.base64URL(Array(#"{"sub":"admin","exp":9999999999,"aud":"crm","iss":"shop"}"#.utf8))
        let reason = refusal(try await Self.hs256Verifier().verify(token: "\(parts[0]).\(forged).\(parts[2])", now: Self.now))
        #expect(reason == "signature does not verify")
        // Also with RS256.
        let rsa = try TokenMaker.rs256(claims: TokenMaker.claims(exp: Int64(Self.later)), key: TestRSAKey.shared).split(separator: ".").map(String.init)
        #expect(refusal(try await Self.rs256Verifier().verify(token: "\(rsa[0]).\(forged).\(rsa[2])", now: Self.now)) == "signature does not verify")
    }

    /// A token is verified once and then remembered; it must still expire, and any other text is verified anew.
    @Test func aRememberedTokenStillExpiresAndOnlyItsExactTextIsRemembered() async throws {
        let verifier = try await Self.hs256Verifier()
        let token = TokenMaker.hs256(claims: TokenMaker.claims(exp: Int64(Self.later)), secret: Self.secret)
        #expect(refusal(await verifier.verify(token: token, now: Self.now)) == nil)
        #expect(verifier.verified.count == 1)
        #expect(refusal(await verifier.verify(token: token, now: Self.now)) == nil)
        let afterExpiry = Timestamp(secondsSinceEpoch: Int64(Self.later) + 31)
        #expect(refusal(await verifier.verify(token: token, now: afterExpiry))?.hasPrefix("token expired at") == true)
        // The same token with one character of its signature changed: refused, and not remembered.
        var characters = Array(token)
        characters[characters.count - 5] = characters[characters.count - 5] == "A" ? "B" : "A"
        let forged = String(characters)
        #expect(refusal(await verifier.verify(token: forged, now: Self.now)) == "signature does not verify")
        #expect(verifier.verified.count == 1)
    }

    @Test func theMemoryOfVerifiedTokensIsBounded() {
        let tokens = VerifiedTokens(capacity: 3)
        for index in 0..<10 { tokens.remember("token-\(index)", claims: .object([])) }
        #expect(tokens.count <= 3)
        #expect(tokens.claims(of: "token-9") != nil)
    }

    @Test func aMissingSignatureIsRefused() async throws {
        let token = TokenMaker.hs256(claims: TokenMaker.claims(exp: Int64(Self.later)), secret: Self.secret)
        let unsigned = token.split(separator: ".").prefix(2).joined(separator: ".") + "."
        #expect(refusal(try await Self.hs256Verifier().verify(token: unsigned, now: Self.now)) == "missing signature")
    }

    @Test(arguments: [
        ("abc", "malformed token: expected 3 dot-separated segments, got 1"),
        ("a.b.c.d", "malformed token: expected 3 dot-separated segments, got 4"),
        ("!!!.e30.sig", "malformed token: the header is not base64url"),
        ("e30.e30.sig", "malformed token: the header has no alg"),
        ("WzFd.e30.sig", "malformed token: the header is not a JSON object"),
    ])
    func malformedSegmentsAreRefused(token: String, expected: String) async throws {
        #expect(refusal(try await Self.hs256Verifier().verify(token: token, now: Self.now)) == expected)
    }

    @Test func anOversizedTokenIsRefusedBeforeAnyParsing() async throws {
        let claims = TokenMaker.claims(exp: Int64(Self.later)).dropLast() + #","pad":""# + String(repeating: "x", count: 9_000) + #""}"#
        let token = TokenMaker.hs256(claims: String(claims), secret: Self.secret)
        #expect(refusal(try await Self.hs256Verifier().verify(token: token, now: Self.now)) == "token larger than 8192 bytes")
    }

    @Test func anUnknownCriticalHeaderIsRefused() async throws {
        let token = TokenMaker.hs256(header: #"{"alg":"HS256","crit":["exp-v2"],"exp-v2":1}"#, claims: TokenMaker.claims(exp: Int64(Self.later)), secret: Self.secret)
        #expect(refusal(try await Self.hs256Verifier().verify(token: token, now: Self.now))?.hasPrefix("unsupported critical header parameters") == true)
    }

    @Test func theAuthorizationHeaderMustBeABearerToken() async throws {
        let verifier = try await Self.hs256Verifier()
        #expect(refusal(await verifier.verify(authorization: nil, now: Self.now)) == "missing Authorization header: send Authorization: Bearer <JWT>")
        #expect(refusal(await verifier.verify(authorization: "Basic dXNlcjpwdw==", now: Self.now)) == "the Authorization header must be Bearer <JWT>")
    }

    /// A rotation: the new key and the old one, with ids.
    static let newSecret = Array("new-secret-0123456789abcdef0123456789".utf8)
    static func rotatingVerifier(kids: Bool = true) async throws -> IncomingJWTVerifier {
        try await IncomingJWTVerifier(config: JWTAuthConfig(algorithm: .hs256, keys: [
            .init(kid: kids ? "2026-12" : nil, key: .secret(newSecret)), .init(kid: kids ? "2026-06" : nil, key: .secret(secret)),
        ], audience: "crm", issuer: "shop"))
    }

    static func token(kid: String?, secret: [UInt8]) -> String {
        let header = kid.map { #"{"alg":"HS256","typ":"JWT","kid":"\#($0)"}"# } ?? #"{"alg":"HS256","typ":"JWT"}"#
        return TokenMaker.hs256(header: header, claims: TokenMaker.claims(exp: Int64(later)), secret: secret)
    }

    @Test func duringARotationTokensOfEitherKeyAreAccepted() async throws {
        let verifier = try await Self.rotatingVerifier()
        #expect(refusal(await verifier.verify(token: Self.token(kid: "2026-12", secret: Self.newSecret), now: Self.now)) == nil)
        #expect(refusal(await verifier.verify(token: Self.token(kid: "2026-06", secret: Self.secret), now: Self.now)) == nil)
        // Senders that set no kid: each key is tried.
        #expect(refusal(await verifier.verify(token: Self.token(kid: nil, secret: Self.secret), now: Self.now)) == nil)
        #expect(refusal(await verifier.verify(token: Self.token(kid: nil, secret: Self.newSecret), now: Self.now)) == nil)
        let stranger = Array("a-third-secret-0123456789abcdef012345".utf8)
        #expect(refusal(await verifier.verify(token: Self.token(kid: nil, secret: stranger), now: Self.now)) == "signature does not verify with any of the 2 keys")
    }

    @Test func aKidNamesTheOnlyKeyItIsCheckedWith() async throws {
        let verifier = try await Self.rotatingVerifier()
        // The old key's signature under the new key's id: refused, though the old key would verify it.
        #expect(refusal(await verifier.verify(token: Self.token(kid: "2026-12", secret: Self.secret), now: Self.now)) == "signature does not verify")
        #expect(refusal(await verifier.verify(token: Self.token(kid: "2025-01", secret: Self.secret), now: Self.now))
            == #"unknown kid "2025-01": not one of this integration's keys"#)
        let numericKid = TokenMaker.hs256(header: #"{"alg":"HS256","kid":7}"#, claims: TokenMaker.claims(exp: Int64(Self.later)), secret: Self.secret)
        #expect(refusal(await verifier.verify(token: numericKid, now: Self.now)) == "malformed token: kid must be a string, got 7")
    }

    @Test func keysWithoutIdsIgnoreTheTokensKid() async throws {
        // One key, as configured before key lists existed: a token's kid changes nothing.
        #expect(refusal(try await Self.hs256Verifier().verify(token: Self.token(kid: "anything", secret: Self.secret), now: Self.now)) == nil)
        let verifier = try await Self.rotatingVerifier(kids: false)
        #expect(refusal(await verifier.verify(token: Self.token(kid: "anything", secret: Self.secret), now: Self.now)) == nil)
    }

    @Test func aSecretOtherThanTheConfiguredOneIsRefused() async throws {
        let token = TokenMaker.hs256(claims: TokenMaker.claims(exp: Int64(Self.later)), secret: Array("another-secret-of-at-least-32-bytes!!".utf8))
        #expect(refusal(try await Self.hs256Verifier().verify(token: token, now: Self.now)) == "signature does not verify")
    }
}

@Suite("base64url decoding")
struct Base64URLTests {
    @Test func decodesUnpaddedBase64URL() {
        // "subjects?>" in standard base64 is "c3ViamVjdHM/Pg==": base64url writes / as _ and drops the padding.
        #expect(Base64URL.decode("c3ViamVjdHM_Pg") == Array("subjects?>".utf8))
        #expect(Base64URL.decode("-_-_") == [0xFB, 0xFF, 0xBF])
        #expect(Base64URL.decode("") == [])
    }

    @Test(arguments: ["c3ViamVjdHM/Pg", "c3ViamVjdHM+Pg", "c3ViamVjdHM_Pg==", "c3Vi amVj", "c3ViamVjdHM_Pé", "A"])
    func refusesWhatIsNotBase64URL(_ text: String) {
        #expect(Base64URL.decode(Substring(text)) == nil)
    }
}
