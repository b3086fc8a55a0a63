@testable import CRMIngest
import Foundation
import Logging
import Testing

@Suite("JSON log lines")
struct JSONLogHandlerTests {
    /// Logs through a handler writing to a pipe and returns the lines, decoded.
    func lines(_ body: (Logger) -> Void) throws -> [[String: Any]] {
        let pipe = Pipe()
        let output = JSONLogOutput(descriptor: pipe.fileHandleForWriting.fileDescriptor)
        var logger = Logger(label: "crm-ingest") { label in JSONLogHandler(label: label, level: .info, output: output) }
        logger[metadataKey: "component"] = "test"
        body(logger)
        try pipe.fileHandleForWriting.close()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
    }

    @Test func oneObjectALineWithTheFixedFieldsAndTheMetadata() throws {
        let lines = try lines { logger in
            logger.warning("message refused, dead-lettering it", metadata: [
                "source": "app-events", "event_id": "m-1", "contact_id": "c-9", "reason": "amount: expected a number",
            ])
            logger.debug("not written: below the level")
            logger.notice("RabbitMQ connection lost, reconnecting in 1 s")
        }
        #expect(lines.count == 2)
        let first = try #require(lines.first)
        #expect(first["level"] as? String == "warning")
        #expect(first["logger"] as? String == "crm-ingest")
        #expect(first["message"] as? String == "message refused, dead-lettering it")
        #expect(first["source"] as? String == "app-events")
        #expect(first["event_id"] as? String == "m-1")
        #expect(first["contact_id"] as? String == "c-9")
        #expect(first["component"] as? String == "test")
        #expect(first["module"] != nil)
        let time = try #require(first["time"] as? String)
        #expect(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil)
        #expect(lines.last?["level"] as? String == "notice")
    }

    @Test func quotesControlCharactersAndCollidingKeysAreEscaped() throws {
        let lines = try lines { logger in
            logger.error("line one\nline \"two\"\t\u{01}\\", metadata: ["message": "mine", "list": ["a", "b"], "map": ["k": "v"]])
        }
        let line = try #require(lines.first)
        #expect(line["message"] as? String == "line one\nline \"two\"\t\u{01}\\")
        #expect(line["meta_message"] as? String == "mine")
        #expect(line["list"] as? [String] == ["a", "b"])
        #expect(line["map"] as? [String: String] == ["k": "v"])
    }

    @Test func rfc3339InUTC() {
        #expect(JSONLogHandler.rfc3339(seconds: 0, milliseconds: 5) == "1970-01-01T00:00:00.005Z")
        #expect(JSONLogHandler.rfc3339(seconds: 1_796_099_981, milliseconds: 666) == "2026-12-01T04:39:41.666Z")
    }
}
