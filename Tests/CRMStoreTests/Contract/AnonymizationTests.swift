import CRMCore
import Foundation
import Testing

@Suite("Store contract: anonymization")
struct AnonymizationTests {
    static let actions: [EventType: [Action]] = [
        .userRegistration: [
            .createContact(list: 1, emailSubscribed: true, mobileSubscribed: true),
            .createContact(list: 2, emailSubscribed: true, mobileSubscribed: true),
            .enterJourney(journey: 7),
        ],
        .userConsentUpdate: [.updateContact(list: 1)],
        .depositApproved: [.createPurchaseRow(list: 1)],
        .userBlocked: [.anonymizeContact(list: 1, findBy: .originalId)],
        .userUpdate: [.anonymizeContact(list: 1, findBy: .email)],
    ]

    static let secrets = ["secret-contact-4711", "ada.lovelace@example.org", "Lovelace", "Augusta", "TX-SECRET-99"]

    func populate(_ h: StoreHarness) async throws {
        // Many neighbours, so the secret rows share pages with data that stays.
        for index in 0..<300 {
            try await h.send(registration("other-\(index)", #"{"firstName":"Name\#(index)","email":"o\#(index)@example.net"}"#))
        }
        try await h.send(registration(Self.secrets[0], #"{"firstName":"Augusta","lastName":"Lovelace","email":"ada.lovelace@example.org"}"#))
        try await h.send(consent(Self.secrets[0], "EMAIL", true))
        try await h.send(deposit(Self.secrets[0], amount: "42.00", transaction: Self.secrets[4]))
        let before = try await h.storedBytes()
        for secret in Self.secrets { #expect(before.range(of: Data(secret.utf8)) != nil, "\(secret) should be stored before") }
    }

    func expectErased(_ h: StoreHarness) async throws {
        let bytes = try await h.storedBytes()
        for secret in Self.secrets {
            #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(secret) is still in the \(h.kind) store")
        }
        #expect(try await h.store.contact(Self.secrets[0], list: nil) == .anonymized)
        #expect(try await h.count("tombstones") == 1)
        // Revenue is kept, under an anonymous key; neighbours are untouched.
        #expect(try await h.count("purchases") == 1)
        #expect(try await h.contact("other-150")?.attribute("firstName") == .string("Name150"))
    }

    @Test(arguments: StoreKind.allCases) func anonymizeByIdLeavesNoPersonalByteInTheFile(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind, actions: Self.actions)
        defer { h.remove() }
        try await populate(h)
        let outcome = try await h.send(#"{"type":"USER_BLOCKED","contactId":"\#(Self.secrets[0])"}"#)
        #expect(outcome == .applied(notes: []))
        try await expectErased(h)
    }

    /// A recorded HTTP request names its contact: anonymizing the contact erases the record too.
    @Test(arguments: StoreKind.allCases) func anonymizationErasesTheContactsRecordedRequests(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind, actions: Self.actions)
        defer { h.remove() }
        try await populate(h)
        func record(_ eventId: String, contact: String, email: String) -> PlannedEvent {
            let json = #"{"body":{"customer_email":"\#(email)"},"eventId":"\#(eventId)"}"#
            return PlannedEvent(
                key: IdempotencyKey(value: "r:shop:\(eventId)", check: .recordOnly), type: EventType(rawValue: "CUSTOM_ORDER"),
                contactId: contact, operations: [.recordRequest(RequestRecord(
                    eventId: eventId, source: "shop", endpointId: "e", eventType: EventType(rawValue: "CUSTOM_ORDER"),
                    contactId: contact, receivedAt: Timestamp(secondsSinceEpoch: 1_700_000_000), json: json
                ))]
            )
        }
        let outcomes = try await h.store.apply([
            record("ev-1", contact: Self.secrets[0], email: Self.secrets[1]), record("ev-2", contact: "other-7", email: "o7@example.net"),
        ], now: Timestamp(secondsSinceEpoch: 1_700_000_000))
        #expect(outcomes == [.applied(notes: []), .applied(notes: [])])
        #expect(try await h.store.incomingRequest("ev-1") != nil)
        try await h.send(#"{"type":"USER_BLOCKED","contactId":"\#(Self.secrets[0])"}"#)
        try await expectErased(h)
        #expect(try await h.store.incomingRequest("ev-1") == nil)
        #expect(try await h.store.incomingRequest("ev-2") != nil)
    }

    @Test(arguments: StoreKind.allCases) func anonymizeByEmail(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind, actions: Self.actions)
        defer { h.remove() }
        try await populate(h)
        try await h.send(#"{"type":"USER_UPDATE","contactId":"unrelated","properties":{"email":"ADA.LOVELACE@example.org"}}"#)
        try await expectErased(h)
    }

    @Test(arguments: StoreKind.allCases) func laterEventsDoNotRecreateAnAnonymizedContact(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind, actions: Self.actions)
        defer { h.remove() }
        try await h.send(registration("gone", #"{"firstName":"Ada"}"#))
        try await h.send(#"{"type":"USER_BLOCKED","contactId":"gone"}"#)
        let later = try await h.send(registration("gone", #"{"firstName":"Ada"}"#), id: "late-registration")
        #expect(later == .applied(notes: ["contact gone was anonymized: nothing applied"]))
        #expect(try await h.store.contact("gone", list: 1) == .anonymized)
        #expect(try await h.count("contacts") == 0)
        #expect(try await h.count("contact_attributes") == 0)
        #expect(try await h.count("journey_enrollments") == 0)
    }

    /// An erasure by id that arrives before the registration (a standard SQS queue reorders; a dead letter is
    /// replayed days later) still leaves its tombstone: the registration then finds the person erased.
    @Test(arguments: StoreKind.allCases) func anErasureBeforeTheRegistrationStillHolds(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind, actions: Self.actions)
        defer { h.remove() }
        #expect(try await h.send(#"{"type":"USER_BLOCKED","contactId":"early"}"#) == .applied(notes: []))
        #expect(try await h.count("tombstones") == 1)
        let registration = try await h.send(registration("early", #"{"firstName":"Ada","email":"ada@example.org"}"#), id: "late-registration")
        #expect(registration == .applied(notes: ["contact early was anonymized: nothing applied"]))
        #expect(try await h.store.contact("early", list: 1) == .anonymized)
        #expect(try await h.count("contacts") == 0)
        // By email there is nothing to hold a tombstone by: that stays a note.
        #expect(try await h.send(#"{"type":"USER_UPDATE","contactId":"x","properties":{"email":"nobody@example.org"}}"#)
            == .applied(notes: ["anonymize_contact: no contact with that email in list 1"]))
    }
}
