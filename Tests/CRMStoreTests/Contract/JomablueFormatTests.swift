import CRMCore
import Foundation
import Testing

/// Jomablue payloads (the samples of ../shared/formats/jomablue.md §8) through the real processor into each store.
@Suite("Store contract: Jomablue format")
struct JomablueFormatTests {
    static let attributes = [
        AttributeDefinition(name: "firstName", headers: ["first_name"]), AttributeDefinition(name: "lastName", headers: ["last_name"]),
        AttributeDefinition(name: "email", headers: ["email"]), AttributeDefinition(name: "company", headers: ["company"]),
        AttributeDefinition(name: "jobTitle", headers: ["job_title"]), AttributeDefinition(name: "checkedIn", headers: ["checked_in"]),
    ]

    static func harness(_ kind: StoreKind) async throws -> (StoreHarness, EventProcessor) {
        let h = try await StoreHarness(kind)
        return (h, EventProcessor(mapping: Mapping(attributes: attributes, actions: [:]), format: .jomablue(JomablueFormat(list: 1))))
    }

    static func send(_ json: String, _ h: StoreHarness, _ processor: EventProcessor, id: String = UUID().uuidString) async throws -> EventOutcome? {
        switch processor.prepare(IncomingMessage(body: Array(json.utf8), identity: .messageId(id), mayBeRedelivery: false,
                                                 receivedAt: StoreHarness.t0, source: "jomablue")) {
        case let .event(event): return try await h.store.apply([event], now: StoreHarness.t0)[0]
        case .skipped: return nil
        case let .rejected(error): throw error
        }
    }

    static func person(generatedAt: String = "2026-05-13T00:02:10.118Z", uid: String = "0035g00000AbC34AAB", jobTitle: String = "CTO", categories: String = #"[{"id":"northwind/category/12","name":"VIP"}]"#) -> String {
        #"{"resource_type":"person","generated_at":"\#(generatedAt)","context":{"event_id":"northwind/event/5","event_name":"서울 클라우드 서밋 2026","event_metadata":{"region":"APAC","cost_centre":"1500"}},"identifiers":{"first_name":"지은","last_name":"이","email":"jieun.lee@example.co.kr","phone":"+82 10-9876-5432","company":"한빛데이터","id":"northwind/event_person/51490","organisation_uid":"\#(uid)"},"data":{"job_title":"\#(jobTitle)","cancelled":false,"checked_in":true,"first_check_in":"2026-05-13T00:01:20.000Z","categories":\#(categories)}}"#
    }

    static func event(generatedAt: String = "2026-05-12T08:00:03.120Z", vipName: String = "VIP") -> String {
        #"{"resource_type":"event","generated_at":"\#(generatedAt)","identifiers":{"id":"northwind/event/5"},"data":{"name":"서울 클라우드 서밋 2026","start_time":"2026-05-12T23:30:00.000Z","timezone":"Asia/Seoul","metadata":{"region":"APAC"},"categories":[{"id":"northwind/category/11","name":"Delegate"},{"id":"northwind/category/12","name":"\#(vipName)"}]}}"#
    }

    static let lead = #"{"resource_type":"lead","generated_at":"2026-05-13T02:44:19.230Z","context":{"event_id":"northwind/event/5","person_email":"jieun.lee@example.co.kr","person_id":"northwind/event_person/51490","person_organisation_uid":"0035g00000AbC34AAB","vendor_id":"northwind/vendor/77","vendor_name":"Acme Storage"},"identifiers":{"id":"northwind/vendor_lead/9031"},"data":{"notes":"Backup, Q3 budget"}}"#
    static let participation = #"{"resource_type":"session_participation","generated_at":"2026-05-13T04:15:02.551Z","context":{"event_id":"northwind/event/5","person_first_name":"สมศรี","person_last_name":"ทองดี","person_email":"somsri@example.co.th","person_id":"northwind/event_person/51502","person_organisation_uid":"","session_id":"northwind/session/310"},"identifiers":{"id":"northwind/session_participation/44120"},"data":{"attended":true}}"#

    @Test(arguments: StoreKind.allCases) func peopleEventsLeadsAndParticipationsAreKeptAndLinked(_ kind: StoreKind) async throws {
        let (h, processor) = try await Self.harness(kind)
        defer { h.remove() }
        #expect(try await Self.send(Self.event(), h, processor) == .applied(notes: []))
        #expect(try await Self.send(Self.person(), h, processor) == .applied(notes: []))
        #expect(try await Self.send(Self.lead, h, processor) == .applied(notes: []))
        // A participation may arrive before its person (the same contact id joins them later).
        #expect(try await Self.send(Self.participation, h, processor) == .applied(notes: []))

        let person = try #require(try await h.contact("0035g00000AbC34AAB"))
        // Values in any script, byte-exact; both ids kept.
        #expect(person.attribute("firstName") == .string("지은"))
        #expect(person.attribute("company") == .string("한빛데이터"))
        #expect(person.attribute("jobTitle") == .string("CTO"))
        #expect(person.attribute("checkedIn") == .bool(true))
        #expect(person.attribute("jomablue_id") == .string("northwind/event_person/51490"))
        #expect(person.attribute("organisation_uid") == .string("0035g00000AbC34AAB"))
        #expect(person.emailSubscribed == false)
        #expect(person.records.map(\.kind) == ["lead", "person"])
        let record = try #require(person.records.first { $0.kind == "person" })
        #expect(record.eventId == "northwind/event/5")
        #expect(record.categories == [ContactRecord.Category(id: "northwind/category/12", name: "VIP")])
        #expect(try await h.count("linked_records") == 4)
    }

