import CRMCore
import CRMStoreSQLite
import Foundation
import Testing

@Suite("SQLite store: anonymization")
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
        let before = try h.databaseBytes()
        for secret in Self.secrets { #expect(before.range(of: Data(secret.utf8)) != nil, "\(secret) should be stored before") }
    }

    func expectErased(_ h: StoreHarness) async throws {
        let bytes = try h.databaseBytes()
        for secret in Self.secrets {
            #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(secret) is still in the database files")
        }
        #expect(try await h.store.contact(Self.secrets[0], list: nil) == .anonymized)
        #expect(try await h.store.count("tombstones") == 1)
        // Revenue is kept, under an anonymous key; neighbours are untouched.
        #expect(try await h.store.count("purchases") == 1)
        #expect(try await h.contact("other-150")?.attribute("firstName") == .string("Name150"))
    }

    @Test func anonymizeByIdLeavesNoPersonalByteInTheFile() async throws {
        let h = try StoreHarness(actions: Self.actions)
        defer { h.remove() }
        try await populate(h)
        let outcome = try await h.send(#"{"type":"USER_BLOCKED","contactId":"\#(Self.secrets[0])"}"#)
        #expect(outcome == .applied(notes: []))
        try await expectErased(h)
    }

    @Test func anonymizeByEmail() async throws {
        let h = try StoreHarness(actions: Self.actions)
        defer { h.remove() }
        try await populate(h)
        try await h.send(#"{"type":"USER_UPDATE","contactId":"unrelated","properties":{"email":"ADA.LOVELACE@example.org"}}"#)
        try await expectErased(h)
    }

    @Test func laterEventsDoNotRecreateAnAnonymizedContact() async throws {
        let h = try StoreHarness(actions: Self.actions)
        defer { h.remove() }
        try await h.send(registration("gone", #"{"firstName":"Ada"}"#))
        try await h.send(#"{"type":"USER_BLOCKED","contactId":"gone"}"#)
        let later = try await h.send(registration("gone", #"{"firstName":"Ada"}"#), id: "late-registration")
        #expect(later == .applied(notes: ["contact gone was anonymized: nothing applied"]))
        #expect(try await h.store.contact("gone", list: 1) == .anonymized)
        #expect(try await h.store.count("contacts") == 0)
        #expect(try await h.store.count("contact_attributes") == 0)
        #expect(try await h.store.count("journey_enrollments") == 0)
    }
}
