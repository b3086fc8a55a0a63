import CRMCore
import Foundation
import Testing

/// The real binary, as an operator runs it.
@Suite("crm-ingest command line")
struct CommandLineTests {
    @Test func validateConfigAcceptsTheDefaults() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let result = try runCRMIngest(["validate-config", repositoryRoot.appendingPathComponent("Config/crm-ingest.yaml").path], in: folder.url)
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("ok: "))
        #expect(result.stdout.contains("mapped_event_types=12"))
    }

    @Test func validateConfigListsEveryProblem() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = try folder.write("bad.yaml", """
            mappings:
              USER_REGISTRATION:
                - create_contact: { list: 1 }
                - enter_journey: {}
              USER_DELETE:
                - update_contact: { list: 1 }
            """)
        let result = try runCRMIngest(["validate-config", path], in: folder.url)
        #expect(result.status == 1)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines.first == "mappings.USER_REGISTRATION[1].enter_journey.journey: required")
        #expect(lines.last?.hasPrefix("mappings.USER_DELETE: unknown event type \"USER_DELETE\"") == true)
    }

    @Test func ingestThenContactShow() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let events = try folder.write("events.jsonl", """
            {"type":"USER_REGISTRATION","contactId":"abc123","properties":{"firstName":"Ada","email":"ada@example.com","shoeSize":38}}
            {"type":"USER_CONSENT_UPDATE","contactId":"abc123","channel":"SMS","consented":false}
            {"type":"DEPOSIT_APPROVED","contactId":"abc123","timestamp":"2020-02-05T13:20:00","amount":100.50,"transactionId":"t1","vendor":"someVendor","paymentType":"VISA"}
            {"type":"USER_BLOCKED","contactId":"abc123"}
            {"type":"DEPOSIT_APPROVED","contactId":"abc123","amount":"abc"}

            """)
        let environment = ["CRM_INGEST_DATA": folder.path("data")]
        let first = try runCRMIngest(["ingest", events], in: folder.url, environment: environment)
        #expect(first.status == 2)
        #expect(first.stdout == "applied=4 duplicate=0 skipped=0 rejected=1\n")
        #expect(first.stderr.contains("line 5: DEPOSIT_APPROVED.timestamp: required"))

        let second = try runCRMIngest(["ingest", "-"], in: folder.url, environment: environment, stdin: try String(contentsOfFile: events, encoding: .utf8))
        #expect(second.stdout == "applied=0 duplicate=4 skipped=0 rejected=1\n")

        let show = try runCRMIngest(["contact", "show", "abc123"], in: folder.url, environment: environment)
        #expect(show.status == 0)
        let json = try JSONParser().parse(show.stdout)
        #expect(json["contactId"] == .string("abc123"))
        #expect(json["list"] == .number("1"))
        #expect(json["attributes"] == .object([("email", .string("ada@example.com")), ("firstName", .string("Ada"))]))
        #expect(json["emailSubscribed"] == .bool(true))
        #expect(json["mobileSubscribed"] == .bool(true))
        #expect(json["consents"] == .object([("SMS", .bool(false))]))
        #expect(json["journeys"] == .array([.number("10")]))
        #expect(json["anonymized"] == .bool(false))
        guard case let .array(purchases)? = json["purchases"], let purchase = purchases.first else {
            Issue.record("no purchases in \(show.stdout)")
            return
        }
        #expect(purchases.count == 1)
        #expect(purchase["amount"] == .number("100.50"))
        #expect(purchase["status"] == .string("APPROVED"))
        #expect(purchase["transactionId"] == .string("t1"))
        guard case let .string(blockedUntil)? = json["blockedUntil"] else {
            Issue.record("not blocked: \(show.stdout)")
            return
        }
        let until = try Timestamp.parseISO8601(blockedUntil).get()
        let expected = Timestamp.now().adding(30, .days)
        #expect(abs(until.secondsSinceEpoch - expected.secondsSinceEpoch) < 600)
    }

    @Test func contactShowExplainsAMissingContact() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let result = try runCRMIngest(["contact", "show", "nobody"], in: folder.url, environment: ["CRM_INGEST_DATA": folder.path("data")])
        #expect(result.status == 1)
        #expect(result.stderr == "no contact nobody\n")
        #expect(result.stdout.isEmpty)
    }

    @Test func aBrokenConfigStopsIngestWithItsProblems() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let config = try folder.write("c.yaml", "mappings: { USER_UPDATE: [ { update_contact: { list: x } } ] }\n")
        let result = try runCRMIngest(["ingest", "--config", config, "-"], in: folder.url, stdin: "")
        #expect(result.status == 1)
        #expect(result.stderr.contains("mappings.USER_UPDATE[0].update_contact.list: expected a whole number, got \"x\""))
    }

    @Test func theDaemonStopsCleanlyOnSIGTERM() async throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: crmIngestBinary)
        process.arguments = ["run"]
        process.currentDirectoryURL = folder.url
        // Port 1: nothing answers, so the daemon keeps reconnecting; it must still stop cleanly. (It must not
        // consume from a broker a developer runs on 5672.)
        process.environment = ProcessInfo.processInfo.environment.merging([
            "CRM_INGEST_DATA": folder.path("data"), "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
        ]) { $1 }
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Wait until it says it runs, at most 20 s.
        var log = Data()
        let deadline = ContinuousClock.now + .seconds(20)
        while !String(decoding: log, as: UTF8.self).contains("crm-ingest running"), ContinuousClock.now < deadline {
            log.append(err.fileHandleForReading.availableData)
        }
        #expect(String(decoding: log, as: UTF8.self).contains("crm-ingest running"))
        #expect(process.isRunning)
        process.terminate() // SIGTERM
        let stopDeadline = ContinuousClock.now + .seconds(10)
        while process.isRunning, ContinuousClock.now < stopDeadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!process.isRunning)
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
        #expect(FileManager.default.fileExists(atPath: folder.path("data/crm.sqlite")))
    }
}
