import CRMConfig
import CRMCore
import Foundation
import Testing

@Suite("Configuration: HTTP server and sources")
struct HTTPConfigTests {
    static let secret = "0123456789abcdef0123456789abcdef-shop"
    static let customOrder = EventType(rawValue: "CUSTOM_ORDER")
    let loader = ConfigLoader(environment: ["SHOP_JWT_SECRET": secret, "SHORT_SECRET": String(repeating: "s", count: 31)])

    func problems(_ yaml: String, baseDirectory: String = "/nonexistent-base") -> [String] {
        do {
            _ = try loader.load(yaml: yaml, baseDirectory: baseDirectory)
            return []
        } catch {
            return error.problems.map(\.description)
        }
    }

    /// One open http source with `fragment` added under `http:`, and an http server.
    static func source(_ fragment: String, server: String = "http: { listen: 127.0.0.1:8080 }\n") -> String {
        server + """
            sources:
              - name: shop
                http:
                  auth: none
                  event_type: CUSTOM_ORDER
            \(fragment.split(separator: "\n", omittingEmptySubsequences: false).map { "      " + $0 }.joined(separator: "\n"))

            """
    }

    /// An http source whose `auth:` is `auth`, written under `http:`.
    static func auth(_ auth: String) -> String {
        """
        http: { listen: 127.0.0.1:8080 }
        sources:
          - name: shop
            http:
              event_type: CUSTOM_ORDER
              auth: \(auth)

        """
    }

    static let publicKeyPEM = """
        -----BEGIN PUBLIC KEY-----
        MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqka2mQc762QNyDQA9hIw
        wZKWpis3k1MhVBg/vDn59mNGeeWJyCBMOk2bR7LYT6bU1eCvjkWKqaO1BdO92mVe
        QdlO58pJDoehGzkf29mEaeOnEILFCLkj7rd5wDJfRCvAiW7owvTsBXJwl/B7l5vj
        zAbzq3ts5cklCgKT9pYlWDY7SPJREfJPgyShJAVtN83Vx0yUuAxNd109XqMapqlv
        JC1uFxA+P4+oCAJMsJ3urDR6DEyjSmsxi1qa2juhaKqC4xZyxVTB+f76bpfQTUR3
        7hQqNSk6cWVYssC5wplifbf8fen+K58bRHLRLZJoiLUxVJMEkxheO8TxRVlszo7j
        AwIDAQAB
        -----END PUBLIC KEY-----

        """

