import CRMCore
import Foundation
import GRDB
import Testing

@testable import CRMStoreSQLite

/// Migration v8 replaced v1's index of attribute values, which SQLite's planner never chose, with one it seeks;
/// and an attribute written again with the same value no longer rewrites its index entry.
@Suite("SQLite attribute values index")
struct AttributeIndexTests {
    @Test("contacts written before v8 are found by email after the upgrade, and every lookup by value seeks the index")
    func upgradeFindsContactsByEmailThroughTheIndex() async throws {
        let h = try await StoreHarness(.sqlite, actions: [
            .userBlocked: [.tempBlockContact(list: 1, findBy: .email, duration: 30, unit: .days)],
        ])
        defer { h.remove() }
        // A database as v7 left it: `ada`'s email in mixed case, and `bob` with another attribute of the same text.
        let upgraded = try await h.upgradedStore(from: "v7: recent ledger in arrival order", rows: """
            INSERT INTO contacts (list_id, contact_id, email_subscribed, mobile_subscribed, created_at, updated_at)
            VALUES (1, 'ada', 1, 0, 1, 1), (1, 'bob', 1, 0, 1, 1);
            INSERT INTO contact_attributes (list_id, contact_id, name, kind, value)
            VALUES (1, 'ada', 'email', 's', 'Ada@Example.com'), (1, 'bob', 'note', 's', 'ada@example.com');
            """)
        defer { try? upgraded.close() }
        let block = try h.plan(#"{"type":"USER_BLOCKED","contactId":"whoever","properties":{"email":"ada@example.COM"}}"#)
        #expect(try await upgraded.apply([block], now: StoreHarness.t0) == [.applied(notes: [])])
        guard case let .found(ada) = try await upgraded.contact("ada", list: 1),
              case let .found(bob) = try await upgraded.contact("bob", list: 1) else {
            Issue.record("ada and bob should both be in list 1")
            return
        }
        #expect(ada.blockedUntil == StoreHarness.t0.adding(30, .days))
        #expect(bob.blockedUntil == nil)

        let (indexes, plans) = try await upgraded.database.read { db in
            let indexes = try String.fetchAll(
                db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'contact_attributes' AND sql IS NOT NULL ORDER BY name"
            )
            let lookups: [(String, StatementArguments)] = [
                (SQLiteOperationWriter.contactsByEmailSQL, [1, "ada@example.com"]),
                (SQLiteOperationWriter.profileByAttributeSQL, [1, "phone", "+4670000000"]),
                (SQLiteOperationWriter.profileByExactAttributeSQL, [1, "member_no", "A-1", "A-1"]),
            ]
            let plans = try queryPlans(db, lookups)
            return (indexes, plans)
        }
        #expect(indexes == ["contact_attributes_by_name_value"])
        for plan in plans {
            #expect(plan.contains { $0.contains("USING INDEX contact_attributes_by_name_value (name=? AND <expr>=? AND list_id=?)") }, "query plan: \(plan)")
        }
    }

    @Test("an attribute written again with the same kind and value is not updated; a new kind or value is")
    func theSameValueIsNotWrittenAgain() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let changes = try await h.sqliteStore.database.write { db in
            try [("s", "Ann"), ("s", "Ann"), ("s", "Anne"), ("n", "Anne"), ("z", nil), ("z", nil)].map { kind, value -> Int in
                try db.execute(sql: SQLiteOperationWriter.attributeUpsertSQL, arguments: [1, "c1", "firstName", kind, value])
                return db.changesCount
            }
        }
        #expect(changes == [1, 0, 1, 1, 1, 0])
        let stored = try await h.sqliteStore.database.read { db in
            try Row.fetchOne(db, sql: "SELECT kind, value FROM contact_attributes WHERE contact_id = 'c1'")
        }
        #expect(stored?["kind"] as String? == "z")
        #expect(stored?["value"] as String? == nil)
    }
}
