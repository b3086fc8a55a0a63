import CRMConfig
import CRMCore
import CRMSourceSQS
import CRMStoreSQLite
import Foundation
import SQSClient
import Testing

/// The bad-input corpus (`Tests/Fixtures/bad-input/`, written by its `generate.py`): every message case through the
/// way in its folder names, under the corpus configuration, must end exactly as `expected.tsv` says: the dead-letter
/// reason byte for byte, or the few cases that are fine (a tolerated byte-order mark). Then all of them at once,
/// between valid events, in one store batch: the valid events all apply. The HTTP cases are sent to the real server
/// by `BadInputProcessTests`.
///
/// `CRM_RECORD_BAD_INPUT=1 swift test --filter BadInputCorpusTests` rewrites `expected.tsv` from what the code does
/// now: read the diff before committing it.
@Suite("Bad-input corpus")
struct BadInputCorpusTests {
    static let root = repositoryRoot.appendingPathComponent("Tests/Fixtures/bad-input")
    static let messageFolders = ["default", "proca", "altcraft", "sns", "jomablue"]
    /// The source each folder's messages go to (Tests/Fixtures/bad-input/crm-ingest.yaml).
    static let sourceOfFolder = ["default": "app", "proca": "petitions", "altcraft": "import", "sns": "app-sns", "jomablue": "checkins"]
    static let receivedAt = Timestamp(secondsSinceEpoch: 1_780_000_000)

    struct Case: Sendable, CustomTestStringConvertible {
        var path: String
        var bytes: [UInt8]
        var testDescription: String { path }
    }

