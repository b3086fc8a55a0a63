import AMQPClient
import AWSSigV4
import CRMCore
import CRMTestSupport
import Crypto
import CurlHTTP
import Foundation
import SQSClient
import Testing

/// The daemon's log at its default level holds no secret and no personal value: a full run with known passwords,
/// keys and personal data (valid events, refused ones quoting the values, HTTP requests with good and bad tokens, an
/// SQS source with a wrong secret), then the whole log searched for each of them.
extension RabbitMQSourceTests {
    static func hs256(_ payload: String, secret: String) -> String {
        func base64URL(_ bytes: some Sequence<UInt8>) -> String {
            Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        let input = base64URL(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8)) + "." + base64URL(Array(payload.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: Array(secret.utf8)))
        return input + "." + base64URL(mac)
    }

    @Test func theLogHoldsNoSecretAndNoPersonalValue() async throws {
        let node = try RabbitMQTestNode.shared()
        let moto = try MotoTestServer.shared()
        let tag = UUID().uuidString.prefix(6)
        let queue = "crm.test.privacy.\(tag)", deadLetterQueue = "crm.test.privacy.\(tag).dead"
        try node.freshQueue(queue)
        let amqpUser = "crm-privacy-\(tag)", amqpPassword = "Amqp-Pw-\(UUID().uuidString.prefix(12))"
        _ = try node.ctl("add_user", amqpUser, amqpPassword)
        _ = try node.ctl("set_permissions", "-p", "/", amqpUser, ".*", ".*", ".*")
        defer { _ = try? node.ctl("delete_user", amqpUser) }
        let jwtSecret = "jwt-secret-\(UUID().uuidString)"
        let wrongAWSSecret = "wrong-aws-secret-\(UUID().uuidString)"
        let endpoint = "privacy-\(UUID().uuidString.prefix(12).lowercased())"
        let url = try #require(URLComponents(string: node.url))
        _ = try SQSSourceTestQueue.create(moto, "privacy-\(tag)")
        let folder = try Self.daemonFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let configPath = folder.appendingPathComponent("crm-ingest.yaml").path
        try """
            store:
              sqlite: { path: "\(folder.appendingPathComponent("crm.sqlite").path)" }
            http: { listen: "127.0.0.1:0" }
            sources:
              - name: app
                rabbitmq:
                  url: "amqp://\(amqpUser):${PRIVACY_AMQP_PASSWORD}@\(url.host ?? "127.0.0.1"):\(url.port ?? 5672)/"
                  queue: \(queue)
                  dead_letter: { queue: \(deadLetterQueue) }
                  heartbeat: 5s
              - name: shop
                http:
                  endpoint: \(endpoint)
                  auth: { jwt: { algorithm: HS256, secret: "${PRIVACY_JWT_SECRET}" } }
                  event_type: CUSTOM_ORDER
                  contact_id: body.email
              - name: queue
                sqs:
                  queue_url: "\(moto.url)/123456789012/privacy-\(tag)"
                  region: \(moto.region)
                  endpoint: "\(moto.url)"
                  credentials: { access_key_id: "\(moto.credentials.accessKeyId)", secret_access_key: "${PRIVACY_AWS_SECRET}" }
            attributes:
              - { name: firstName, headers: [firstName] }
              - { name: lastName, headers: [lastName] }
              - { name: email, headers: [email] }
              - { name: mobile, headers: [mobile] }
            mappings:
              USER_REGISTRATION: [ { create_contact: { list: 1 } } ]
              DEPOSIT_APPROVED: [ { create_purchase_row: { list: 1 } } ]
              CUSTOM_ORDER: [ { update_contact: { list: 1 } } ]
            """.write(toFile: configPath, atomically: true, encoding: .utf8)
        let daemon = try DaemonProcess(config: configPath, folder: folder, environment: [
            "PRIVACY_AMQP_PASSWORD": amqpPassword, "PRIVACY_JWT_SECRET": jwtSecret, "PRIVACY_AWS_SECRET": wrongAWSSecret,
        ])
        defer { if daemon.process.isRunning { daemon.signal(SIGKILL) } }

        let (name, surname, email, phone) = ("Zelda", "Quintessa-Marlowe", "zelda.quintessa@example.org", "+4915112345678")
        let bodies = [
            #"{"type":"USER_REGISTRATION","contactId":"\#(email)","properties":{"firstName":"\#(name)","lastName":"\#(surname)","email":"\#(email)","mobile":"\#(phone)"}}"#,
            #"{"type":"DEPOSIT_APPROVED","contactId":"\#(email)","timestamp":"2024-01-01T00:00:00Z","amount":"\#(phone)"}"#,
            #"{"type":"DEPOSIT_APPROVED","contactId":"\#(email)","timestamp":"\#(surname)","amount":12}"#,
            #"{"type":"\#(surname)","contactId":"\#(email)"}"#,
            #"{"type":"USER_REGISTRATION","contactId":\#(phone.dropFirst())}"#,
        ]
        let publisher = try node.publisher()
        try publisher.publishAll(bodies.enumerated().map { index, body in
            var properties = AMQPProperties(contentType: "application/json", deliveryMode: 2)
            properties.messageId = "privacy-\(index)"
            return AMQPPublisher.Message(body: Array(body.utf8), routingKey: queue, properties: properties)
        })
        publisher.close()
        #expect(try await waitFor(.seconds(60)) { try node.counts(queue) == (0, 0) && node.counts(deadLetterQueue) == (4, 0) })

        let port = try #require(try await listeningHTTPPort(daemon))
        let http = CurlHTTPClient()
        let order = #"{"email":"\#(email)","name":"\#(name) \#(surname)","phone":"\#(phone)"}"#
        func post(_ token: String, _ body: String) throws -> Int {
            try http.send(HTTPRequest(
                method: "POST", url: "http://127.0.0.1:\(port)/incoming/\(endpoint)",
                headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")], body: Array(body.utf8)
            ), timeout: .seconds(10)).status
        }
        let claims = #"{"sub":"\#(email)","exp":\#(Int(Date().timeIntervalSince1970) + 600)}"#
        let accepted = try post(Self.hs256(claims, secret: jwtSecret), order)
        #expect(accepted == 200)
        let forged = try post(Self.hs256(claims, secret: "not-the-secret"), order)
        #expect(forged == 401)
        let invalid = try post(Self.hs256(claims, secret: jwtSecret), #"{"email":"\#(email)","name":"\#(name) \#(surname)""#)
        #expect(invalid == 400)
        // The SQS source's wrong secret is refused and logged (without the keys).
        #expect(try await waitFor(.seconds(30)) { daemon.log.contains("SQS refused our credentials") })

        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit(timeout: .seconds(15)))
        let log = daemon.log
        #expect(log.contains("message refused, dead-lettering it"), "the refusals are logged, with their reasons")
        for (what, value) in [
            ("the AMQP password", amqpPassword), ("the JWT secret", jwtSecret), ("the AWS secret", wrongAWSSecret),
            ("the AWS access key", moto.credentials.accessKeyId), ("the endpoint id", endpoint),
            ("a first name", name), ("a last name", surname), ("an email", email), ("a phone number", phone),
            ("a phone number's digits", String(phone.dropFirst())),
        ] {
            #expect(!log.contains(value), "\(what) is in the log: \(log.split(separator: "\n").filter { $0.contains(value) }.prefix(3))")
        }
    }
}

/// A queue on moto for the tests of this target.
enum SQSSourceTestQueue {
    static func create(_ server: MotoTestServer, _ name: String) throws -> String {
        try server.createQueue(name)
    }
}
