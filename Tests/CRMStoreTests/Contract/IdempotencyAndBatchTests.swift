import CRMCore
import Foundation
import GRDB
import Synchronization
import Testing

@testable import CRMStoreSQLite

@Suite("Store contract: idempotency and group commit")
struct IdempotencyAndBatchTests {
    @Test(arguments: StoreKind.allCases) func aMessageIdAppliesOnce(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        try await h.send(registration("c1"))
        #expect(try await h.send(deposit("c1", amount: "5", transaction: nil), id: "m-1") == .applied(notes: []))
        #expect(try await h.send(deposit("c1", amount: "5", transaction: nil), id: "m-1") == .duplicate)
        #expect(try await h.send(deposit("c1", amount: "5", transaction: nil), id: "m-1", redelivered: true) == .duplicate)
        #expect(try await h.contact("c1")?.purchases.count == 1)
    }

    @Test(arguments: StoreKind.allCases) func identicalMessagesWithoutIdAllApplyOnFirstDelivery(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        try await h.send(registration("c1"))
        // On, off, on: two of the three are byte-identical, and all three are real.
        #expect(try await h.send(consent("c1", "EMAIL", true)) == .applied(notes: []))
        #expect(try await h.send(consent("c1", "EMAIL", false)) == .applied(notes: []))
        #expect(try await h.send(consent("c1", "EMAIL", true)) == .applied(notes: []))
        #expect(try await h.contact("c1")?.consents[.email] == true)
        // The broker redelivers the last "off": within the window it is recognised.
        #expect(try await h.send(consent("c1", "EMAIL", false), redelivered: true) == .duplicate)
        #expect(try await h.contact("c1")?.consents[.email] == true)
    }

    @Test(arguments: StoreKind.allCases) func redeliveryOutsideTheWindowApplies(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        try await h.send(registration("c1"))
        try await h.send(consent("c1", "SMS", true), at: StoreHarness.t0)
        let later = StoreHarness.t0.adding(2, .hours)
        #expect(try await h.send(consent("c1", "SMS", true), redelivered: true, at: later) == .applied(notes: []))
    }

    @Test(arguments: StoreKind.allCases) func duplicatesWithinOneBatchApplyOnce(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        let events = [
            try h.plan(registration("c1"), id: "r"),
            try h.plan(deposit("c1", amount: "1", transaction: nil), id: "d"),
            try h.plan(deposit("c1", amount: "1", transaction: nil), id: "d"),
        ]
        let outcomes = try await h.store.apply(events, now: StoreHarness.t0)
        #expect(outcomes == [.applied(notes: []), .applied(notes: []), .duplicate])
        #expect(try await h.count("purchases") == 1)
        #expect(try await h.count("ledger") == 2)
    }

