import CRMCore
@testable import CRMIngest
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
        #expect(result.stdout.contains("sources=2 attributes=6 mapped_event_types=13"))
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

    /// `--batch-size` sets the lines per transaction (smaller ones for a daemon writing the same file); every line
    /// still applies once, and a size out of range is refused before anything is read, naming the option.
    @Test func ingestTakesABatchSize() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let lines = (0..<7).map { #"{"type":"USER_REGISTRATION","contactId":"c\#($0)","properties":{"firstName":"A"}}"# }
        let events = try folder.write("events.jsonl", lines.joined(separator: "\n") + "\n")
        let environment = ["CRM_INGEST_DATA": folder.path("data")]
        let first = try runCRMIngest(["ingest", "--batch-size", "2", events], in: folder.url, environment: environment)
        #expect(first.status == 0)
        #expect(first.stdout == "applied=7 duplicate=0 skipped=0 rejected=0\n")
        let again = try runCRMIngest(["ingest", "--batch-size", "3", events], in: folder.url, environment: environment)
        #expect(again.stdout == "applied=0 duplicate=7 skipped=0 rejected=0\n")
        for size in ["0", "20001"] {
            let refused = try runCRMIngest(["ingest", "--batch-size", size, events], in: folder.url, environment: environment)
            #expect(refused.status == 64)
            #expect(refused.stderr.contains("--batch-size must be from 1 to 20000, got \(size)"))
        }
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

    /// The default configuration's daemon: its HTTP integration answers over real HTTP (200, then 204 for the same
    /// order), `crm-ingest integrations` prints the same generated URL it serves, and SIGTERM exits 0.
    @Test func theDaemonServesHTTPAndStopsCleanlyOnSIGTERM() async throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        // Port 1: nothing answers, so the daemon keeps reconnecting; it must still stop cleanly. (It must not
        // consume from a broker a developer runs on 5672.) Port 0: the HTTP server takes a free port.
        let environment = [
            "CRM_INGEST_DATA": folder.path("data"), "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/", "CRM_INGEST_HTTP": "127.0.0.1:0",
        ]
        let listed = try runCRMIngest(["integrations"], in: folder.url, environment: environment)
        #expect(listed.status == 0)
        let endpoint = try #require(listed.stdout.split(separator: "\n").first { $0.contains("/incoming/") }?.split(separator: "/").last.map(String.init))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: crmIngestBinary)
        process.arguments = ["run", "--log-format", "text"]
        process.currentDirectoryURL = folder.url
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // A failed expectation below must not leave the daemon running after the test.
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        // Wait until it runs and its HTTP server listens, at most 20 s.
        var log = Data()
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline,
              !(String(decoding: log, as: UTF8.self).contains("crm-ingest running") && String(decoding: log, as: UTF8.self).contains("http server listening")) {
            log.append(err.fileHandleForReading.availableData)
        }
        let text = String(decoding: log, as: UTF8.self)
        #expect(text.contains("crm-ingest running"))
        // The log shows the endpoint's first characters only (it is the integration's secret); `integrations` prints it.
        #expect(text.contains("/incoming/\(endpoint.prefix(4))…"))
        #expect(!text.contains(endpoint))
        #expect(process.isRunning)
        let port = try #require(text.split(separator: "\n").first { $0.contains("http server listening") }
            .flatMap { $0.split(separator: " ").first { $0.hasPrefix("address=") } }
            .flatMap { $0.split(separator: ":").last }.flatMap { Int($0) })
        let order = #"{"customer_email":"carol@example.com","order_number":"A-1"}"#
        let url = "http://127.0.0.1:\(port)/incoming/\(endpoint)"
        #expect(try curl(url, body: order) == 200)
        #expect(try curl(url, body: order) == 204)
        #expect(try curl("http://127.0.0.1:\(port)/healthz") == 200)
        #if os(Linux)
        // Every thread, including those started after `run` set the policy (HTTP, the store, the consumer), runs
        // under SCHED_BATCH (3), the default `--cpu-scheduling`.
        let policies = CPUScheduling.policies(of: process.processIdentifier)
        #expect(policies.count > 4)
        #expect(policies.allSatisfy { $0 == 3 })
        #endif
        // `crm-ingest health`, the container's health check: 0 for /healthz, 1 for /readyz (no broker) and for a
        // port nobody listens on.
        let healthy = try runCRMIngest(["health", "--url", "http://127.0.0.1:\(port)/healthz"], in: folder.url, environment: environment)
        #expect(healthy.status == 0)
        #expect(healthy.stdout.contains("answered 200"))
        let notReady = try runCRMIngest(["health", "--url", "http://127.0.0.1:\(port)/readyz"], in: folder.url, environment: environment)
        #expect(notReady.status == 1)
        #expect(notReady.stderr.contains("answered 503"))
        let nobody = try runCRMIngest(["health", "--url", "http://127.0.0.1:1/healthz"], in: folder.url, environment: environment)
        #expect(nobody.status == 1)
        #expect(try curl("http://127.0.0.1:\(port)/readyz") == 503) // the broker on port 1 never answers
        process.terminate() // SIGTERM
        let stopDeadline = ContinuousClock.now + .seconds(10)
        while process.isRunning, ContinuousClock.now < stopDeadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!process.isRunning)
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
        let shown = try runCRMIngest(["contact", "show", "carol@example.com"], in: folder.url, environment: environment)
        #expect(shown.status == 0)
        #expect(shown.stdout.contains(#""email": "carol@example.com""#))
    }

    /// The HTTP status of a request made with the curl command line (a client independent of ours).
    func curl(_ url: String, body: String? = nil) throws -> Int {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var arguments = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"]
        if let body { arguments += ["-H", "Content-Type: application/json", "--data-binary", body] }
        process.arguments = arguments + [url]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Int(String(decoding: data, as: UTF8.self)) ?? -1
    }
}
