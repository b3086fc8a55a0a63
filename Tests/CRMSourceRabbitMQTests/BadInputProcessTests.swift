import AMQPClient
import AWSSigV4
import CRMCore
import CRMStoreSQLite
import CRMTestSupport
import CurlHTTP
import Foundation
import SQSClient
import Testing

/// The bad-input corpus (`Tests/Fixtures/bad-input/`) through the real `crm-ingest run`: every case of the broker
/// folders published to its RabbitMQ queue or sent to its moto SQS queue between valid messages, every HTTP case
/// POSTed to the daemon's server between valid orders. Each refused case is dead-lettered with exactly the reason
/// `expected.tsv` gives (the queue's `x-crm-ingest-reason`, the SQS dead-letter file's `reason`), each HTTP case gets
/// the status and error `expected-http.tsv` gives, every valid message around them is applied, and the daemon is
/// still up at the end and stops with 0.
extension RabbitMQSourceTests {
    static let corpus = MotoTestServer.repositoryRoot.appendingPathComponent("Tests/Fixtures/bad-input")

    struct CorpusCase {
        var folder: String
        var path: String
        var bytes: [UInt8]
        var expected: String
    }

    /// The cases of `folders` with their outcomes from `expectedFile` (nil: while recording, outcomes empty).
    static func corpusCases(_ folders: [String], expectedFile: String?) throws -> [CorpusCase] {
        var expected: [String: String] = [:]
        let text = try expectedFile.map { try String(contentsOf: corpus.appendingPathComponent($0), encoding: .utf8) } ?? ""
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let tab = line.firstIndex(of: "\t") else { continue }
            expected[String(line[..<tab])] = String(line[line.index(after: tab)...])
                .replacingOccurrences(of: "\\n", with: "\n").replacingOccurrences(of: "\\t", with: "\t").replacingOccurrences(of: "\\\\", with: "\\")
        }
        var cases: [CorpusCase] = []
        for folder in folders {
            for name in try FileManager.default.contentsOfDirectory(atPath: corpus.appendingPathComponent(folder).path).sorted() where name.hasSuffix(".json") {
                let path = "\(folder)/\(name)"
                let bytes = Array(try Data(contentsOf: corpus.appendingPathComponent(path)))
                cases.append(CorpusCase(folder: folder, path: path, bytes: bytes, expected: expectedFile == nil ? "" : try #require(expected[path], "no expected outcome for \(path)")))
            }
        }
        return cases
    }

    /// A valid message for the source of `folder`, for contact number `index`.
    static func validMessage(_ folder: String, _ index: Int) -> String {
        switch folder {
        case "proca":
            return #"{"schema":"proca:action:2","stage":"deliver","actionId":\#(900_000 + index),"actionPageId":1,"campaignId":1,"orgId":1,"org":{"name":"o","title":"O"},"action":{"actionType":"register","customFields":{},"createdAt":"2026-04-11T14:03:29Z","testing":false},"contact":{"email":"good-proca-\#(index)@example.org","firstName":"Good"},"personalInfo":null,"campaign":{"name":"c","title":"C","externalId":1,"contactSchema":"basic"},"actionPage":{"locale":"en","name":"o/c/en"},"tracking":null,"privacy":{"withConsent":true,"optIn":true,"givenAt":"2026-04-11T14:03:29Z","emailStatus":null,"emailStatusChanged":null}}"#
        case "altcraft":
            return #"{"account_id":1,"db_id":1,"email":"good-import-\#(index)@example.org","data":{"_fname":"Good"}}"#
        case "jomablue":
            return #"{"resource_type":"person","generated_at":"2026-05-13T00:02:10.118Z","context":{"event_id":"northwind/event/5","event_name":"Summit"},"identifiers":{"first_name":"Good","email":"good-\#(index)@example.org","id":"northwind/event_person/\#(index)","organisation_uid":"good-jomablue-\#(index)"},"data":{"checked_in":true}}"#
        case "http":
            return #"{"customer_email":"good-order-\#(index)@example.org","order_number":"good-\#(index)","total":10}"#
        default:
            return #"{"type":"USER_REGISTRATION","contactId":"good-\#(folder)-\#(index)","properties":{"firstName":"Good"}}"#
        }
    }

    @Test func theBadInputCorpusThroughTheRealDaemon() async throws {
        let node = try RabbitMQTestNode.shared()
        let moto = try MotoTestServer.shared()
        let folder = try Self.daemonFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let queues = ["app": "bad.app", "proca": "bad.proca", "altcraft": "bad.import"]
        for queue in queues.values { try node.freshQueue(queue); try node.freshQueue(queue + ".dead") }
        try node.freshQueue("bad.import.results")
        let suffix = UUID().uuidString.prefix(6)
        let snsQueue = try moto.createQueue("bad-sns-\(suffix)")
        let checkinsQueue = try moto.createQueue("bad-checkins-\(suffix)")

        let daemon = try DaemonProcess(config: Self.corpus.appendingPathComponent("crm-ingest.yaml").path, folder: folder, environment: [
            "BAD_INPUT_DATA": folder.path, "BAD_INPUT_AMQP_URL": node.url, "BAD_INPUT_HTTP": "127.0.0.1:0",
            "BAD_INPUT_SNS_QUEUE": snsQueue, "BAD_INPUT_CHECKINS_QUEUE": checkinsQueue, "BAD_INPUT_SQS_ENDPOINT": moto.url,
            "BAD_INPUT_SQS_REGION": moto.region, "BAD_INPUT_SQS_KEY": moto.credentials.accessKeyId,
            "BAD_INPUT_SQS_SECRET": moto.credentials.secretAccessKey,
        ], arguments: ["--log-format", "json"])

        // RabbitMQ: valid, bad, valid, bad, ..., valid on each queue; the bad ones carry their path as message id.
        var deadOnQueue: [String: [String: String]] = [:]
        var validCount: [String: Int] = [:]
        let publisher = try node.publisher()
        for (folderName, queue) in [("default", "bad.app"), ("proca", "bad.proca"), ("altcraft", "bad.import")] {
            var messages: [AMQPPublisher.Message] = []
            var valid = 0
            func addValid() {
                var properties = AMQPProperties(contentType: "application/json", deliveryMode: 2)
                properties.messageId = "valid-\(folderName)-\(valid)"
                if folderName == "altcraft" { properties.replyTo = "bad.import.results"; properties.correlationId = "valid-\(valid)" }
                messages.append(AMQPPublisher.Message(body: Array(Self.validMessage(folderName, valid).utf8), routingKey: queue, properties: properties))
                valid += 1
            }
            addValid()
            for item in try Self.corpusCases([folderName], expectedFile: "expected.tsv") {
                var properties = AMQPProperties(contentType: "application/json", deliveryMode: 2)
                properties.messageId = item.path
                if folderName == "altcraft" { properties.replyTo = "bad.import.results"; properties.correlationId = item.path }
                messages.append(AMQPPublisher.Message(body: item.bytes, routingKey: queue, properties: properties))
                if item.expected.hasPrefix("dead-letter: ") {
                    deadOnQueue[queue, default: [:]][item.path] = String(item.expected.dropFirst("dead-letter: ".count))
                }
                addValid()
            }
            validCount[folderName] = valid
            try publisher.publishAll(messages)
        }
        publisher.close()

        // SQS: the same, the SNS envelopes as they are; valid messages are plain default-format bodies.
        var deadOnSQS: [String: String] = [:]  // body → reason
        var validSQS = ["sns": 0, "jomablue": 0]
        for (folderName, queue) in [("sns", snsQueue), ("jomablue", checkinsQueue)] {
            let client = SQSClient(queueURL: queue, region: moto.region, credentials: moto.credentials, endpoint: moto.url)
            var outgoing: [SQSClient.OutgoingMessage] = []
            for item in try Self.corpusCases([folderName], expectedFile: "expected.tsv") {
                let body = String(decoding: item.bytes, as: UTF8.self)
                outgoing.append(SQSClient.OutgoingMessage(id: "b\(outgoing.count)", body: body))
                if item.expected.hasPrefix("dead-letter: ") { deadOnSQS[body] = String(item.expected.dropFirst("dead-letter: ".count)) }
                outgoing.append(SQSClient.OutgoingMessage(id: "v\(outgoing.count)", body: Self.validMessage(folderName, validSQS[folderName, default: 0])))
                validSQS[folderName, default: 0] += 1
            }
            for start in stride(from: 0, to: outgoing.count, by: 10) {
                #expect(try client.sendMessages(Array(outgoing[start..<min(start + 10, outgoing.count)])).failed.isEmpty)
            }
        }

        // Every RabbitMQ case settled: the queues are empty and the dead-letter queues hold exactly the refused ones.
        let settled = try await waitFor(.seconds(120)) {
            try queues.values.allSatisfy { try node.counts($0) == (0, 0) }
                && queues.values.allSatisfy { try node.counts($0 + ".dead").ready == deadOnQueue[$0, default: [:]].count }
        }
        #expect(settled, "queues: \(queues.values.map { (try? node.counts($0)).map { "\($0)" } ?? "?" })")
        for (queue, expected) in deadOnQueue {
            let dead = try node.drain(queue + ".dead", expected: expected.count)
            #expect(dead.count == expected.count, "\(queue)")
            for delivery in dead {
                let path = delivery.properties.messageId ?? "?"
                #expect(delivery.properties.headers["x-crm-ingest-reason"]?.stringValue == expected[path], "\(path)")
            }
        }

        // HTTP: each case answers as expected-http.tsv says, valid orders around them are accepted.
        let port = try #require(try await listeningHTTPPort(daemon))
        let http = CurlHTTPClient()
        func post(_ body: [UInt8]) throws -> (Int, String) {
            let response = try http.send(HTTPRequest(
                method: "POST", url: "http://127.0.0.1:\(port)/incoming/shop-orders",
                headers: [("Content-Type", "application/json")], body: body
            ), timeout: .seconds(30))
            return (response.status, String(decoding: response.body, as: UTF8.self))
        }
        var httpOutcomes: [(String, String)] = []
        var validOrders = 0
        for item in try Self.corpusCases(["http"], expectedFile: Self.recordingHTTP ? nil : "expected-http.tsv") {
            let (status, body) = try post(item.bytes)
            let outcome = "\(status) \(Self.errorSummary(body))"
            httpOutcomes.append((item.path, outcome))
            if !Self.recordingHTTP { #expect(outcome == item.expected, "\(item.path)") }
            let (validStatus, validBody) = try post(Array(Self.validMessage("http", validOrders).utf8))
            #expect(validStatus == 200, "the valid order after \(item.path): \(validStatus) \(validBody)")
            validOrders += 1
        }
        if Self.recordingHTTP {
            var text = "# Written by CRM_RECORD_BAD_INPUT=1 (BadInputProcessTests); reviewed by hand.\n"
            for (path, outcome) in httpOutcomes {
                text += "\(path)\t\(outcome.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\t", with: "\\t").replacingOccurrences(of: "\n", with: "\\n"))\n"
            }
            try text.write(to: Self.corpus.appendingPathComponent("expected-http.tsv"), atomically: true, encoding: .utf8)
        }

        // SQS: the refused ones are in the dead-letter files with their reasons, the queues are empty.
        let deadFiles = ["bad-sns", "bad-checkins"].map { folder.appendingPathComponent("\($0).dead.jsonl").path }
        func deadRecords() -> [[String: Any]] {
            deadFiles.flatMap { path in
                ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                    try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                }
            }
        }
        // By body: moto may hand one message to two concurrent polls (SQS's at-least-once delivery), and both copies
        // are refused and recorded; `dlq replay` sends a recorded message once (`aDeadLetterRecordedTwiceIsReplayedOnce`).
        func deadBodies() -> Set<String> { Set(deadRecords().map { $0["body"] as? String ?? "" }) }
        #expect(try await waitFor(.seconds(120)) { deadBodies().count >= deadOnSQS.count })
        let records = deadRecords()
        #expect(deadBodies() == Set(deadOnSQS.keys))
        for record in records {
            let body = record["body"] as? String ?? ""
            #expect(record["reason"] as? String == deadOnSQS[body], "SQS body \(body.prefix(80))")
        }

