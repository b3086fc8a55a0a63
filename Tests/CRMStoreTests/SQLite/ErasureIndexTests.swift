import CRMCore
import Foundation
import GRDB
import Testing

@testable import CRMStoreSQLite

/// Migration v9 dropped the indexes on `contact_id` alone of `contact_attributes`, `contact_consents` and
/// `purchases`, and made the purchases' uniqueness index a full one; v10 dropped `contacts`' own. Erasing a
/// contact, entering it in a journey and listing its lists then seek each list: they must still find every row.
@Suite("SQLite erasure without indexes on contact_id alone")
struct ErasureIndexTests {
    @Test("after the upgrade from v8, anonymizing erases the contact's attributes, consents and purchases in every list by seeks, and purchases stay unique")
    func upgradedStoreErasesEveryListBySeeks() async throws {
        let h = try await StoreHarness(.sqlite, actions: [.userBlocked: [.anonymizeContact(list: 1, findBy: .originalId)]])
        defer { h.remove() }
        // As v8 left it: `ada` in lists 1 and 3, with attributes, a consent and a purchase also in list 7 where she
        // has no contact row, and purchases with and without a transaction id; `bob` beside her in list 3.
        let upgraded = try await h.upgradedStore(from: "v8: attribute values index SQLite uses", rows: """
            INSERT INTO contacts (list_id, contact_id, email_subscribed, mobile_subscribed, created_at, updated_at)
            VALUES (1, 'ada', 1, 0, 1, 1), (3, 'ada', 1, 0, 1, 1), (3, 'bob', 1, 0, 1, 1);
            INSERT INTO contact_attributes (list_id, contact_id, name, kind, value) VALUES
                (1, 'ada', 'email', 's', 'ada@example.com'), (3, 'ada', 'email', 's', 'ada@example.com'),
                (7, 'ada', 'lastName', 's', 'Lovelace'), (3, 'bob', 'email', 's', 'bob@example.com');
            INSERT INTO contact_consents (list_id, contact_id, channel, consented, updated_at) VALUES
                (3, 'ada', 'EMAIL', 1, 1), (7, 'ada', 'SMS', 0, 1), (3, 'bob', 'EMAIL', 1, 1);
            INSERT INTO purchases (list_id, contact_id, kind, status, amount, transaction_id, occurred_at) VALUES
                (1, 'ada', 'deposit', 'approved', '1.00', 't1', 1), (3, 'ada', 'deposit', 'approved', '2.00', NULL, 1),
                (7, 'ada', 'deposit', 'approved', '4.00', 't7', 1), (3, 'bob', 'deposit', 'approved', '3.00', 't1', 1);
            """)
        defer { try? upgraded.close() }
        let (indexes, plans, duplicateInserts) = try await upgraded.database.write { db in
            let indexes = try String.fetchAll(db, sql: """
                SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('contact_attributes', 'contact_consents', 'purchases')
                AND sql IS NOT NULL ORDER BY name
                """)
            let erasures: [(String, StatementArguments)] = [
                (SQLiteOperationWriter.eraseAttributesSQL, ["ada"]), (SQLiteOperationWriter.eraseConsentsSQL, ["ada"]),
                (SQLiteOperationWriter.anonymizePurchasesSQL, ["anon", "ada"]),
            ]
            let plans = try queryPlans(db, erasures)
            // The same transaction and status again is ignored; purchases without a transaction id never conflict.
            let insert = """
                INSERT OR IGNORE INTO purchases (list_id, contact_id, kind, status, amount, transaction_id, occurred_at)
                VALUES (?, ?, 'deposit', 'approved', '9.00', ?, 2)
                """
            let duplicateInserts = try [(1, "ada", "t1"), (3, "bob", nil), (3, "bob", nil)].map { (list: Int, contact: String, transaction: String?) -> Int in
                try db.execute(sql: insert, arguments: [list, contact, transaction])
                return db.changesCount
            }
            return (indexes, plans, duplicateInserts)
        }
        #expect(indexes == ["contact_attributes_by_name_value", "purchases_by_contact_transaction"])
        #expect(duplicateInserts == [0, 1, 1])
        for plan in plans {
            #expect(!plan.contains { $0.hasPrefix("SCAN contact_") || $0.hasPrefix("SCAN purchases") }, "a full scan: \(plan)")
        }
        #expect(plans[0].contains("SEARCH contact_attributes USING PRIMARY KEY (list_id=? AND contact_id=?)"), "\(plans[0])")
        #expect(plans[1].contains("SEARCH contact_consents USING PRIMARY KEY (list_id=? AND contact_id=?)"), "\(plans[1])")
        #expect(plans[2].contains("SEARCH purchases USING INDEX purchases_by_contact_transaction (list_id=? AND contact_id=?)"), "\(plans[2])")

        let anonymize = try h.plan(#"{"type":"USER_BLOCKED","contactId":"ada"}"#)
        #expect(try await upgraded.apply([anonymize], now: StoreHarness.t0) == [.applied(notes: [])])
        let left = try await upgraded.database.read { db in
            (
                attributes: try String.fetchAll(db, sql: "SELECT list_id || ':' || contact_id FROM contact_attributes ORDER BY 1"),
                consents: try String.fetchAll(db, sql: "SELECT list_id || ':' || contact_id FROM contact_consents ORDER BY 1"),
                purchases: try Row.fetchAll(db, sql: "SELECT contact_id, transaction_id FROM purchases WHERE contact_id != 'bob'")
            )
        }
        #expect(left.attributes == ["3:bob"])
        #expect(left.consents == ["3:bob"])
        #expect(left.purchases.count == 3)
        #expect(left.purchases.allSatisfy { ($0["contact_id"] as String).hasPrefix("anon") && ($0["transaction_id"] as String?) == nil },
                "\(left.purchases)")
    }

