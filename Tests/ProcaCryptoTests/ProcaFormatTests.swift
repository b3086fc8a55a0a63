import CRMCore
import CRMStoreSQLite
import Foundation
import ProcaCrypto
import Testing

/// Proca messages (../shared/formats/proca.md) through the real processor into a real SQLite store.
@Suite("Proca format")
struct ProcaFormatTests {
    static let attributes = [
        AttributeDefinition(name: "email", headers: ["email"]), AttributeDefinition(name: "firstName", headers: ["firstName"]),
        AttributeDefinition(name: "lastName", headers: ["lastName"]), AttributeDefinition(name: "contactRef", headers: ["contactRef"]),
        AttributeDefinition(name: "country", headers: ["country"]),
    ]

    final class Harness: @unchecked Sendable {
        let folder: URL
        let store: SQLiteCRMStore
        let processor: EventProcessor

        init(keystore: Bool = true) throws {
            folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-proca-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
            let opener = keystore ? try ProcaDecryptor(keystoreJSON: Array(ProcaDecryptorTests.keystore.utf8)) : nil
            processor = EventProcessor(mapping: Mapping(attributes: ProcaFormatTests.attributes, actions: [:]),
                                       format: .proca(ProcaFormat(list: 1, opener: opener)))
        }

        func prepare(_ json: String) -> PreparedMessage {
            processor.prepare(IncomingMessage(body: Array(json.utf8), identity: .content, mayBeRedelivery: false,
                                              receivedAt: Timestamp(secondsSinceEpoch: 1_780_000_000), source: "proca"))
        }

        @discardableResult
        func send(_ json: String) async throws -> EventOutcome? {
            switch prepare(json) {
            case let .event(event): return try await store.apply([event], now: Timestamp(secondsSinceEpoch: 1_780_000_000))[0]
            case .skipped: return nil
            case let .rejected(error): throw error
            }
        }

        func contact(_ email: String) async throws -> ContactSnapshot? {
            if case let .found(snapshot) = try await store.contact(email, list: 1) { return snapshot }
            return nil
        }

        func remove() { try? FileManager.default.removeItem(at: folder) }
    }

    static func action(id: Int = 880412, email: String = "lena.varga@example.hu", firstName: String = "Léna", createdAt: String = "2026-04-11T14:03:29Z",
                       status: String = "null", testing: Bool = false) -> String {
        #"{"schema":"proca:action:2","stage":"deliver","actionId":\#(id),"actionPageId":2207,"campaignId":318,"orgId":77,"org":{"name":"bluesea","title":"Blue Sea Alliance"},"action":{"actionType":"register","customFields":{"comment":"Protect the reef","newsletterTopics":["ocean","climate"]},"createdAt":"\#(createdAt)","testing":\#(testing)},"contact":{"email":"\#(email)","firstName":"\#(firstName)","lastName":"Varga","contactRef":"Q2h3x0m1S8nVb4rT6yWq9Zc2Fj7Ld5Kp0Ae3Hu8Ni1o","dupeRank":0,"area":"HU","country":"HU","address":{"locality":"Budapest"}},"personalInfo":null,"campaign":{"name":"save_the_reef","title":"Save the Reef","externalId":4410,"contactSchema":"basic"},"actionPage":{"locale":"hu","name":"bluesea/save_the_reef/hu"},"tracking":null,"privacy":{"withConsent":true,"optIn":true,"givenAt":"\#(createdAt)","emailStatus":\#(status),"emailStatusChanged":null}}"#
    }

    static func emailStatus(_ status: String, email: String = "lena.varga@example.hu", changed: String = "2026-04-11T14:21:05Z") -> String {
        #"{"schema":"proca:event:2","eventType":"email_status","timestamp":"\#(changed)","supporter":{"contact":{"email":"\#(email)","contactRef":"Q2h3"},"personalInfo":null,"privacy":{"withConsent":false,"optIn":true,"emailStatus":\#(status),"emailStatusChanged":"\#(changed)"}}}"#
    }