        // Every valid message applied: contacts of every way in.
        let store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        defer { try? store.close() }
        #expect(try await waitFor(.seconds(60)) {
            if case .found = try await store.contact("good-sns-\(validSQS["sns", default: 0] - 1)", list: 1) { return true }
            return false
        })
        var missing: [String] = []
        var expectedContacts: [(String, Int)] = []
        expectedContacts += (0..<validCount["default", default: 0]).map { ("good-default-\($0)", 1) }
        expectedContacts += (0..<validCount["proca", default: 0]).map { ("good-proca-\($0)@example.org", 3) }
        expectedContacts += (0..<validSQS["sns", default: 0]).map { ("good-sns-\($0)", 1) }
        expectedContacts += (0..<validSQS["jomablue", default: 0]).map { ("good-jomablue-\($0)", 4) }
        for (id, list) in expectedContacts {
            if case .found = try await store.contact(id, list: list) { continue }
            missing.append(id)
        }
        // Altcraft's valid requests: each answered with error 0 (its profile id is the store's to choose).
        let replies = try node.drain("bad.import.results", expected: validCount["altcraft", default: 0])
        let answeredValid = replies.filter {
            $0.properties.correlationId?.hasPrefix("valid-") == true && String(decoding: $0.body, as: UTF8.self).contains(#""error":0"#)
        }
        #expect(answeredValid.count == validCount["altcraft", default: 0])
        #expect(missing.isEmpty, "valid messages not applied: \(missing.prefix(10))")

        #expect(daemon.process.isRunning)
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit(timeout: .seconds(30)))
        #expect(daemon.process.terminationStatus == 0)
        #expect(!daemon.log.contains("Fatal error"))
    }

    static var recordingHTTP: Bool { ProcessInfo.processInfo.environment["CRM_RECORD_BAD_INPUT"] == "1" }

    /// `error field: reason` from an error answer (`{"error":…,"field":…,"reason":…}`), or the body as it is.
    static func errorSummary(_ body: String) -> String {
        guard let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any], let error = json["error"] as? String else {
            return body.isEmpty ? "(no body)" : (json(body) ?? body)
        }
        let field = (json["field"] as? String).map { $0.isEmpty ? "" : "\($0): " } ?? ""
        return "\(error) \(field)\(json["reason"] as? String ?? "")"
    }

    /// The keys of a successful answer, sorted (its values vary: generated event ids).
    static func json(_ body: String) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else { return nil }
        return "ok " + object.keys.sorted().joined(separator: ",")
    }
}
