import AMQPClient
import CRMTestSupport
import CurlHTTP
import Foundation
import Testing

/// `anonymize_contact` through the real daemon leaves no personal value of the contact anywhere the daemon writes:
/// the bytes of the database file, its WAL and shared-memory files (the ledger and the HTTP deduplication records
/// live there too), and the daemon's log. Scanned while the daemon still runs, right after the anonymization has
/// settled, and again after it stopped.
extension RabbitMQSourceTests {
    static let person = (
        email: "astrid.lindqvist.7f3a@example.se", firstName: "Astridqz", lastName: "Lindqvist-Brannmark",
        phone: "+46 70 123 45 67", city: "Kiruna-Norrbotten", newCity: "Jokkmokk-Lappland", transaction: "tx-astrid-0042",
        order: "order-astrid-9931", note: "leave at the blue door"
    )

    static func anonymizationConfig(folder: URL, url: String, queue: String) throws -> String {
        let path = folder.appendingPathComponent("crm-ingest.yaml").path
        try """
            store:
              sqlite: { path: "\(folder.appendingPathComponent("crm.sqlite").path)" }
            http: { listen: "127.0.0.1:0" }
            sources:
              - name: app-events
                rabbitmq: { url: "\(url)", queue: \(queue), prefetch: 500, lanes: 2 }
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
        let daemon = try DaemonProcess(config: try Self.anonymizationConfig(folder: folder, url: node.url, queue: queue), folder: folder)

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
        let port = try #require(try await {
            _ = try await waitFor(.seconds(30)) { Self.httpPort(daemon) != nil }
            return Self.httpPort(daemon)
        }())
        let order = #"{"customer_email":"\#(p.email)","order_number":"\#(p.order)","phone":"\#(p.phone)","note":"\#(p.note)"}"#
        let response = try CurlHTTPClient().send(HTTPRequest(
            method: "POST", url: "http://127.0.0.1:\(port)/incoming/shop-orders", headers: [("Content-Type", "application/json")], body: Array(order.utf8)
        ), timeout: .seconds(10))
        #expect(response.status == 200)

        let files = ["crm.sqlite", "crm.sqlite-wal", "crm.sqlite-shm"].map { folder.appendingPathComponent($0).path }
        let values = [p.email, p.firstName, p.lastName, p.phone, p.city, p.newCity, p.transaction, p.order, p.note]
        // The check can fail: before the anonymization every value is there (but the first city, which the update
        // overwrote: secure_delete already zeroed it).
        #expect(Set(Self.occurrences(of: values, in: files).map { $0.split(separator: " ").dropFirst().joined(separator: " ") }) == Set(values).subtracting([p.city]))

        try publisher.publishAll([message(#"{"type":"USER_BLOCKED","contactId":"\#(p.email)"}"#, id: "p-5")] + others(800..<1_000))
        publisher.close()
        #expect(try await waitFor(.seconds(60)) { try node.counts(queue) == (0, 0) && Self.appliedSoFar(daemon) >= 1_005 })
        try await Task.sleep(for: .milliseconds(500))

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