    @Test("after the upgrade from v9, a contact's lists, journeys and erasure in every list are found by seeks on contacts' primary key")
    func upgradedStoreFindsAContactsListsBySeeks() async throws {
        let h = try await StoreHarness(.sqlite, actions: [
            .userRegistration: [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true), .enterJourney(journey: 10)],
            .userUpdate: [.enterJourney(journey: 11)],
            .userBlocked: [.anonymizeContact(list: 3, findBy: .originalId)],
        ])
        defer { h.remove() }
        // As v9 left it: `ada` in lists 3 and 5 but not in list 1; `bob` in list 3; `cy` in no list.
        let upgraded = try await h.upgradedStore(from: "v9: no indexes on contact_id alone for attributes, consents and purchases", rows: """
            INSERT INTO contacts (list_id, contact_id, email_subscribed, mobile_subscribed, created_at, updated_at)
            VALUES (3, 'ada', 1, 0, 1, 1), (5, 'ada', 1, 0, 1, 1), (3, 'bob', 1, 0, 1, 1);
            """)
        defer { try? upgraded.close() }
        let (indexes, plans) = try await upgraded.database.read { db in
            let indexes = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'contacts' AND sql IS NOT NULL")
            let statements: [(String, StatementArguments)] = [
                (SQLiteOperationWriter.contactInAnyListSQL, ["ada"]), (SQLiteOperationWriter.journeyEnterSQL, ["ada", 11, 1, 1]),
                (SQLiteOperationWriter.listsOfContactSQL, ["ada"]), (SQLiteOperationWriter.eraseContactsSQL, ["ada"]),
            ]
            let plans = try queryPlans(db, statements)
            return (indexes, plans)
        }
        #expect(indexes.isEmpty, "\(indexes)")
        for plan in plans {
            #expect(!plan.contains { $0.hasPrefix("SCAN contacts") }, "a full scan: \(plan)")
            #expect(plan.contains { $0.hasPrefix("SEARCH contacts USING PRIMARY KEY (list_id=? AND contact_id=?)") }, "\(plan)")
        }

        // A journey for a contact that is in lists 3 and 5 only, one for a contact in no list, and a registration
        // (which creates the contact, then enters it without looking).
        let outcomes = try await upgraded.apply([
            try h.plan(#"{"type":"USER_UPDATE","contactId":"ada"}"#, id: "1"),
            try h.plan(#"{"type":"USER_UPDATE","contactId":"cy"}"#, id: "2"),
            try h.plan(registration("dee"), id: "3"),
        ], now: StoreHarness.t0)
        #expect(outcomes == [.applied(notes: []), .applied(notes: ["enter_journey: no contact cy"]), .applied(notes: [])])
        let journeys = try await upgraded.database.read { db in
            try String.fetchAll(db, sql: "SELECT contact_id || ':' || journey_id FROM journey_enrollments ORDER BY 1")
        }
        #expect(journeys == ["ada:11", "dee:10"])
        // Entering again: nothing inserted, and the second look finds the contact, so no note.
        #expect(try await upgraded.apply([try h.plan(#"{"type":"USER_UPDATE","contactId":"ada"}"#, id: "1b")], now: StoreHarness.t0)
            == [.applied(notes: [])])
        #expect(try await upgraded.contact("ada", list: nil) == .inSeveralLists([3, 5]))

        #expect(try await upgraded.apply([try h.plan(#"{"type":"USER_BLOCKED","contactId":"ada"}"#, id: "4")], now: StoreHarness.t0)
            == [.applied(notes: [])])
        let contactsLeft = try await upgraded.database.read { db in
            try String.fetchAll(db, sql: "SELECT list_id || ':' || contact_id FROM contacts ORDER BY 1")
        }
        #expect(contactsLeft == ["1:dee", "3:bob"])
    }
}
