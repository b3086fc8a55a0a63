import AMQPClient
import AWSSigV4
import CRMTestSupport
import CurlHTTP
import Foundation
import SQSClient
import Testing

/// `anonymize_contact` through the real daemon leaves no personal value of the contact anywhere the daemon writes:
/// the bytes of the database file, its WAL and shared-memory files (the ledger and the HTTP deduplication records
/// live there too), the SQS source's dead-letter file (refused messages of the contact, one inside an SNS envelope),
/// and the daemon's log. Scanned while the daemon still runs, right after the anonymization has settled, and again
/// after it stopped. Another contact's dead-letter record stays.
extension RabbitMQSourceTests {
    static let person = (
        email: "astrid.lindqvist.7f3a@example.se", firstName: "Astridqz", lastName: "Lindqvist-Brannmark",
        phone: "+46 70 123 45 67", city: "Kiruna-Norrbotten", newCity: "Jokkmokk-Lappland", transaction: "tx-astrid-0042",
        order: "order-astrid-9931", note: "leave at the blue door"
    )

    static func anonymizationConfig(folder: URL, url: String, queue: String, moto: MotoTestServer, sqsQueue: String) throws -> String {
        let path = folder.appendingPathComponent("crm-ingest.yaml").path
        try """
            store:
              sqlite: { path: "\(folder.appendingPathComponent("crm.sqlite").path)" }
            http: { listen: "127.0.0.1:0" }
            sources:
              - name: app-events
                rabbitmq: { url: "\(url)", queue: \(queue), prefetch: 500, lanes: 2 }
              - name: app-sqs
                sqs:
                  queue_url: "\(sqsQueue)"
                  region: \(moto.region)
                  endpoint: "\(moto.url)"
                  credentials: { access_key_id: "\(moto.credentials.accessKeyId)", secret_access_key: "\(moto.credentials.secretAccessKey)" }
                  wait_time: 1s
                  dead_letter_file: "\(folder.appendingPathComponent("sqs-dead.jsonl").path)"
              - name: shop
                http:
                  endpoint: shop-orders
                  auth: none
                  event_type: CUSTOM_ORDER
                  contact_id: body.customer_email
                  deduplication: { parameters: [body.order_number], window: 7d }
            attributes:
              - { name: firstName, headers: [firstName] }
              - { name: lastName, headers: [lastName] }
              - { name: email, headers: [email, customer_email] }
              - { name: phone, headers: [phone] }
              - { name: city, headers: [city] }
              - { name: note, headers: [note] }
            mappings:
              USER_REGISTRATION: [ { create_contact: { list: 1 } } ]
              USER_UPDATE: [ { update_contact: { list: 1 } } ]
              DEPOSIT_APPROVED: [ { create_purchase_row: { list: 1 } } ]
              USER_CONSENT_UPDATE: [ { update_contact: { list: 1 } } ]
              CUSTOM_ORDER: [ { create_contact: { list: 1 } } ]
              USER_BLOCKED: [ { anonymize_contact: { list: 1 } } ]
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Where a personal value still is: `file: value` for every occurrence of its UTF-8 bytes.
    static func occurrences(of values: [String], in paths: [String]) -> [String] {
        var found: [String] = []
        for path in paths {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            let bytes = [UInt8](data)
            for value in values where bytes.firstRange(of: Array(value.utf8)) != nil {
                found.append("\(URL(fileURLWithPath: path).lastPathComponent): \(value)")
            }
        }
        return found
    }

    @Test func anonymizationLeavesNoPersonalValueInAnyFileOrLog() async throws {
        let node = try RabbitMQTestNode.shared()
        let folder = try Self.daemonFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let queue = "anonymize-scan-\(UUID().uuidString.prefix(6))"
        try node.freshQueue(queue)
        let p = Self.person
        let moto = try MotoTestServer.shared()
        let sqsQueue = try moto.createQueue("anonymize-scan-\(UUID().uuidString.prefix(6))")
        let daemon = try DaemonProcess(
            config: try Self.anonymizationConfig(folder: folder, url: node.url, queue: queue, moto: moto, sqsQueue: sqsQueue), folder: folder
        )
        // Refused on SQS, so recorded whole in the dead-letter file: two of the person's (one wrapped by SNS), one of
        // someone else.
        let refused = #"{"type":"DEPOSIT_APPROVED","contactId":"\#(p.email)","timestamp":"2026-05-12T10:00:00Z","amount":"lots","properties":{"phone":"\#(p.phone)","note":"\#(p.note)"}}"#
        let envelope = try String(decoding: JSONSerialization.data(withJSONObject: [
            "Type": "Notification", "MessageId": "8f0c2b6e-0d2a-4c1b-9f55-2b7b0c8e1a01", "TopicArn": "arn:aws:sns:eu-west-1:123456789012:crm",
            "Message": #"{"type":"USER_UPDATE","contactId":"\#(p.email)","properties":{"lastName":"\#(p.lastName)","city":7,"x":{"y":"\#(p.firstName)"}},"bad":"#,
        ]), as: UTF8.self)
        let someoneElse = #"{"type":"USER_DELETED","contactId":"someone.else@example.org"}"#
        let sqs = SQSClient(queueURL: sqsQueue, region: moto.region, credentials: moto.credentials, endpoint: moto.url)
        #expect(try sqs.sendMessages([
            .init(id: "a", body: refused), .init(id: "b", body: envelope), .init(id: "c", body: someoneElse),
        ]).failed.isEmpty)
        let deadFile = folder.appendingPathComponent("sqs-dead.jsonl").path
        func deadRecords() -> [String] {
            ((try? String(contentsOfFile: deadFile, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }
        #expect(try await waitFor(.seconds(60)) { deadRecords().count == 3 })

        func message(_ body: String, id: String) -> AMQPPublisher.Message {
            var properties = AMQPProperties(contentType: "application/json", deliveryMode: 2)
            properties.messageId = id
            return AMQPPublisher.Message(body: Array(body.utf8), routingKey: queue, properties: properties)
        }
        // Other contacts before and after, so the person's rows share pages with rows that stay.
        func others(_ range: Range<Int>) -> [AMQPPublisher.Message] {
            range.map { message(#"{"type":"USER_REGISTRATION","contactId":"other-\#($0)@example.org","properties":{"firstName":"Other \#($0)","city":"Town \#($0 % 50)"}}"#, id: "other-\($0)") }
        }
        let publisher = try node.publisher()
        try publisher.publishAll(others(0..<800) + [
            message(#"{"type":"USER_REGISTRATION","contactId":"\#(p.email)","properties":{"firstName":"\#(p.firstName)","lastName":"\#(p.lastName)","email":"\#(p.email)","phone":"\#(p.phone)","city":"\#(p.city)"}}"#, id: "p-1"),
            message(#"{"type":"USER_UPDATE","contactId":"\#(p.email)","properties":{"city":"\#(p.newCity)"}}"#, id: "p-2"),
            message(#"{"type":"DEPOSIT_APPROVED","contactId":"\#(p.email)","timestamp":"2026-05-12T10:00:00Z","amount":25,"currency":"SEK","transactionId":"\#(p.transaction)"}"#, id: "p-3"),
            message(#"{"type":"USER_CONSENT_UPDATE","contactId":"\#(p.email)","channel":"EMAIL","consented":true}"#, id: "p-4"),
        ])
        #expect(try await waitFor(.seconds(60)) { try node.counts(queue) == (0, 0) })

        // An order through HTTP: recorded whole for deduplication.
        let port = try #require(try await listeningHTTPPort(daemon))
        let order = #"{"customer_email":"\#(p.email)","order_number":"\#(p.order)","phone":"\#(p.phone)","note":"\#(p.note)"}"#
        let response = try CurlHTTPClient().send(HTTPRequest(
            method: "POST", url: "http://127.0.0.1:\(port)/incoming/shop-orders", headers: [("Content-Type", "application/json")], body: Array(order.utf8)
        ), timeout: .seconds(10))
        #expect(response.status == 200)

        let files = ["crm.sqlite", "crm.sqlite-wal", "crm.sqlite-shm", "sqs-dead.jsonl"].map { folder.appendingPathComponent($0).path }
        let values = [p.email, p.firstName, p.lastName, p.phone, p.city, p.newCity, p.transaction, p.order, p.note]
        // The check can fail: before the anonymization every value is there (but the first city, which the update
        // overwrote: secure_delete already zeroed it).
        #expect(Set(Self.occurrences(of: values, in: files).map { $0.split(separator: " ").dropFirst().joined(separator: " ") }) == Set(values).subtracting([p.city]))

        try publisher.publishAll([message(#"{"type":"USER_BLOCKED","contactId":"\#(p.email)"}"#, id: "p-5")] + others(800..<1_000))
        publisher.close()
        #expect(try await waitFor(.seconds(60)) { try node.counts(queue) == (0, 0) && Self.appliedSoFar(daemon) >= 1_005 })
        try await Task.sleep(for: .milliseconds(500))

        #expect(deadRecords().count == 1 && deadRecords().first?.contains("someone.else@example.org") == true, "\(deadRecords())")
        let whileRunning = Self.occurrences(of: values, in: files)
        #expect(whileRunning.isEmpty, "personal values left while the daemon runs: \(whileRunning)")
        #expect(Self.occurrences(of: values, in: [daemon.logPath]).isEmpty, "in the log")

        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit(timeout: .seconds(30)))
        #expect(daemon.process.terminationStatus == 0)
        let left = Self.occurrences(of: values, in: files + [daemon.logPath])
        #expect(left.isEmpty, "personal values left after the daemon stopped: \(left)")
    }
}