    /// Batches applied at once share transactions (SQLite's group commit); each event is still checked under its
    /// own key: one message id sent in every batch applies once, every other event once.
    @Test(arguments: StoreKind.allCases) func concurrentBatchesEachCheckTheirOwnKeys(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        _ = try await h.store.apply([try h.plan(registration("c1"), id: "r")], now: StoreHarness.t0)
        let batches = try (0..<8).map { batch in
            try [
                h.plan(deposit("c1", amount: "\(batch)", transaction: nil), id: "b\(batch)-0"),
                h.plan(deposit("c1", amount: "1", transaction: nil), id: "shared"),
                h.plan(deposit("c1", amount: "\(batch)", transaction: nil), id: "b\(batch)-1"),
            ]
        }
        let store = h.store
        let outcomes = try await withThrowingTaskGroup(of: [EventOutcome].self) { group in
            for events in batches { group.addTask { try await store.apply(events, now: StoreHarness.t0) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.allSatisfy { $0[0] == .applied(notes: []) && $0[2] == .applied(notes: []) })
        #expect(outcomes.filter { $0[1] == .applied(notes: []) }.count == 1)
        #expect(outcomes.filter { $0[1] == .duplicate }.count == 7)
        #expect(try await h.count("purchases") == 17)
        #expect(try await h.count("ledger") == 18)
    }

    @Test(arguments: StoreKind.allCases) func aRefusedEventRollsBackAloneAndWhole(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind, actions: [
            .userRegistration: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true), .enterJourney(journey: 10)],
            .userUpdate: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true), .enterJourney(journey: 666)],
        ])
        defer { h.remove() }
        // A second connection installs a trigger that refuses journey 666, as a constraint would.
        try await h.refuseJourney(666, message: "journey 666 is closed")
        let events = [
            try h.plan(registration("a"), id: "1"),
            try h.plan(#"{"type":"USER_UPDATE","contactId":"b","properties":{"firstName":"Bob"}}"#, id: "2"),
            try h.plan(registration("c"), id: "3"),
        ]
        let outcomes = try await h.store.apply(events, now: StoreHarness.t0)
        #expect(outcomes[0] == .applied(notes: []))
        guard case let .failed(error) = outcomes[1] else {
            Issue.record("expected a failure, got \(outcomes[1])")
            return
        }
        #expect(error.code == .rejected)
        #expect(error.message.contains("journey 666 is closed"))
        #expect(outcomes[2] == .applied(notes: []))
        // Nothing of the refused event remains: not its contact, not its attribute, not its ledger row.
        #expect(try await h.store.contact("b", list: nil) == .notFound)
        #expect(try await h.count("contact_attributes") == 0)
        #expect(try await h.count("ledger") == 2)
        #expect(try await h.count("contacts") == 2)
        // The batch ran first without savepoints, was refused, and ran again with one per event.
        #expect(h.transactionsRedoneWithSavepoints == 1)
        if kind == .sqlite {
            // The applied events' rows of `ledger_recent` follow on from 1 without a gap.
            let seqs = try await h.sqliteStore.database.read { db in try Int64.fetchAll(db, sql: "SELECT seq FROM ledger_recent ORDER BY seq") }
            #expect(seqs == [1, 2])
        }
        // Its key was not remembered either: sent again, it is refused again, not a duplicate.
        guard case .failed = try await h.store.apply([events[1]], now: StoreHarness.t0)[0] else {
            Issue.record("the refused event's key was remembered")
            return
        }
        #expect(h.transactionsRedoneWithSavepoints == 2)
        // A batch nobody refuses runs once.
        _ = try await h.store.apply([try h.plan(registration("d"), id: "4"), try h.plan(registration("e"), id: "5")], now: StoreHarness.t0)
        #expect(h.transactionsRedoneWithSavepoints == 2)
        #expect(try await h.count("contacts") == 4)
    }

    @Test(arguments: StoreKind.allCases) func pruningForgetsOldKeys(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        try await h.send(registration("c1"))
        try await h.send(deposit("c1", amount: "1", transaction: nil), id: "old", at: StoreHarness.t0)
        #expect(try await h.store.pruneLedger(before: StoreHarness.t0.adding(1, .minutes)) == 2)
        #expect(try await h.count("ledger") == 0)
        #expect(try await h.send(deposit("c1", amount: "1", transaction: nil), id: "old") == .applied(notes: []))
    }

    /// A value far larger than any real one (8 KB that do not compress): SQLite stores it; PostgreSQL refuses it for
    /// its index of values (SQLSTATE 54000). Either way the other events of the batch apply, and the batch is not
    /// failed as a whole (which would retry it, and stall its lane, for ever).
    @Test(arguments: StoreKind.allCases) func anOversizedValueNeverHoldsUpItsBatch(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        var generator = SystemRandomNumberGenerator()
        let big = String((0..<8_000).map { _ in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".randomElement(using: &generator)! })
        let events = [
            try h.plan(registration("before"), id: "b1"),
            try h.plan(registration("huge", #"{"firstName":"\#(big)"}"#), id: "b2"),
            try h.plan(registration("after"), id: "b3"),
        ]
        let outcomes = try await h.store.apply(events, now: StoreHarness.t0)
        #expect(outcomes[0] == .applied(notes: []) && outcomes[2] == .applied(notes: []))
        switch (kind, outcomes[1]) {
        case (.sqlite, .applied): break
        case let (.postgres, .failed(error)): #expect(error.code == .rejected && error.message.contains("index row size"), "\(error)")
        default: Issue.record("\(kind): \(outcomes[1])")
        }
        #expect(try await h.contact("after") != nil)
    }
}
