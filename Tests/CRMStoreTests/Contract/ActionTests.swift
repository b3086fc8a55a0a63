import CRMCore
import Foundation
import Testing

@Suite("Store contract: the seven actions")
struct ActionTests {
    @Test(arguments: StoreKind.allCases) func createContactAppliesDefaultsAttributesAndJourney(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        let outcome = try await h.send(registration("c1", #"{"first_name":"Ada","lastName":"Lovelace","shoe":42}"#))
        #expect(outcome == .applied(notes: []))
        let contact = try #require(try await h.contact("c1"))
        #expect(contact.attribute("firstName") == .string("Ada"))
        #expect(contact.attribute("lastName") == .string("Lovelace"))
        #expect(contact.attributes.count == 2) // "shoe" matches no attribute and is not stored
        #expect(contact.emailSubscribed == true && contact.mobileSubscribed == false)
        #expect(contact.journeys == [10])
        #expect(contact.blockedUntil == nil)
    }

    @Test(arguments: StoreKind.allCases) func createContactAgainUpdatesButKeepsSubscriptions(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind, actions: [
            .userRegistration: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true)],
            .userUpdate: [.createContact(list: 1, emailSubscribed: false, mobileSubscribed: false)],
        ])
        defer { h.remove() }
        try await h.send(registration("c1", #"{"firstName":"Ada"}"#))
        try await h.send(#"{"type":"USER_UPDATE","contactId":"c1","properties":{"firstName":"Augusta"}}"#)
        let contact = try #require(try await h.contact("c1"))
        #expect(contact.attribute("firstName") == .string("Augusta"))
        #expect(contact.emailSubscribed && contact.mobileSubscribed)
    }

    @Test(arguments: StoreKind.allCases) func updateContactLeavesAMissingContactAlone(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        let outcome = try await h.send(#"{"type":"USER_UPDATE","contactId":"ghost","properties":{"firstName":"Casper"}}"#)
        #expect(outcome == .applied(notes: ["update_contact: no contact ghost in list 1"]))
        #expect(try await h.store.contact("ghost", list: nil) == .notFound)
        #expect(try await h.count("contact_attributes") == 0)
    }

    @Test(arguments: StoreKind.allCases) func updateContactWritesAttributesAndConsent(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        try await h.send(registration("c1", #"{"firstName":"Ada"}"#))
        try await h.send(#"{"type":"USER_UPDATE","contactId":"c1","properties":{"firstName":"Ada B","vip":false,"email":null}}"#)
        try await h.send(consent("c1", "SMS", false))
        try await h.send(consent("c1", "EMAIL", true))
        let contact = try #require(try await h.contact("c1"))
        #expect(contact.attribute("firstName") == .string("Ada B"))
        #expect(contact.attribute("vip") == .bool(false))
        #expect(contact.attribute("email") == .null)
        #expect(contact.consents == [.sms: false, .email: true])
    }

    @Test(arguments: StoreKind.allCases) func setPropertyWritesTheConfiguredValue(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        let orphan = try await h.send(deposit("nobody", amount: "1", transaction: nil, type: "WITHDRAWAL_APPROVED"))
        #expect(orphan == .applied(notes: [
            "create_purchase_row: no contact nobody in list 1", "set_property: no contact nobody in list 1",
        ]))
        try await h.send(registration("c1"))
        try await h.send(deposit("c1", amount: "20", transaction: "w1", type: "WITHDRAWAL_APPROVED"))
        #expect(try await h.contact("c1")?.attribute("vip") == .bool(true))
    }

    /// Symplify's examples give a deposit and a withdrawal the same transaction id: both are rows; each kind's repeat is
    /// still one.
    @Test(arguments: StoreKind.allCases) func aDepositAndAWithdrawalMayShareATransactionId(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        try await h.send(registration("c1"))
        try await h.send(deposit("c1", amount: "10", transaction: "abc123"))
        let withdrawal = try await h.send(deposit("c1", amount: "4", transaction: "abc123", type: "WITHDRAWAL_APPROVED"))
        #expect(withdrawal == .applied(notes: []))
        let again = try await h.send(deposit("c1", amount: "4", transaction: "abc123", type: "WITHDRAWAL_APPROVED"), id: "another-message")
        #expect(again == .applied(notes: ["create_purchase_row: transaction abc123 is already recorded as APPROVED"]))
        let purchases = try #require(try await h.contact("c1")).purchases
        #expect(purchases.map(\.kind) == [.deposit, .withdrawal])
        #expect(purchases.map(\.amount.text) == ["10", "4"])
    }

    @Test(arguments: StoreKind.allCases) func purchaseRowsAreExactAndUniquePerTransactionAndStatus(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        try await h.send(registration("c1"))
        try await h.send(deposit("c1", amount: "100.50", transaction: "t1", type: "DEPOSIT_REQUESTED"))
        try await h.send(deposit("c1", amount: "100.50", transaction: "t1"))
        // The same transaction and status again, as a new message: no second row.
        let again = try await h.send(deposit("c1", amount: "100.50", transaction: "t1"), id: "another-message")
        #expect(again == .applied(notes: ["create_purchase_row: transaction t1 is already recorded as APPROVED"]))
        // Without a transaction id every event is its own row.
        try await h.send(deposit("c1", amount: "1e1", transaction: nil), id: "x1")
        try await h.send(deposit("c1", amount: "1e1", transaction: nil), id: "x2")
        let purchases = try #require(try await h.contact("c1")).purchases
        #expect(purchases.count == 4)
        #expect(purchases.map(\.status) == [.requested, .approved, .approved, .approved])
        #expect(purchases[0].amount.text == "100.50")
        #expect(purchases[2].amount.text == "10")
        #expect(purchases[0].currency == "EUR" && purchases[0].vendor == "v1" && purchases[0].paymentType == "VISA")
        #expect(purchases[0].occurredAt.rfc3339 == "2020-02-05T13:20:00Z")
        #expect(try await h.count("purchases") == 4)
    }

    @Test(arguments: StoreKind.allCases) func enterJourneyOncePerJourney(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind, actions: [
            .userRegistration: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true), .enterJourney(journey: 10)],
            .userUpdate: [.enterJourney(journey: 10), .enterJourney(journey: 20)],
        ])
        defer { h.remove() }
        #expect(try await h.send(#"{"type":"USER_UPDATE","contactId":"nobody"}"#) == .applied(notes: [
            "enter_journey: no contact nobody", "enter_journey: no contact nobody",
        ]))
        try await h.send(registration("c1"))
        // Already in journey 10: entered again silently, without a note.
        #expect(try await h.send(#"{"type":"USER_UPDATE","contactId":"c1"}"#) == .applied(notes: []))
        #expect(try await h.contact("c1")?.journeys == [10, 20])
        #expect(try await h.count("journey_enrollments") == 2)
    }

    @Test(arguments: StoreKind.allCases) func temporaryBlockCountsFromTheEventAndNeverShortens(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind, actions: [
            .userRegistration: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true)],
            .userBlocked: [.tempBlockContact(list: 1, findBy: .email, duration: 30, unit: .days)],
            .userUpdate: [.tempBlockContact(list: 1, findBy: .originalId, duration: 2, unit: .hours)],
        ])
        defer { h.remove() }
        try await h.send(registration("c1", #"{"email":"Ada@Example.com"}"#))
        try await h.send(registration("c2", #"{"email":"other@example.com"}"#))
        let t = StoreHarness.t0
        try await h.send(#"{"type":"USER_BLOCKED","contactId":"whoever","properties":{"email":"ada@example.COM"}}"#, at: t)
        #expect(try await h.contact("c1")?.blockedUntil == t.adding(30, .days))
        #expect(try await h.contact("c2")?.blockedUntil == nil)
        // Blocked again for less: the block stays, without a note (the contact was found).
        #expect(try await h.send(#"{"type":"USER_UPDATE","contactId":"c1"}"#, at: t.adding(1, .days)) == .applied(notes: []))
        #expect(try await h.contact("c1")?.blockedUntil == t.adding(30, .days))
        let missing = try await h.send(#"{"type":"USER_BLOCKED","contactId":"x","properties":{"email":"no@one"}}"#)
        #expect(missing == .applied(notes: ["temp_block_contact: no contact with that email in list 1"]))
        let unknown = try await h.send(#"{"type":"USER_UPDATE","contactId":"ghost"}"#)
        #expect(unknown == .applied(notes: ["temp_block_contact: no contact ghost in list 1"]))
        #expect(try await h.count("contacts") == 2)
    }

    /// A temporarily blocked contact enters no journey while the block lasts (when the event is applied), both when
    /// the event found the contact itself (a registration of a contact that exists) and when the journey is its only
    /// action; each entry left out is noted, but not one of a journey the contact is in already.
    @Test(arguments: StoreKind.allCases) func aBlockedContactEntersNoJourneyUntilTheBlockEnds(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind, actions: [
            .userRegistration: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true), .enterJourney(journey: 10)],
            .userConsentUpdate: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true)],
            .userBlocked: [.tempBlockContact(list: 1, findBy: .originalId, duration: 2, unit: .hours)],
            .userUpdate: [.enterJourney(journey: 20)],
        ])
        defer { h.remove() }
        let t = StoreHarness.t0
        let until = t.adding(2, .hours).rfc3339
        try await h.send(registration("c1"), at: t)
        try await h.send(#"{"type":"USER_CONSENT_UPDATE","contactId":"c2","channel":"EMAIL","consented":true}"#, at: t)
        for id in ["c1", "c2"] { try await h.send(#"{"type":"USER_BLOCKED","contactId":"\#(id)"}"#, at: t) }
        // Within the block: neither way in enrolls.
        #expect(try await h.send(#"{"type":"USER_UPDATE","contactId":"c1"}"#, at: t.adding(1, .hours))
            == .applied(notes: ["enter_journey: contact c1 is blocked until \(until): not entered in journey 20"]))
        #expect(try await h.send(registration("c2"), at: t.adding(1, .hours))
            == .applied(notes: ["enter_journey: contact c2 is blocked until \(until): not entered in journey 10"]))
        #expect(try await h.send(registration("c1"), at: t.adding(1, .hours)) == .applied(notes: [])) // in journey 10 already
        #expect(try await h.contact("c1")?.journeys == [10])
        #expect(try await h.contact("c2")?.journeys == [])
        // After it: both do, without a note.
        #expect(try await h.send(#"{"type":"USER_UPDATE","contactId":"c1"}"#, at: t.adding(3, .hours)) == .applied(notes: []))
        #expect(try await h.send(registration("c2"), at: t.adding(3, .hours)) == .applied(notes: []))
        #expect(try await h.contact("c1")?.journeys == [10, 20])
        #expect(try await h.contact("c2")?.journeys == [10])
    }

    @Test(arguments: StoreKind.allCases) func contactInSeveralListsNeedsAList(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind, actions: [
            .userRegistration: [
                .createContact(list: 1, emailSubscribed: true, mobileSubscribed: true),
                .createContact(list: 2, emailSubscribed: false, mobileSubscribed: false),
            ],
        ])
        defer { h.remove() }
        try await h.send(registration("c1", #"{"firstName":"Ada"}"#))
        #expect(try await h.store.contact("c1", list: nil) == .inSeveralLists([1, 2]))
        #expect(try await h.contact("c1", list: 2)?.emailSubscribed == false)
        #expect(try await h.contact("c1", list: 1)?.emailSubscribed == true)
    }
}
