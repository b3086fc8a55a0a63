import CRMCore
@testable import CRMIngest
import CRMSourceSQS
import CRMStoreSQLite
import Foundation
import Logging
import Testing

/// The hourly pruning removes dead-letter records (raw payloads) past their source's `dead_letter_retention`, and
/// only those, with the clock the daemon is given.
@Suite("Retention")
struct RetentionPrunerTests {
    @Test func deadLetterRecordsPastTheirRetentionArePruned() async throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteCRMStore(path: folder.path("crm.sqlite"))
        let now = Timestamp(secondsSinceEpoch: 1_780_000_000)
        let day: Int64 = 86_400
        let file = DeadLetterFile(path: folder.path("dead.jsonl"))
        let ages: [Int64?] = [20 * day, 15 * day, 14 * day - 60, 2 * day, 0, nil]
        for (index, age) in ages.enumerated() {
            try file.append(DeadLetterFile.Record(
                source: "s", messageId: "m\(index)", reason: "r", body: #"{"email":"person\#(index)@example.org"}"#,
                at: age.map { now.microsecondsSinceEpoch / 1_000_000 - $0 }
            ))
        }
        let pruner = LedgerPruner(
            store: store, retentionSeconds: { 30 * day }, deadLetterFiles: { [(file.path, 14 * day)] }, interval: .seconds(3600),
            now: { now }, logger: Logger(label: "test")
        )
        await pruner.pass()
        // The two older than 14 days are gone (with their bodies); the rest, and a record without a time, stay.
        #expect(try file.records().map(\.messageId) == ["m2", "m3", "m4", "m5"])
        let text = try String(contentsOfFile: file.path, encoding: .utf8)
        #expect(!text.contains("person0@") && !text.contains("person1@"))
    }
}
