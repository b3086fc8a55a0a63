import CRMCore
import Foundation
import Testing

/// Altcraft profile imports through the real processor into each store: matching, creation, update_only, triggers,
/// duplicates and anonymized profiles, checked on the stored contacts.
@Suite("Store contract: Altcraft import")
struct AltcraftImportTests {
    static let attributes = StoreHarness.attributes + [
        AttributeDefinition(name: "_fname", headers: ["_fname"]), AttributeDefinition(name: "CRM_ID", headers: ["CRM_ID"]),
    ]
    static let processor = EventProcessor(
        mapping: Mapping(attributes: attributes, actions: [AltcraftImportFormat.importType: [.enterJourney(journey: 7)]]),
        format: .altcraftImport(AltcraftImportFormat())
    )

    /// Applies one request; the outcome and the reply it gets.
    static func send(
        _ json: String, _ h: StoreHarness, id: String = UUID().uuidString, processor: EventProcessor = Self.processor
    ) async throws -> (EventOutcome, JSONValue) {
        let message = IncomingMessage(body: Array(json.utf8), identity: .messageId(id), mayBeRedelivery: false, receivedAt: StoreHarness.t0, source: "altcraft")
        guard case let .event(event) = processor.prepare(message) else { throw EventError(.unresolvable, field: "", reason: "refused: \(json)") }
        let outcome = try await h.store.apply([event], now: StoreHarness.t0)[0]
        return (outcome, try JSONParser().parse(event.reply?.body(for: outcome) ?? []))
    }

    /// The seed's own example request.
    static let seedExample = #"{"account_id":1,"data":{"_fname":"John","_lname":"Doe"},"db_id":1,"email":"example@example.com","feedback_id":"abcdefghijklmnqrstuvwxyz","update_only":true}"#