    @Test(arguments: StoreKind.allCases) func aRenamedCategoryShowsTheNewNameForEveryPerson(_ kind: StoreKind) async throws {
        let (h, processor) = try await Self.harness(kind)
        defer { h.remove() }
        try await Self.send(Self.event(), h, processor)
        try await Self.send(Self.person(), h, processor)
        // Renaming republishes only the event.
        try await Self.send(Self.event(generatedAt: "2026-05-14T10:00:00.000Z", vipName: "VIP 귀빈"), h, processor)
        let person = try #require(try await h.contact("0035g00000AbC34AAB"))
        #expect(person.records.first?.categories == [ContactRecord.Category(id: "northwind/category/12", name: "VIP 귀빈")])
    }

    @Test(arguments: StoreKind.allCases) func anIdenticalRepublicationIsUnchangedAndAnOlderVersionNeverWins(_ kind: StoreKind) async throws {
        let (h, processor) = try await Self.harness(kind)
        defer { h.remove() }
        #expect(try await Self.send(Self.person(), h, processor) == .applied(notes: []))
        // An admin touched the person: the same payload again, with a new SNS MessageId.
        #expect(try await Self.send(Self.person(), h, processor) == .unchanged)
        #expect(try await h.count("ledger") == 2)
        // A newer version changes the job title; a late older one does not bring it back.
        try await Self.send(Self.person(generatedAt: "2026-05-14T00:00:00.000Z", jobTitle: "CEO"), h, processor)
        let outcome = try await Self.send(Self.person(generatedAt: "2026-05-13T12:00:00.000Z", jobTitle: "Intern"), h, processor)
        #expect(outcome == .applied(notes: ["person northwind/event_person/51490: a newer version is already stored"]))
        #expect(try await h.contact("0035g00000AbC34AAB")?.attribute("jobTitle") == .string("CEO"))
    }

    @Test(arguments: StoreKind.allCases) func withoutAnOrganisationUidThePersonIsKeyedByItsJomablueId(_ kind: StoreKind) async throws {
        let (h, processor) = try await Self.harness(kind)
        defer { h.remove() }
        try await Self.send(Self.person(uid: ""), h, processor)
        let person = try #require(try await h.contact("northwind/event_person/51490"))
        #expect(person.attribute("organisation_uid") == nil)
    }

    @Test(arguments: StoreKind.allCases) func unknownResourceTypesAreSkipped(_ kind: StoreKind) async throws {
        let (h, processor) = try await Self.harness(kind)
        defer { h.remove() }
        #expect(try await Self.send(#"{"resource_type":"badge_print","generated_at":"2026-05-13T00:00:00.000Z","identifiers":{"id":"a/b/1"}}"#, h, processor) == nil)
        #expect(try await h.count("linked_records") == 0)
    }

    @Test(arguments: [
        (#"{"generated_at":"2026-05-13T00:00:00.000Z"}"#, "resource_type: required: person, event, lead or session_participation"),
        (#"{"resource_type":"person","identifiers":{"id":"a/b/1"}}"#, "generated_at: required"),
        (#"{"resource_type":"person","generated_at":"2026-05-13T00:00:00.000Z","identifiers":{"id":""}}"#, "identifiers.id: required"),
        (#"{"resource_type":"person","generated_at":"2026-05-13T00:00:00.000Z","identifiers":{"id":"a b"}}"#, #"identifiers.id: expected an id such as acme/event/5, got "a b""#),
        (#"{"resource_type":"lead","generated_at":"2026-05-13T00:00:00.000Z","identifiers":{"id":"a/l/1"},"context":{"person_id":""}}"#, "context.person_id: required: a lead names its person"),
        (#"{"resource_type":"event","generated_at":"2026-05-13T00:00:00.000Z","identifiers":{"id":"a/e/1"},"data":{"categories":"VIP"}}"#, #"data.categories: expected a list of { id, name }, got "VIP""#),
    ])
    func malformedPayloadsAreRefusedWithTheirReason(json: String, reason: String) async throws {
        // Refused before the store: one store is enough.
        let (h, processor) = try await Self.harness(.sqlite)
        defer { h.remove() }
        do {
            _ = try await Self.send(json, h, processor)
            Issue.record("accepted: \(json)")
        } catch let error as EventError {
            #expect(error.description == reason)
        }
    }
}
