import CRMConfig
import CRMCore
import CRMIngest
import CRMStoreSQLite
import Foundation
import CRMTestSupport
import Logging
import Testing

@Suite("Ingest runner")
struct IngestRunnerTests {
    final class Rejections: @unchecked Sendable {
        // Appended to only from the runner's task, read after it finished.
        var items: [IngestRunner.Rejection] = []
    }

    func ingest(_ text: String, folder: TemporaryFolder, name: String = "events.jsonl") async throws -> (IngestSummary, [IngestRunner.Rejection]) {
        let config = try ConfigLoader(environment: ["CRM_INGEST_DATA": folder.url.path]).load(yaml: DefaultConfiguration.yaml)
        let store = try StoreFactory.open(config.store, logger: Logger(label: "test")).store
        let file = try folder.write(name, text)
        let rejections = Rejections()
        let runner = IngestRunner(processor: config.processor, store: store, batchSize: 3)
        let summary = try await runner.run(FileHandle(forReadingAtPath: file)!, onRejected: { rejections.items.append($0) })
        return (summary, rejections.items)
    }

    func contact(_ id: String, folder: TemporaryFolder) async throws -> ContactSnapshot? {
        let store = try SQLiteCRMStore(path: folder.path("crm.sqlite"))
        if case let .found(snapshot) = try await store.contact(id, list: 1) { return snapshot }
        return nil
    }

    static let sample = """
        {"type":"USER_REGISTRATION","contactId":"abc123","properties":{"firstName":"Ada","email":"ada@example.com"}}
        {"type":"USER_CONSENT_UPDATE","contactId":"abc123","channel":"EMAIL","consented":true}
        {"type":"USER_CONSENT_UPDATE","contactId":"abc123","channel":"EMAIL","consented":false}
        {"type":"USER_CONSENT_UPDATE","contactId":"abc123","channel":"EMAIL","consented":true}
        {"type":"DEPOSIT_APPROVED","contactId":"abc123","timestamp":"2020-02-05T13:20:00","amount":100.50,"transactionId":"t1"}
        {"type":"DEPOSIT_APPROVED","contactId":"abc123","timestamp":"2020-02-05T13:20:00","amount":"abc"}
        this is not json

        {"type":"USER_DELETE","contactId":"abc123"}
        {"type":"USER_REGISTRATION","contactId":"second"}\r

        """

    @Test func appliesIdenticalLinesAndReportsRejectedOnes() async throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let (summary, rejections) = try await ingest(Self.sample, folder: folder)
        #expect(summary == IngestSummary(applied: 6, duplicate: 0, skipped: 0, rejected: 3))
        #expect(rejections == [
            .init(line: 6, reason: "DEPOSIT_APPROVED.amount: expected a number, got \"abc\""),
            .init(line: 7, reason: "invalid JSON at byte 0: invalid literal"),
            .init(line: 9, reason: "type: unknown event type \"USER_DELETE\""),
        ])
        let contact = try #require(try await contact("abc123", folder: folder))
        #expect(contact.consents[.email] == true) // on, off, on: all three applied
        #expect(contact.purchases.map(\.amount.text) == ["100.50"])
        #expect(try await self.contact("second", folder: folder) != nil)
    }

    @Test func ingestingTheSameFileTwiceChangesNothing() async throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        _ = try await ingest(Self.sample, folder: folder)
        let before = try #require(try await contact("abc123", folder: folder))
        let (summary, _) = try await ingest(Self.sample, folder: folder, name: "again.jsonl")
        #expect(summary == IngestSummary(applied: 0, duplicate: 6, skipped: 0, rejected: 3))
        #expect(try await contact("abc123", folder: folder) == before)
        // One more identical consent line appended: only it is new.
        let (more, _) = try await ingest(Self.sample + #"{"type":"USER_CONSENT_UPDATE","contactId":"abc123","channel":"EMAIL","consented":false}"# + "\n",
                                         folder: folder, name: "more.jsonl")
        #expect(more.applied == 1 && more.duplicate == 6)
        #expect(try await contact("abc123", folder: folder)?.consents[.email] == false)
    }

    @Test func unmappedTypesAreSkipped() async throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = try SQLiteCRMStore(path: folder.path("crm.sqlite"))
        let processor = EventProcessor(mapping: Mapping(attributes: [], actions: [.userRegistration: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true)]]))
        let file = try folder.write("e.jsonl", "{\"type\":\"USER_UPDATE\",\"contactId\":\"a\"}\n{\"type\":\"USER_REGISTRATION\",\"contactId\":\"a\"}\n")
        let summary = try await IngestRunner(processor: processor, store: store).run(FileHandle(forReadingAtPath: file)!)
        #expect(summary == IngestSummary(applied: 1, duplicate: 0, skipped: 1, rejected: 0))
    }

    /// A store that takes at most `limit` events per `apply` gets the batch in parts, in order, and a part that
    /// failed is retried alone: the parts before it are not applied again (they would come back as duplicates).
    @Test func aBatchGoesInTheStoresTransactionPartsEachRetriedAlone() async throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let store = PartLimitedStore(inner: try SQLiteCRMStore(path: folder.path("crm.sqlite")), limit: 4, failing: (2, StoreError(.busy, "busy for the test")))
        let processor = EventProcessor(mapping: Mapping(attributes: [], actions: [.userRegistration: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true)]]))
        let lines = (0..<10).map { #"{"type":"USER_REGISTRATION","contactId":"c\#($0)"}"# }.joined(separator: "\n")
        let file = try folder.write("e.jsonl", lines + "\n")
        let summary = try await IngestRunner(processor: processor, store: store, batchSize: 10).run(FileHandle(forReadingAtPath: file)!)
        #expect(summary == IngestSummary(applied: 10, duplicate: 0, skipped: 0, rejected: 0))
        // The second part failed once (busy) and was sent again alone.
        #expect(store.calls == [4, 4, 4, 2])
        for index in 0..<10 { #expect(try await contact("c\(index)", folder: folder) != nil) }
    }

    @Test func theEmbeddedDefaultsAreConfigCrmIngestYaml() throws {
        let shipped = try String(contentsOf: repositoryRoot.appendingPathComponent("Config/crm-ingest.yaml"), encoding: .utf8)
        #expect(DefaultConfiguration.yaml == shipped)
    }
}