    /// A contact another source created: id crm-7, email and CRM_ID attributes.
    static func seedContact(_ h: StoreHarness) async throws {
        try await h.send(registration("crm-7", #"{"email":"Example@Example.com","firstName":"Old"}"#))
        let setId = PlannedEvent(key: IdempotencyKey(value: "seed-crm-id", check: .always), type: .userUpdate, contactId: "crm-7",
                                 operations: [.setAttribute(list: 1, contactId: "crm-7", attribute: AttributeValue(name: "CRM_ID", value: .string("123420")))])
        _ = try await h.store.apply([setId], now: StoreHarness.t0)
    }

    @Test(arguments: StoreKind.allCases) func theSeedsExampleUpdatesTheContactItMatchesByEmail(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        try await Self.seedContact(h)
        let (_, reply) = try await Self.send(Self.seedExample.replacingOccurrences(of: #""data":{"#, with: #""data":{"CRM_ID":"123420","#), h)
        #expect(reply["error"] == .number("0"))
        #expect(reply["profile_id"] == .string("crm-7"))
        #expect(reply["matching_field"] == .string("email"))
        #expect(reply["feedback_id"] == .string("abcdefghijklmnqrstuvwxyz"))
        let contact = try #require(try await h.contact("crm-7"))
        #expect(contact.attribute("_fname") == .string("John"))
        #expect(contact.attribute("email") == .string("Example@Example.com"))
        #expect(contact.journeys.contains(7))
        #expect(try await h.count("contacts") == 1)
    }

    @Test(arguments: StoreKind.allCases) func updateOnlyWithoutAMatchIsAnErrorAndCreatesNothing(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        let (outcome, reply) = try await Self.send(Self.seedExample, h)
        #expect(reply["error"] == .number("2"))
        #expect(reply["error_text"] == .string(#"no profile matches email "example@example.com" in database 1, and update_only is set"#))
        #expect(reply["profile_id"] == .string(""))
        if case let .imported(result) = outcome { #expect(result.profileId == nil) } else { Issue.record("\(outcome)") }
        #expect(try await h.count("contacts") == 0)
        #expect(try await h.count("journey_enrollments") == 0)
    }

    @Test(arguments: StoreKind.allCases) func aNewProfileIsCreatedWithItsMatchAndTriggersUnlessSkipped(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        let (_, created) = try await Self.send(#"{"account_id":1,"db_id":1,"email":"new@example.com","data":{"_fname":"Ann"},"feedback_id":"f1"}"#, h)
        #expect(created["error"] == .number("0"))
        guard case let .string(id)? = created["profile_id"] else { throw EventError(.missingField, field: "profile_id", reason: "\(created)") }
        let contact = try #require(try await h.contact(id))
        #expect(contact.attribute("email") == .string("new@example.com"))
        #expect(contact.attribute("_fname") == .string("Ann"))
        #expect(contact.journeys == [7])
        let (_, quiet) = try await Self.send(#"{"account_id":1,"db_id":1,"email":"quiet@example.com","data":{},"skip_triggers":true}"#, h)
        guard case let .string(quietId)? = quiet["profile_id"] else { throw EventError(.missingField, field: "profile_id", reason: "\(quiet)") }
        #expect(try #require(try await h.contact(quietId)).journeys == [])
        // A later request by the same email, in other case, finds the same profile.
        let (_, again) = try await Self.send(#"{"account_id":1,"db_id":1,"email":"NEW@example.com","data":{"_fname":"Anne"}}"#, h)
        #expect(again["profile_id"] == .string(id))
        #expect(try #require(try await h.contact(id)).attribute("_fname") == .string("Anne"))
        #expect(try await h.count("contacts") == 2)
    }

    @Test(arguments: StoreKind.allCases) func phoneProfileIdAndCustomFieldMatching(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        try await Self.seedContact(h)
        let (_, byField) = try await Self.send(#"{"account_id":1,"db_id":1,"matching":"custom","field_name":"CRM_ID","field_value":123420,"data":{"_fname":"F"}}"#, h)
        #expect(byField["profile_id"] == .string("crm-7") && byField["matching_field"] == .string("custom"))
        let (_, byId) = try await Self.send(#"{"account_id":1,"db_id":1,"matching":"profile_id","profile_id":"crm-7","data":{"_fname":"G"}}"#, h)
        #expect(byId["profile_id"] == .string("crm-7"))
        #expect(try #require(try await h.contact("crm-7")).attribute("_fname") == .string("G"))
        let (_, unknownId) = try await Self.send(#"{"account_id":1,"db_id":1,"matching":"profile_id","profile_id":"nobody","data":{}}"#, h)
        #expect(unknownId["error"] == .number("2"))
        #expect(unknownId["error_text"] == .string(#"no profile with profile_id "nobody" in database 1"#))
        let (_, phone) = try await Self.send(#"{"account_id":1,"db_id":1,"matching":"phone","phone":"+7 900 000-00-00","data":{}}"#, h)
        let (_, samePhone) = try await Self.send(#"{"account_id":1,"db_id":1,"matching":"phone","phone":"+7(900)0000000","data":{}}"#, h)
        #expect(phone["profile_id"] != .string("") && phone["profile_id"] == samePhone["profile_id"])
        guard case let .string(phoneId)? = phone["profile_id"] else { return }
        #expect(try #require(try await h.contact(phoneId)).attribute("phone") == .string("+79000000000"))
        // Another database is another list: nothing there matches crm-7.
        let (_, otherList) = try await Self.send(#"{"account_id":1,"db_id":2,"matching":"profile_id","profile_id":"crm-7","data":{}}"#, h)
        #expect(otherList["error"] == .number("2"))
    }

    @Test(arguments: StoreKind.allCases) func aDuplicateRequestChangesNothingAndIsAnsweredAgain(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        let body = #"{"account_id":1,"db_id":1,"email":"dup@example.com","data":{"_fname":"One"},"feedback_id":"d1"}"#
        let (_, first) = try await Self.send(body, h, id: "same")
        _ = try await Self.send(#"{"account_id":1,"db_id":1,"email":"dup@example.com","data":{"_fname":"Two"}}"#, h, id: "later")
        let (outcome, again) = try await Self.send(body, h, id: "same")
        if case let .imported(result) = outcome { #expect(result.duplicate) } else { Issue.record("\(outcome)") }
        #expect(again == first)
        guard case let .string(id)? = first["profile_id"] else { return }
        #expect(try #require(try await h.contact(id)).attribute("_fname") == .string("Two"))
        #expect(try await h.count("journey_enrollments") == 1)
    }

    @Test(arguments: StoreKind.allCases) func anAnonymizedProfileIsNotImported(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind, actions: StoreHarness.standardActions.merging([.userUpdate: [.anonymizeContact(list: 1, findBy: .originalId)]]) { $1 })
        defer { h.remove() }
        try await Self.seedContact(h)
        try await h.send(#"{"type":"USER_UPDATE","contactId":"crm-7"}"#)
        let (_, reply) = try await Self.send(#"{"account_id":1,"db_id":1,"matching":"profile_id","profile_id":"crm-7","data":{"_fname":"Back"}}"#, h)
        #expect(reply["error"] == .number("3"))
        #expect(try await h.contact("crm-7") == nil)
    }

    /// A mapping may erase the imported profile before entering it in a journey: the journey then finds no contact
    /// (the SQLite writer enters the journey of a contact it knows exists without looking, unless it was erased).
    @Test(arguments: StoreKind.allCases) func aProfileErasedByItsOwnImportEntersNoJourney(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        let processor = EventProcessor(
            mapping: Mapping(attributes: Self.attributes, actions: [
                AltcraftImportFormat.importType: [.anonymizeContact(list: 1, findBy: .originalId), .enterJourney(journey: 7)],
            ]),
            format: .altcraftImport(AltcraftImportFormat())
        )
        let (outcome, _) = try await Self.send(
            #"{"account_id":1,"db_id":1,"email":"gone@example.com","data":{"_fname":"Gone"}}"#, h, processor: processor
        )
        guard case let .imported(result) = outcome, let id = result.profileId else {
            Issue.record("\(outcome)")
            return
        }
        #expect(result.notes == ["enter_journey: no contact \(id)"])
        #expect(try await h.count("journey_enrollments") == 0)
        #expect(try await h.count("contacts") == 0)
    }
}