    /// A fresh directory holding `keys/shop.pem` (the public key) and `keys/not-a-key.pem`.
    func keyDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("crm-http-config-\(UUID().uuidString)")
        let keys = directory.appendingPathComponent("keys")
        try FileManager.default.createDirectory(at: keys, withIntermediateDirectories: true)
        try Self.publicKeyPEM.write(to: keys.appendingPathComponent("shop.pem"), atomically: true, encoding: .utf8)
        try "just some text\n".write(to: keys.appendingPathComponent("not-a-key.pem"), atomically: true, encoding: .utf8)
        return directory
    }

    // MARK: Valid configurations

    @Test func readsAFullHTTPConfiguration() throws {
        let config = try loader.load(yaml: """
            http: { listen: 127.0.0.1:8080, max_body: 1MiB, read_timeout: 45s }
            idempotency: { ledger_retention: 30d }
            attributes:
              - { name: email, headers: [customer_email] }
            sources:
              - name: shop
                format: flattened
                http:
                  endpoint: shop-orders-2024
                  auth:
                    jwt:
                      algorithm: HS256
                      secret: "${SHOP_JWT_SECRET}"
                      audience: crm
                      issuer: https://shop.example.org
                      leeway: 1m
                  deduplication:
                    parameters: [body.order_number, headers.X-Request-ID]
                    header: X-Dedup-Hash
                    window: 1d
                  contact_id: body.customer_email
                  event_type: CUSTOM_ORDER
            mappings:
              CUSTOM_ORDER:
                - create_contact: { list: 2, email_subscribed: false }
                - enter_journey: { journey: 7 }
            """)
        #expect(config.http == HTTPServerConfig(host: "127.0.0.1", port: 8080, maxBodyBytes: 1_048_576, readTimeout: .seconds(45)))
        #expect(config.sources == [SourceConfig(name: "shop", format: .flattened, transport: .http(HTTPSourceConfig(
            endpoint: "shop-orders-2024",
            auth: .jwt(JWTAuthConfig(
                algorithm: .hs256, key: .secret(Array(Self.secret.utf8)), audience: "crm", issuer: "https://shop.example.org",
                leewaySeconds: 60
            )),
            deduplication: RequestDeduplication(
                parameters: [.body("order_number"), .header("X-Request-ID")], header: "X-Dedup-Hash", windowSeconds: 86_400
            ),
            contactId: .body("customer_email"),
            eventType: .fixed(Self.customOrder)
        )))])
        #expect(config.mappings == [Self.customOrder: [
            .createContact(list: 2, emailSubscribed: false, mobileSubscribed: true), .enterJourney(journey: 7),
        ]])
        #expect(config.attributes == [AttributeDefinition(name: "email", headers: ["customer_email"])])
        #expect(config.idempotency.ledgerRetentionSeconds == 2_592_000)
    }

    @Test func defaultsOfAnOpenSource() throws {
        let config = try loader.load(yaml: """
            http: {}
            sources:
              - name: hooks
                http: { auth: none, event_type: { from: headers.X-Event-Type } }
            """)
        #expect(config.http == HTTPServerConfig(host: "127.0.0.1", port: 8080, maxBodyBytes: 1 << 20))
        #expect(config.sources == [SourceConfig(name: "hooks", format: .flattened, transport: .http(HTTPSourceConfig(
            endpoint: nil, auth: .none, deduplication: nil, contactId: nil, eventType: .field(.header("X-Event-Type"))
        )))])
    }

    @Test func jwtDefaultsAndDeduplicationDefaults() throws {
        let config = try loader.load(yaml: Self.auth(#"{ jwt: { algorithm: HS512, secret: "${SHOP_JWT_SECRET}" } }"#) + """
                  deduplication: { parameters: [body.id] }
            """)
        guard case let .http(http)? = config.sources.first?.transport else {
            Issue.record("no http source: \(config.sources)")
            return
        }
        #expect(http.auth == .jwt(JWTAuthConfig(algorithm: .hs512, key: .secret(Array(Self.secret.utf8)), audience: nil, issuer: nil, leewaySeconds: 30)))
        #expect(http.deduplication == RequestDeduplication(parameters: [.body("id")], header: nil, windowSeconds: 604_800))
    }

    @Test(arguments: [
        ("127.0.0.1:8080", "127.0.0.1", 8080),
        ("0.0.0.0:9000", "0.0.0.0", 9000),
        ("localhost:80", "localhost", 80),
        ("\"[::1]:8443\"", "::1", 8443),
        ("\"::1:8443\"", "::1", 8443),
    ])
    func readsListenAddresses(listen: String, host: String, port: Int) throws {
        let config = try loader.load(yaml: "http: { listen: \(listen) }")
        #expect(config.http == HTTPServerConfig(host: host, port: port))
    }

    @Test func readsRS256WithAPublicKeyFileRelativeToTheBaseDirectory() throws {
        let directory = try keyDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let yaml = Self.auth("{ jwt: { algorithm: RS256, public_key_file: keys/shop.pem, issuer: shop, leeway: 0s } }")
        let config = try loader.load(yaml: yaml, baseDirectory: directory.path)
        guard case let .http(http)? = config.sources.first?.transport else {
            Issue.record("no http source: \(config.sources)")
            return
        }
        #expect(http.auth == .jwt(JWTAuthConfig(algorithm: .rs256, key: .publicKeyPEM(Self.publicKeyPEM), audience: nil, issuer: "shop", leewaySeconds: 0)))

        // An absolute path does not depend on the base directory.
        let absolute = Self.auth("{ jwt: { algorithm: RS512, public_key_file: \(directory.path)/keys/shop.pem } }")
        let other = try loader.load(yaml: absolute, baseDirectory: "/nonexistent-base")
        guard case let .http(otherHTTP)? = other.sources.first?.transport else {
            Issue.record("no http source: \(other.sources)")
            return
        }
        #expect(otherHTTP.auth == .jwt(JWTAuthConfig(algorithm: .rs512, key: .publicKeyPEM(Self.publicKeyPEM))))
    }

    @Test func loadingFromAFileResolvesKeysBesideIt() throws {
        let directory = try keyDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("crm-ingest.yaml")
        try Self.auth("{ jwt: { algorithm: RS384, public_key_file: keys/shop.pem } }").write(to: file, atomically: true, encoding: .utf8)
        let config = try loader.load(path: file.path)
        guard case let .http(http)? = config.sources.first?.transport else {
            Issue.record("no http source: \(config.sources)")
            return
        }
        #expect(http.auth == .jwt(JWTAuthConfig(algorithm: .rs384, key: .publicKeyPEM(Self.publicKeyPEM))))
    }

    @Test func aCustomTypeFromTheRequestMayBeMapped() throws {
        let config = try loader.load(yaml: """
            http: { listen: 127.0.0.1:8080 }
            sources:
              - name: hooks
                http: { auth: none, event_type: { from: body.type }, contact_id: body.customer_id }
            mappings:
              CUSTOM_ORDER: [ { update_contact: { list: 1 } } ]
              CUSTOM_REFUND: [ { enter_journey: { journey: 3 } } ]
            """)
        #expect(config.mappings == [
            Self.customOrder: [.updateContact(list: 1)],
            EventType(rawValue: "CUSTOM_REFUND"): [.enterJourney(journey: 3)],
        ])
    }

    @Test func aFixedTypeWithNoActionsNeedsNoContact() throws {
        let config = try loader.load(yaml: Self.source("") + "mappings: { CUSTOM_ORDER: [] }\n")
        #expect(config.mappings == [Self.customOrder: []])
    }

    @Test func aDeduplicationWindowEqualToTheRetentionIsAccepted() throws {
        let config = try loader.load(yaml: Self.source("deduplication: { header: X-Hash, window: 30d }"))
        guard case let .http(http)? = config.sources.first?.transport else {
            Issue.record("no http source: \(config.sources)")
            return
        }
        #expect(http.deduplication == RequestDeduplication(parameters: [], header: "X-Hash", windowSeconds: 2_592_000))
    }

    @Test func fiveDeduplicationParametersAreAccepted() throws {
        let config = try loader.load(yaml: Self.source("deduplication: { parameters: [body.a, body.b.c, body.d.0, headers.X-E, headers.x-f] }"))
        guard case let .http(http)? = config.sources.first?.transport else {
            Issue.record("no http source: \(config.sources)")
            return
        }
        #expect(http.deduplication?.parameters == [.body("a"), .body("b.c"), .body("d.0"), .header("X-E"), .header("x-f")])
    }

    // MARK: Problems

    @Test func httpSourcesNeedTheServer() {
        #expect(problems(Self.source("", server: "")) == [
            "http: required: source \"shop\" receives over HTTP (http: { listen: 127.0.0.1:8080 })",
        ])
    }

    @Test(arguments: [
        ("http: { listen: \"8080\" }", "http.listen: expected host:port such as 127.0.0.1:8080, got \"8080\""),
        ("http: { listen: \":8080\" }", "http.listen: expected host:port such as 127.0.0.1:8080, got \":8080\""),
        ("http: { listen: \"localhost:http\" }", "http.listen: expected host:port such as 127.0.0.1:8080, got \"localhost:http\""),
        ("http: { listen: \"127.0.0.1:70000\" }", "http.listen: expected host:port such as 127.0.0.1:8080, got \"127.0.0.1:70000\""),
        ("http: { listen: \"127.0.0.1:-1\" }", "http.listen: expected host:port such as 127.0.0.1:8080, got \"127.0.0.1:-1\""),
        ("http: { max_body: 512 }", "http.max_body: expected a size from 1KiB to 64MiB such as 1MiB, got \"512\""),
        ("http: { max_body: 65MiB }", "http.max_body: expected a size from 1KiB to 64MiB such as 1MiB, got \"65MiB\""),
        ("http: { max_body: lots }", "http.max_body: expected a size from 1KiB to 64MiB such as 1MiB, got \"lots\""),
        ("http: { read_timeout: 0s }", "http.read_timeout: expected a duration from 1s to 10m such as 30s, got \"0s\""),
        ("http: { read_timeout: 1h }", "http.read_timeout: expected a duration from 1s to 10m such as 30s, got \"1h\""),
        ("http: { port: 80 }", "http.port: unknown key (expected one of: listen, max_body, read_timeout)"),
        ("http: [ 1 ]", "http: expected a mapping (key: value), got a list"),
    ])
    func refusesBadServerSettings(yaml: String, expected: String) {
        #expect(problems(yaml) == [expected])
    }

    @Test func maxBodyBoundsAreInclusive() throws {
        #expect(try loader.load(yaml: "http: { max_body: 1KiB }").http?.maxBodyBytes == 1_024)
        #expect(try loader.load(yaml: "http: { max_body: 64MiB }").http?.maxBodyBytes == 67_108_864)
        #expect(try loader.load(yaml: "http: { max_body: 1MB }").http?.maxBodyBytes == 1_000_000)
    }

    func jwt(_ config: DaemonConfig) -> JWTAuthConfig? {
        guard case let .http(http)? = config.sources.first?.transport, case let .jwt(jwt) = http.auth else { return nil }
        return jwt
    }

    @Test func keysForARotation() throws {
        let directory = try keyDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let hmac = try loader.load(yaml: Self.auth(#"{ jwt: { algorithm: HS256, keys: [{ kid: "2026-12", secret: "${SHOP_JWT_SECRET}" }, { kid: "2026-06", secret: "${SHOP_JWT_SECRET}-old" }] } }"#))
        #expect(jwt(hmac) == JWTAuthConfig(algorithm: .hs256, keys: [
            .init(kid: "2026-12", key: .secret(Array(Self.secret.utf8))), .init(kid: "2026-06", key: .secret(Array((Self.secret + "-old").utf8))),
        ]))
        // Without ids: every key is tried.
        let unnamed = try loader.load(yaml: Self.auth(#"{ jwt: { algorithm: HS256, keys: [{ secret: "${SHOP_JWT_SECRET}" }, { secret: "${SHOP_JWT_SECRET}-old" }] } }"#))
        #expect(jwt(unnamed)?.keys.map(\.kid) == [nil, nil])
        let rsa = try loader.load(yaml: Self.auth("{ jwt: { algorithm: RS256, keys: [{ kid: new, public_key_file: keys/shop.pem }] } }"), baseDirectory: directory.path)
        #expect(jwt(rsa) == JWTAuthConfig(algorithm: .rs256, keys: [.init(kid: "new", key: .publicKeyPEM(Self.publicKeyPEM))]))
    }

    @Test(arguments: [
        // Secrets
        (#"{ jwt: { algorithm: HS256, secret: "${SHORT_SECRET}" } }"#,
         ["sources[0].http.auth.jwt.secret: HS256 needs a secret of at least 32 bytes, got 31"]),
        ("{ jwt: { algorithm: HS384 } }",
         ["sources[0].http.auth.jwt.secret: required"]),
        (#"{ jwt: { algorithm: HS256, secret: "${SHOP_JWT_SECRET}", public_key_file: keys/shop.pem } }"#,
         ["sources[0].http.auth.jwt.public_key_file: HS256 uses a shared secret, not a public key"]),
        // Public keys
        ("{ jwt: { algorithm: RS256 } }",
         ["sources[0].http.auth.jwt.public_key_file: required"]),
        ("{ jwt: { algorithm: RS256, public_key_file: keys/missing.pem } }",
         ["sources[0].http.auth.jwt.public_key_file: cannot read /nonexistent-base/keys/missing.pem"]),
        (#"{ jwt: { algorithm: RS256, public_key_file: /nonexistent-dir/key.pem } }"#,
         ["sources[0].http.auth.jwt.public_key_file: cannot read /nonexistent-dir/key.pem"]),
        (#"{ jwt: { algorithm: RS256, secret: "${SHOP_JWT_SECRET}", public_key_file: keys/missing.pem } }"#,
         ["sources[0].http.auth.jwt.secret: RS256 verifies with a public key: set public_key_file",
          "sources[0].http.auth.jwt.public_key_file: cannot read /nonexistent-base/keys/missing.pem"]),
        // Algorithms
        ("{ jwt: { algorithm: ES256, secret: x } }",
         ["sources[0].http.auth.jwt.algorithm: expected one of HS256, HS384, HS512, RS256, RS384, RS512, got \"ES256\""]),
        ("{ jwt: { algorithm: none } }",
         ["sources[0].http.auth.jwt.algorithm: expected one of HS256, HS384, HS512, RS256, RS384, RS512, got \"none\""]),
        ("{ jwt: { algorithm: hs256, secret: x } }",
         ["sources[0].http.auth.jwt.algorithm: expected one of HS256, HS384, HS512, RS256, RS384, RS512, got \"hs256\""]),
        (#"{ jwt: { secret: "${SHOP_JWT_SECRET}" } }"#,
         ["sources[0].http.auth.jwt.algorithm: required"]),
        // The shape of auth
        ("jwt",
         ["sources[0].http.auth: expected none or { jwt: { … } }, got \"jwt\""]),
        ("{}",
         ["sources[0].http.auth: expected none or { jwt: { … } }"]),
        ("{ basic: { user: a } }",
         ["sources[0].http.auth.basic: unknown key (expected one of: jwt)", "sources[0].http.auth: expected none or { jwt: { … } }"]),
        (#"{ jwt: { algorithm: HS256, secret: "${SHOP_JWT_SECRET}", kid: k1 } }"#,
         ["sources[0].http.auth.jwt.kid: unknown key (expected one of: algorithm, secret, public_key_file, keys, audience, issuer, leeway)"]),
        // Key lists (rotation)
        (#"{ jwt: { algorithm: HS256, secret: "${SHOP_JWT_SECRET}", keys: [{ kid: a, secret: "${SHOP_JWT_SECRET}" }] } }"#,
         ["sources[0].http.auth.jwt.secret: set either keys or secret, not both (put this key in keys)"]),
        ("{ jwt: { algorithm: HS256, keys: [] } }",
         ["sources[0].http.auth.jwt.keys: expected a list of 1 to 8 keys ({ kid, secret })"]),
        ("{ jwt: { algorithm: RS256, keys: k } }",
         ["sources[0].http.auth.jwt.keys: expected a list of 1 to 8 keys ({ kid, public_key_file })"]),
        (#"{ jwt: { algorithm: HS256, keys: [{ kid: a, secret: "${SHOP_JWT_SECRET}" }, { kid: a, secret: "${SHOP_JWT_SECRET}" }] } }"#,
         ["sources[0].http.auth.jwt.keys[1].kid: \"a\" is already the kid of another key"]),
        (#"{ jwt: { algorithm: HS256, keys: [{ kid: a, secret: "${SHOP_JWT_SECRET}" }, { secret: "${SHORT_SECRET}" }] } }"#,
         ["sources[0].http.auth.jwt.keys[1].kid: required: the other keys have one, and a token's kid must name a single key",
          "sources[0].http.auth.jwt.keys[1].secret: HS256 needs a secret of at least 32 bytes, got 31"]),
        (#"{ jwt: { algorithm: HS256, keys: [{ kid: a, secret: "${SHOP_JWT_SECRET}", public_key_file: keys/shop.pem }] } }"#,
         ["sources[0].http.auth.jwt.keys[0].public_key_file: HS256 uses a shared secret, not a public key"]),
        (#"{ jwt: { algorithm: HS256, secret: "${SHOP_JWT_SECRET}", leeway: 11m } }"#,
         ["sources[0].http.auth.jwt.leeway: at most 10m, got 660s"]),
        (#"{ jwt: { algorithm: HS256, secret: "${SHOP_JWT_SECRET}", leeway: soon } }"#,
         ["sources[0].http.auth.jwt.leeway: expected a duration such as 30s, 15m, 1h or 7d, got \"soon\""]),
        (#"{ jwt: { algorithm: HS256, secret: "${NO_SUCH_SECRET}" } }"#,
         ["sources[0].http.auth.jwt.secret: environment variable NO_SUCH_SECRET is not set (write ${NO_SUCH_SECRET:-default} to give a default)",
          "sources[0].http.auth.jwt.secret: HS256 needs a secret of at least 32 bytes, got 0"]),
    ])
    func refusesBadAuth(auth: String, expected: [String]) {
        #expect(problems(Self.auth(auth)) == expected)
    }

    @Test func refusesMissingAuth() {
        #expect(problems("""
            http: { listen: 127.0.0.1:8080 }
            sources:
              - name: shop
                http: { event_type: CUSTOM_ORDER }
            """) == ["sources[0].http.auth: required: none (anyone who knows the URL may send) or { jwt: { … } }"])
    }

    @Test func refusesAFileThatHoldsNoPublicKey() throws {
        let directory = try keyDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let yaml = Self.auth("{ jwt: { algorithm: RS256, public_key_file: keys/not-a-key.pem } }")
        let resolved = directory.appendingPathComponent("keys/not-a-key.pem").path
        #expect(problems(yaml, baseDirectory: directory.path) == [
            "sources[0].http.auth.jwt.public_key_file: \(resolved) holds no PEM public key (-----BEGIN PUBLIC KEY-----)",
        ])
        // A directory is not readable as a key either.
        let keys = directory.appendingPathComponent("keys").path
        #expect(problems(Self.auth("{ jwt: { algorithm: RS256, public_key_file: keys } }"), baseDirectory: directory.path) == [
            "sources[0].http.auth.jwt.public_key_file: cannot read \(keys)",
        ])
    }

    @Test func refusesASecretForRS256EvenWithAGoodKey() throws {
        let directory = try keyDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let yaml = Self.auth(#"{ jwt: { algorithm: RS256, secret: "${SHOP_JWT_SECRET}", public_key_file: keys/shop.pem } }"#)
        #expect(problems(yaml, baseDirectory: directory.path) == [
            "sources[0].http.auth.jwt.secret: RS256 verifies with a public key: set public_key_file",
        ])
    }

    @Test(arguments: [
        ("deduplication: { parameters: [] }",
         ["sources[0].http.deduplication.parameters: name 1 to 5 parameters, got 0"]),
        ("deduplication: { parameters: [body.a, body.b, body.c, body.d, body.e, body.f] }",
         ["sources[0].http.deduplication.parameters: name 1 to 5 parameters, got 6"]),
        ("deduplication: { parameters: [body.a, foo.bar] }",
         ["sources[0].http.deduplication.parameters[1]: expected body.<flattened key> or headers.<name>, got \"foo.bar\""]),
        ("deduplication: { parameters: [body.] }",
         ["sources[0].http.deduplication.parameters[0]: expected body.<flattened key> or headers.<name>, got \"body.\""]),
        ("deduplication: { parameters: body.a }",
         ["sources[0].http.deduplication.parameters: expected a list such as [body.order_number, headers.X-Request-ID], got \"body.a\""]),
        ("deduplication: { parameters: [body.a], header: \"X Hash\" }",
         ["sources[0].http.deduplication.header: expected a header name such as X-Dedup-Hash, got \"X Hash\""]),
        ("deduplication: { window: 1d }",
         ["sources[0].http.deduplication: name parameters, a header, or both"]),
        ("deduplication: { header: X-Hash, window: 0s }",
         ["sources[0].http.deduplication.window: must be at least 1s"]),
        ("deduplication: { header: X-Hash, window: 31d }",
         ["sources[0].http.deduplication.window: longer than idempotency.ledger_retention (2592000s): hashes would be pruned inside their window"]),
        ("deduplication: { header: X-Hash, fields: [a] }",
         ["sources[0].http.deduplication.fields: unknown key (expected one of: parameters, header, window)"]),
        ("endpoint: short",
         ["sources[0].http.endpoint: use 8 to 128 letters, digits, '-' or '_', got \"short\""]),
        ("endpoint: orders/2024",
         ["sources[0].http.endpoint: use 8 to 128 letters, digits, '-' or '_', got \"orders/2024\""]),
        ("endpoint: zamówienia-2024",
         ["sources[0].http.endpoint: use 8 to 128 letters, digits, '-' or '_', got \"zamówienia-2024\""]),
        ("contact_id: customer_email",
         ["sources[0].http.contact_id: expected body.<flattened key> or headers.<name>, got \"customer_email\""]),
        ("path: /incoming",
         ["sources[0].http.path: unknown key (expected one of: endpoint, auth, deduplication, contact_id, event_type)"]),
    ])
    func refusesBadSourceSettings(fragment: String, expected: [String]) {
        #expect(problems(Self.source(fragment)) == expected)
    }

    @Test func theDeduplicationWindowIsCheckedAgainstTheConfiguredRetention() {
        let yaml = Self.source("deduplication: { header: X-Hash, window: 2d }") + "idempotency: { ledger_retention: 1d }\n"
        #expect(problems(yaml) == [
            "sources[0].http.deduplication.window: longer than idempotency.ledger_retention (86400s): hashes would be pruned inside their window",
        ])
    }

    @Test func refusesAnEndpointTwoSourcesShare() {
        #expect(problems("""
            http: { listen: 127.0.0.1:8080 }
            sources:
              - name: shop
                http: { auth: none, event_type: CUSTOM_ORDER, endpoint: orders-2024 }
              - name: shop-eu
                http: { auth: none, event_type: CUSTOM_ORDER, endpoint: orders-2024 }
            """) == ["sources[1].http.endpoint: source \"shop\" already uses this endpoint"])
    }

    @Test(arguments: [
        ("{ auth: none }",
         ["sources[0].http.event_type: required: a fixed type such as CUSTOM_ORDER, or { from: body.type }"]),
        ("{ auth: none, event_type: \"custom order\" }",
         ["sources[0].http.event_type: use letters, digits and '_' (such as CUSTOM_ORDER), got \"custom order\""]),
        ("{ auth: none, event_type: {} }",
         ["sources[0].http.event_type.from: required"]),
        ("{ auth: none, event_type: { from: type } }",
         ["sources[0].http.event_type.from: expected body.<flattened key> or headers.<name>, got \"type\""]),
        ("{ auth: none, event_type: { field: body.type } }",
         ["sources[0].http.event_type.field: unknown key (expected one of: from)", "sources[0].http.event_type.from: required"]),
    ])
    func refusesBadEventTypes(http: String, expected: [String]) {
        #expect(problems("http: { listen: 127.0.0.1:8080 }\nsources:\n  - name: shop\n    http: \(http)\n") == expected)
    }

    static let unknownCustomOrder = "mappings.CUSTOM_ORDER: unknown event type \"CUSTOM_ORDER\" (known: USER_REGISTRATION, USER_UPDATE, "
        + "USER_BLOCKED, USER_CONSENT_UPDATE, WITHDRAWAL_REQUESTED, WITHDRAWAL_APPROVED, WITHDRAWAL_REJECTED, WITHDRAWAL_CANCELLED, "
        + "DEPOSIT_REQUESTED, DEPOSIT_APPROVED, DEPOSIT_REJECTED, DEPOSIT_CANCELLED, or a custom type an http source declares as its event_type)"

    @Test func refusesAMappingOfACustomTypeNoSourceDeclares() {
        #expect(problems("mappings: { CUSTOM_ORDER: [ { update_contact: { list: 1 } } ] }") == [Self.unknownCustomOrder])
        // An http source fixing another type does not declare it.
        #expect(problems(Self.source("contact_id: body.id").replacingOccurrences(of: "event_type: CUSTOM_ORDER", with: "event_type: CUSTOM_REFUND")
            + "mappings: { CUSTOM_ORDER: [ { update_contact: { list: 1 } } ] }\n") == [Self.unknownCustomOrder])
        // Nor does a broker source.
        #expect(problems("""
            sources:
              - name: events
                rabbitmq: { url: "amqp://127.0.0.1", queue: q }
            mappings: { CUSTOM_ORDER: [ { update_contact: { list: 1 } } ] }
            """) == [Self.unknownCustomOrder])
    }

    @Test func aTypeFromTheRequestStillNeedsAWellFormedName() {
        #expect(problems("""
            http: { listen: 127.0.0.1:8080 }
            sources:
              - name: hooks
                http: { auth: none, event_type: { from: body.type }, contact_id: body.id }
            mappings: { "custom order": [ { update_contact: { list: 1 } } ] }
            """).first?.hasPrefix("mappings.custom order: unknown event type \"custom order\"") == true)
    }

    @Test func aFixedTypeWithActionsNeedsTheContact() {
        #expect(problems(Self.source("") + "mappings: { CUSTOM_ORDER: [ { update_contact: { list: 1 } } ] }\n") == [
            "sources[0].http.contact_id: required: mappings.CUSTOM_ORDER has actions, and they need the contact (such as body.customer_email)",
        ])
    }

    @Test func aTypeFromTheRequestNeedsTheContactWhenCustomTypesHaveActions() {
        #expect(problems("""
            http: { listen: 127.0.0.1:8080 }
            sources:
              - name: hooks
                http: { auth: none, event_type: { from: body.type } }
            mappings: { CUSTOM_ORDER: [ { update_contact: { list: 1 } } ] }
            """) == [
            "sources[0].http.contact_id: required: the event type comes from the request and custom types have actions, which need the contact",
        ])
    }

    @Test func formatsMustSuitTheTransport() {
        #expect(problems("""
            http: { listen: 127.0.0.1:8080 }
            sources:
              - name: shop
                format: default
                http: { auth: none, event_type: CUSTOM_ORDER }
            """) == ["sources[0].format: an http source takes JSON bodies as format flattened, got \"default\""])
        #expect(problems("""
            sources:
              - name: events
                format: flattened
                rabbitmq: { url: "amqp://127.0.0.1", queue: q }
            """) == ["sources[0].format: the flattened format is for http sources; brokers carry the default format"])
        #expect(problems("""
            sources:
              - name: events
                format: xml
                http: { auth: none, event_type: CUSTOM_ORDER }
            http: {}
            """) == ["sources[0].format: unknown format \"xml\" (formats: default, flattened, { custom: { type_from, types } }, { proca: { list, keystore } }, { jomablue: { list } } or { altcraft_import: { reply_queue, reply_ttl, account_id } })"])
    }

    @Test func oneTransportPerSource() {
        #expect(problems("""
            http: {}
            sources:
              - name: both
                rabbitmq: { url: "amqp://127.0.0.1", queue: q }
                http: { auth: none, event_type: CUSTOM_ORDER }
              - name: none
            """) == [
            "sources[0]: one transport per source: rabbitmq, sqs or http",
            "sources[1]: name the transport: rabbitmq, sqs or http",
        ])
    }

    @Test func everyProblemOfASourceIsReportedAtOnce() {
        #expect(problems("""
            http: {}
            sources:
              - name: shop
                http:
                  endpoint: short
                  auth: { jwt: { algorithm: HS256, secret: "${SHORT_SECRET}" } }
                  deduplication: { parameters: [foo.bar] }
            """) == [
            "sources[0].http.endpoint: use 8 to 128 letters, digits, '-' or '_', got \"short\"",
            "sources[0].http.auth.jwt.secret: HS256 needs a secret of at least 32 bytes, got 31",
            "sources[0].http.event_type: required: a fixed type such as CUSTOM_ORDER, or { from: body.type }",
            "sources[0].http.deduplication.parameters[0]: expected body.<flattened key> or headers.<name>, got \"foo.bar\"",
        ])
    }

    // MARK: Sizes

    @Test(arguments: [
        ("1024", 1_024), ("0", 0), ("512KiB", 524_288), ("1MiB", 1_048_576), ("1mib", 1_048_576), ("1 MiB", 1_048_576),
        (" 2KiB ", 2_048), ("1.5KiB", 1_536), ("64MiB", 67_108_864), ("1GiB", 1_073_741_824), ("1KB", 1_000), ("1MB", 1_000_000),
        ("2GB", 2_000_000_000), ("100B", 100), ("100b", 100),
    ])
    func readsSizes(text: String, bytes: Int) {
        #expect(ByteSizeText.bytes(text) == bytes)
    }

    @Test(arguments: ["", "lots", "-1", "-1KiB", "1.5", "KiB", "1 TiB", "1e", "0x10", "infKiB", "nanMiB"])
    func refusesBadSizes(text: String) {
        #expect(ByteSizeText.bytes(text) == nil)
    }

    /// A size too large for an Int is no size: nil, not a crash of the loader.
    @Test func refusesSizesTooLargeForAnInt() async {
        await #expect(processExitsWith: .success) {
            precondition(ByteSizeText.bytes("100000000000GiB") == nil)
            precondition(ByteSizeText.bytes("999999999999GB") == nil)
        }
    }

    @Test func aHugeMaxBodyIsAProblemNotACrash() async {
        await #expect(processExitsWith: .success) {
            do throws(ConfigError) {
                _ = try ConfigLoader(environment: [:]).load(yaml: "http: { max_body: 100000000000GiB }")
                preconditionFailure("accepted")
            } catch {
                precondition(error.problems.map(\.path) == ["http.max_body"])
            }
        }
    }
}
