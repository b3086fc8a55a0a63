import CRMCore
@testable import CRMStoreSQLite
import Foundation
import GRDB
import Synchronization
import Testing

@Suite("SQLite store: idempotency and group commit")
struct IdempotencyAndBatchTests {
    @Test func aMessageIdAppliesOnce() async throws {
        let h = try StoreHarness()
        defer { h.remove() }
        try await h.send(registration("c1"))
        #expect(try await h.send(deposit("c1", amount: "5", transaction: nil), id: "m-1") == .applied(notes: []))
        #expect(try await h.send(deposit("c1", amount: "5", transaction: nil), id: "m-1") == .duplicate)
        #expect(try await h.send(deposit("c1", amount: "5", transaction: nil), id: "m-1", redelivered: true) == .duplicate)
        #expect(try await h.contact("c1")?.purchases.count == 1)
    }

    @Test func identicalMessagesWithoutIdAllApplyOnFirstDelivery() async throws {
        let h = try StoreHarness()
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

    @Test func redeliveryOutsideTheWindowApplies() async throws {
        let h = try StoreHarness()
        defer { h.remove() }
        try await h.send(registration("c1"))
        try await h.send(consent("c1", "SMS", true), at: StoreHarness.t0)
        let later = StoreHarness.t0.adding(2, .hours)
        #expect(try await h.send(consent("c1", "SMS", true), redelivered: true, at: later) == .applied(notes: []))
    }

    @Test func duplicatesWithinOneBatchApplyOnce() async throws {
        let h = try StoreHarness()
        defer { h.remove() }
        let events = [
            try h.plan(registration("c1"), id: "r"),
            try h.plan(deposit("c1", amount: "1", transaction: nil), id: "d"),
            try h.plan(deposit("c1", amount: "1", transaction: nil), id: "d"),
        ]
        let outcomes = try await h.store.apply(events, now: StoreHarness.t0)
        #expect(outcomes == [.applied(notes: []), .applied(notes: []), .duplicate])
        #expect(try await h.store.count("purchases") == 1)
        #expect(try await h.store.count("ledger") == 2)
    }

    @Test func aRefusedEventRollsBackAloneAndWhole() async throws {
        let h = try StoreHarness(actions: [
            .userRegistration: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true), .enterJourney(journey: 10)],
            .userUpdate: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true), .enterJourney(journey: 666)],
        ])
        defer { h.remove() }
        // A second connection installs a trigger that refuses journey 666, as a constraint would.
        let side = try DatabaseQueue(path: h.path)
        try await side.write { db in
            try db.execute(sql: """
                CREATE TRIGGER refuse_666 BEFORE INSERT ON journey_enrollments WHEN NEW.journey_id = 666
                BEGIN SELECT RAISE(ABORT, 'journey 666 is closed'); END
                """)
        }
        try side.close()
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
        #expect(try await h.store.count("contact_attributes") == 0)
        #expect(try await h.store.count("ledger") == 2)
        #expect(try await h.store.count("contacts") == 2)
        // The batch ran first without savepoints, was refused, and ran again with one per event.
        #expect(h.store.counters.transactionsRedoneWithSavepoints.load(ordering: .relaxed) == 1)
        // A batch nobody refuses runs once.
        _ = try await h.store.apply([try h.plan(registration("d"), id: "4"), try h.plan(registration("e"), id: "5")], now: StoreHarness.t0)
        #expect(h.store.counters.transactionsRedoneWithSavepoints.load(ordering: .relaxed) == 1)
        #expect(try await h.store.count("contacts") == 4)
    }

    @Test func aBusyDatabaseFailsTheWholeBatch() async throws {
        let h = try StoreHarness(busyTimeoutMilliseconds: 100)
        defer { h.remove() }
        var configuration = Configuration()
        configuration.journalMode = .wal
        let side = try DatabaseQueue(path: h.path, configuration: configuration)
        let events = [try h.plan(registration("a"), id: "1"), try h.plan(registration("b"), id: "2")]
        // The other connection, on a thread of its own, holds the write lock while the store tries.
        let locked = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        Thread {
            try? side.writeWithoutTransaction { db in
                try db.execute(sql: "BEGIN IMMEDIATE")
                locked.signal()
                release.wait()
                try db.execute(sql: "ROLLBACK")
            }
            done.signal()
        }.start()
        locked.wait()
        do {
            _ = try await h.store.apply(events, now: StoreHarness.t0)
            Issue.record("applied while another writer held the lock")
        } catch let error as StoreError {
            #expect(error.code == .busy)
            #expect(error.isTransient)
        }
        release.signal()
        done.wait()
        try side.close()
        #expect(try await h.store.count("contacts") == 0)
        #expect(try await h.store.count("ledger") == 0)
        // Once the lock is gone the same batch applies.
        #expect(try await h.store.apply(events, now: StoreHarness.t0) == [.applied(notes: []), .applied(notes: [])])
    }

    @Test func pruningForgetsOldKeys() async throws {
        let h = try StoreHarness()
        defer { h.remove() }
        try await h.send(registration("c1"))
        try await h.send(deposit("c1", amount: "1", transaction: nil), id: "old", at: StoreHarness.t0)
        #expect(try await h.store.pruneLedger(before: StoreHarness.t0.adding(1, .minutes)) == 2)
        #expect(try await h.store.count("ledger") == 0)
        #expect(try await h.send(deposit("c1", amount: "1", transaction: nil), id: "old") == .applied(notes: []))
    }

    @Test func reopeningKeepsDataAndTheTombstoneKey() async throws {
        let h = try StoreHarness(actions: [
            .userRegistration: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true)],
            .userBlocked: [.anonymizeContact(list: 1, findBy: .originalId)],
        ])
        defer { h.remove() }
        try await h.send(registration("keep"))
        try await h.send(registration("drop"))
        try await h.send(#"{"type":"USER_BLOCKED","contactId":"drop"}"#)
        try h.store.close()
        let reopened = try SQLiteCRMStore(path: h.path)
        #expect(try await reopened.contact("drop", list: nil) == .anonymized)
        if case .found = try await reopened.contact("keep", list: nil) {} else { Issue.record("keep is gone") }
        try reopened.close()
    }
}

@Suite("SQLite store: opening")
struct OpeningTests {
    /// A daemon and a `contact show` may open a new database file at the same moment: both must succeed.
    @Test func twoConnectionsOpeningANewFileAtOnceBothSucceed() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-open-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for round in 0..<15 {
            let path = folder.appendingPathComponent("race-\(round).sqlite").path
            let failures = await withTaskGroup(of: String?.self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        do {
                            let store = try SQLiteCRMStore(path: path)
                            try store.close()
                            return nil
                        } catch {
                            return "\(error)"
                        }
                    }
                }
                var failures: [String] = []
                for await failure in group { if let failure { failures.append(failure) } }
                return failures
            }
            #expect(failures == [], "round \(round)")
        }
    }
}