    static func cases(in folders: [String]) throws -> [Case] {
        var cases: [Case] = []
        for folder in folders {
            let names = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(folder).path).sorted()
            for name in names where name.hasSuffix(".json") {
                let data = try Data(contentsOf: root.appendingPathComponent(folder).appendingPathComponent(name))
                cases.append(Case(path: "\(folder)/\(name)", bytes: Array(data)))
            }
        }
        return cases
    }

    static func config() throws -> DaemonConfig {
        try ConfigLoader(environment: [:]).load(path: root.appendingPathComponent("crm-ingest.yaml").path)
    }

    /// What the daemon does with one case: `dead-letter: REASON`, `applies`, `skipped: TYPE` or `filtered`.
    static func outcome(of item: Case, config: DaemonConfig, id: String) throws -> (String, PlannedEvent?) {
        let folder = String(item.path.prefix { $0 != "/" })
        let sourceName = try #require(sourceOfFolder[folder])
        let source = try #require(config.sources.first { $0.name == sourceName })
        let processor = config.processor(for: source)
        let message: IncomingMessage
        if case let .sqs(sqs) = source.transport {
            // SQS bodies are text: the corpus's SQS cases are all valid UTF-8.
            let body = try #require(String(validating: item.bytes, as: UTF8.self), "\(item.path) is not UTF-8")
            let received = SQSMessage(messageId: id, receiptHandle: "r-\(id)", body: body, attributes: ["ApproximateReceiveCount": "1"])
            switch SQSSource.incoming(received, config: sqs, source: sourceName, processor: processor, receivedAt: receivedAt) {
            case let .refused(reason): return ("dead-letter: \(reason)", nil)
            case .filtered: return ("filtered", nil)
            case let .message(incoming): message = incoming
            }
        } else {
            message = IncomingMessage(body: item.bytes, identity: .messageId(id), mayBeRedelivery: false, receivedAt: receivedAt, source: sourceName)
        }
        switch processor.prepare(message) {
        case let .rejected(error): return ("dead-letter: \(error.description)", nil)
        case let .skipped(type): return ("skipped: \(type.rawValue)", nil)
        case let .event(event): return ("applies", event)
        }
    }

    /// `expected.tsv`: `folder/file<TAB>outcome`, tabs, newlines and backslashes in the outcome escaped.
    static func readExpected(_ file: String) throws -> [String: String] {
        let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
        var expected: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let tab = line.firstIndex(of: "\t") else { continue }
            expected[String(line[..<tab])] = unescape(String(line[line.index(after: tab)...]))
        }
        return expected
    }

    static func writeExpected(_ file: String, _ outcomes: [(String, String)], header: String) throws {
        var text = header
        for (path, outcome) in outcomes { text += "\(path)\t\(escape(outcome))\n" }
        try text.write(to: root.appendingPathComponent(file), atomically: true, encoding: .utf8)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\t", with: "\\t").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func unescape(_ text: String) -> String {
        var out = ""
        var escaping = false
        for character in text {
            if escaping {
                out.append(character == "t" ? "\t" : character == "n" ? "\n" : character)
                escaping = false
            } else if character == "\\" {
                escaping = true
            } else {
                out.append(character)
            }
        }
        return out
    }

    static var recording: Bool { ProcessInfo.processInfo.environment["CRM_RECORD_BAD_INPUT"] == "1" }

    @Test func theCorpusIsLargeAndCoversEveryWayIn() throws {
        let messages = try Self.cases(in: Self.messageFolders)
        let http = try Self.cases(in: ["http"])
        #expect(messages.count + http.count >= 200)
        for folder in Self.messageFolders + ["http"] {
            #expect(try Self.cases(in: [folder]).count >= 15, "\(folder) has too few cases")
        }
        // Every case has its expected outcome, and no expected outcome names a case that is gone.
        let expected = try Self.readExpected("expected.tsv")
        #expect(Set(expected.keys) == Set(messages.map(\.path)))
        let expectedHTTP = try Self.readExpected("expected-http.tsv")
        #expect(Set(expectedHTTP.keys) == Set(http.map(\.path)))
    }

    @Test func everyMessageCaseEndsAsExpected() throws {
        let config = try Self.config()
        let cases = try Self.cases(in: Self.messageFolders)
        var outcomes: [(String, String)] = []
        for (number, item) in cases.enumerated() {
            outcomes.append((item.path, try Self.outcome(of: item, config: config, id: "bad-\(number)").0))
        }
        if Self.recording {
            try Self.writeExpected("expected.tsv", outcomes, header: "# Written by CRM_RECORD_BAD_INPUT=1 swift test --filter BadInputCorpusTests; reviewed by hand.\n")
            return
        }
        let expected = try Self.readExpected("expected.tsv")
        for (path, outcome) in outcomes {
            #expect(outcome == expected[path], "\(path)")
        }
        // A refusal always says what and why: a reason of some length, never an empty one or a Swift type name.
        for (path, outcome) in outcomes where outcome.hasPrefix("dead-letter: ") {
            #expect(outcome.count > "dead-letter: ".count + 10, "\(path): \(outcome)")
            #expect(!outcome.contains("Swift.") && !outcome.contains("Error("), "\(path): \(outcome)")
        }
    }

    /// The cases that pass decoding (a byte-order mark before a valid event, a null `properties`, ...) and valid events
    /// around every case, in one batch of a real SQLite store: every valid event applies, in its place.
    @Test func badInputDoesNotTouchTheEventsAroundIt() async throws {
        let config = try Self.config()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-bad-input-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        let app = try #require(config.sources.first { $0.name == "app" })
        let processor = config.processor(for: app)

        var batch: [PlannedEvent] = []
        var validIndexes: [Int] = []
        var refused = 0
        for (number, item) in try Self.cases(in: Self.messageFolders).enumerated() {
            let body = Array(#"{"type":"USER_REGISTRATION","contactId":"good-\#(number)","properties":{"firstName":"Good \#(number)"}}"#.utf8)
            guard case let .event(good) = processor.prepare(IncomingMessage(
                body: body, identity: .messageId("good-\(number)"), mayBeRedelivery: false, receivedAt: Self.receivedAt, source: "app"
            )) else { Issue.record("a valid event was refused"); return }
            validIndexes.append(batch.count)
            batch.append(good)
            if let event = try Self.outcome(of: item, config: config, id: "bad-\(number)").1 { batch.append(event) } else { refused += 1 }
        }
        #expect(refused > 200)
        let outcomes = try await store.apply(batch, now: Self.receivedAt)
        #expect(outcomes.count == batch.count)
        for index in validIndexes {
            #expect(outcomes[index] == .applied(notes: []), "valid event at \(index): \(outcomes[index])")
        }
        for number in [0, 57, 134] {
            guard case let .found(contact) = try await store.contact("good-\(number)", list: 1) else {
                Issue.record("good-\(number) missing"); continue
            }
            #expect(contact.attribute("firstName") == .string("Good \(number)"))
        }
    }
}