    @Test func theDoubleOptInSequence() async throws {
        let h = try Harness()
        defer { h.remove() }
        // 1. Signed with optIn, status unknown: contact and action recorded, not subscribed.
        #expect(try await h.send(Self.action()) == .applied(notes: []))
        var lena = try #require(try await h.contact("lena.varga@example.hu"))
        #expect(lena.emailSubscribed == false)
        #expect(lena.attribute("firstName") == .string("Léna"))
        #expect(lena.attribute("contactRef") == .string("Q2h3x0m1S8nVb4rT6yWq9Zc2Fj7Ld5Kp0Ae3Hu8Ni1o"))
        #expect(lena.actions.map(\.actionType) == ["register"])
        #expect(lena.actions.first?.campaign == "save_the_reef")
        #expect(lena.actions.first?.json["fields"]?["newsletterTopics"] == .array([.string("ocean"), .string("climate")]))
        // 2. The confirmation click arrives as an email_status event: subscribed.
        try await h.send(Self.emailStatus(#""double_opt_in""#))
        lena = try #require(try await h.contact("lena.varga@example.hu"))
        #expect(lena.emailSubscribed == true)
        // 3. A later action with a null status does not undo the subscription.
        try await h.send(Self.action(id: 880500, createdAt: "2026-04-12T09:00:00Z"))
        lena = try #require(try await h.contact("lena.varga@example.hu"))
        #expect(lena.emailSubscribed == true)
        #expect(lena.actions.count == 2)
        // 4. A bounce unsubscribes with its reason; a later null-status action does not resubscribe.
        try await h.send(Self.emailStatus(#""bounce""#))
        try await h.send(Self.action(id: 880600, createdAt: "2026-04-13T09:00:00Z"))
        lena = try #require(try await h.contact("lena.varga@example.hu"))
        #expect(lena.emailSubscribed == false)
        #expect(lena.emailUnsubscribeReason == "bounce")
    }

    @Test(arguments: [
        (#""double_opt_in""#, true, nil), (#""bounce""#, false, "bounce"), (#""blocked""#, false, "blocked"),
        (#""spam""#, false, "spam"), (#""unsub""#, false, "unsub"), (#""inactive""#, false, "inactive"),
    ] as [(String, Bool, String?)])
    func eachEmailStatusValue(status: String, subscribed: Bool, reason: String?) async throws {
        let h = try Harness()
        defer { h.remove() }
        try await h.send(Self.action(status: #""double_opt_in""#)) // subscribed to start with
        try await h.send(Self.emailStatus(status))
        let lena = try #require(try await h.contact("lena.varga@example.hu"))
        #expect(lena.emailSubscribed == subscribed)
        #expect(lena.emailUnsubscribeReason == reason)
    }

    /// A double opt-in redelivered after the supporter unsubscribed (a retry from Proca's dead-letter queue) must not
    /// subscribe again: each status applies as of its `emailStatusChanged`.
    @Test func anOlderStatusArrivingLaterDoesNotUndoANewerOne() async throws {
        let h = try Harness()
        defer { h.remove() }
        try await h.send(Self.action())
        try await h.send(Self.emailStatus(#""unsub""#, changed: "2026-04-20T08:00:00Z"))
        try await h.send(Self.emailStatus(#""double_opt_in""#, changed: "2026-04-11T14:21:05Z"))
        var lena = try #require(try await h.contact("lena.varga@example.hu"))
        #expect(lena.emailSubscribed == false)
        #expect(lena.emailUnsubscribeReason == "unsub")
        // An action signed before the unsubscription, with its double opt-in status, changes nothing either.
        try await h.send(Self.action(id: 880450, createdAt: "2026-04-12T10:00:00Z", status: #""double_opt_in""#))
        lena = try #require(try await h.contact("lena.varga@example.hu"))
        #expect(lena.emailSubscribed == false)
        #expect(lena.actions.count == 2)
        // A newer opt-in does.
        try await h.send(Self.emailStatus(#""double_opt_in""#, changed: "2026-05-01T00:00:00Z"))
        #expect(try await h.contact("lena.varga@example.hu")?.emailSubscribed == true)
    }

    @Test(arguments: ["null", #""none""#, #""active""#])
    func statusesThatSayNothingChangeNothing(status: String) async throws {
        let h = try Harness()
        defer { h.remove() }
        try await h.send(Self.action(status: #""double_opt_in""#))
        #expect(try await h.send(Self.emailStatus(status)) == nil) // skipped
        #expect(try await h.contact("lena.varga@example.hu")?.emailSubscribed == true)
    }

    @Test func anEventForAnUnknownContactCreatesNothing() async throws {
        let h = try Harness()
        defer { h.remove() }
        let outcome = try await h.send(Self.emailStatus(#""double_opt_in""#, email: "nobody@example.org"))
        #expect(outcome == .applied(notes: ["email subscription: no contact nobody@example.org in list 1"]))
        #expect(try await h.store.contact("nobody@example.org", list: 1) == .notFound)
    }

    @Test func testActionsAndCampaignEventsAreSkipped() async throws {
        let h = try Harness()
        defer { h.remove() }
        #expect(try await h.send(Self.action(testing: true)) == nil)
        #expect(try await h.send(#"{"schema":"proca:event:2","eventType":"campaign_updated","timestamp":"2026-04-11T14:21:05Z","campaignId":318}"#) == nil)
        #expect(try await h.store.contact("lena.varga@example.hu", list: 1) == .notFound)
    }

    @Test func newerSupporterRecordsWinWhateverTheOrder() async throws {
        let h = try Harness()
        defer { h.remove() }
        try await h.send(Self.action(id: 2, email: "Lena.Varga@example.hu", firstName: "Lena (new)", createdAt: "2026-05-01T00:00:00Z"))
        try await h.send(Self.action(id: 1, firstName: "Lena (old)", createdAt: "2026-04-01T00:00:00Z"))
        let lena = try #require(try await h.contact("lena.varga@example.hu"))
        #expect(lena.attribute("firstName") == .string("Lena (new)"))
        #expect(lena.actions.map(\.key) == ["1", "2"])
    }

    @Test func theSameActionTwiceIsADuplicate() async throws {
        let h = try Harness()
        defer { h.remove() }
        #expect(try await h.send(Self.action()) == .applied(notes: []))
        #expect(try await h.send(Self.action()) == .duplicate)
    }

    static func encrypted(keyId: String = ProcaDecryptorTests.publicKey) -> String {
        #"{"schema":"proca:action:2","stage":"deliver","actionId":77,"action":{"actionType":"register","customFields":{},"createdAt":"2026-04-11T14:03:29Z","testing":false},"contact":{"email":null,"firstName":null,"contactRef":"abc","dupeRank":0},"personalInfo":{"payload":"\#(ProcaDecryptorTests.payload)","nonce":"\#(ProcaDecryptorTests.nonce)","encryptKey":{"id":1,"public":"\#(keyId)"},"signKey":{"id":2,"public":"\#(ProcaDecryptorTests.sender)"}},"campaign":{"name":"c"},"actionPage":{"name":"p"},"privacy":{"withConsent":true,"optIn":true,"emailStatus":null}}"#
    }

    @Test func encryptedPersonalDataIsDecrypted() async throws {
        let h = try Harness()
        defer { h.remove() }
        #expect(try await h.send(Self.encrypted()) == .applied(notes: []))
        let dana = try #require(try await h.contact("dana.kovac@example.org"))
        #expect(dana.attribute("lastName") == .string("Kovač"))
        #expect(dana.attribute("country") == .string("AT"))
    }

    @Test(arguments: [
        (true, "AAAA", "personalInfo.encryptKey.public: no key in the keystore for AAAA: not stored encrypted, dead-lettered"),
        (false, ProcaDecryptorTests.publicKey, "personalInfo: the personal data is encrypted and no keystore is configured (format.proca.keystore)"),
    ])
    func encryptedDataWithoutItsKeyIsRefused(keystore: Bool, keyId: String, reason: String) throws {
        let h = try Harness(keystore: keystore)
        defer { h.remove() }
        guard case let .rejected(error) = h.prepare(Self.encrypted(keyId: keyId)) else { Issue.record("accepted"); return }
        #expect(error.description == reason)
    }

    @Test(arguments: [
        (#"{"schema":"proca:action:1"}"#, #"schema: unknown schema "proca:action:1" (known: proca:action:2, proca:event:2)"#),
        (#"{"eventType":"email_status"}"#, "schema: required: proca:action:2 or proca:event:2"),
        (#"{"schema":"proca:event:2","eventType":"supporter_deleted"}"#, #"eventType: unknown Proca event "supporter_deleted" (known: email_status, campaign_updated, confirm_created)"#),
        (ProcaFormatTests.emailStatus(#""maybe""#), #"supporter.privacy.emailStatus: unknown status "maybe" (known: null, double_opt_in, bounce, blocked, spam, unsub, inactive, active)"#),
        (ProcaFormatTests.action(email: ""), "contact.email: required: the contact is keyed by email (null when personal data is encrypted: configure the keystore)"),
        (ProcaFormatTests.action(createdAt: "yesterday"), #"action.createdAt: expected an ISO-8601 date and time, got "yesterday""#),
        (ProcaFormatTests.emailStatus(#""unsub""#, changed: "yesterday"),
         #"supporter.privacy.emailStatusChanged: expected an ISO-8601 date and time, got "yesterday""#),
    ])
    func malformedMessagesAreRefusedWithTheirReason(json: String, reason: String) throws {
        let h = try Harness()
        defer { h.remove() }
        guard case let .rejected(error) = h.prepare(json) else { Issue.record("accepted: \(json)"); return }
        #expect(error.description == reason)
    }
}
