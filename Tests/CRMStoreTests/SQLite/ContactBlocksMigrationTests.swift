import CRMCore
import Foundation
import GRDB
import Testing

@testable import CRMStoreSQLite

/// Migration v13 keeps each contact's latest block by id (`contact_blocks`), which journey entries consult: a
/// database v12 left, holding a contact blocked in list 2 only, keeps her out of journeys after the upgrade.
@Suite("SQLite blocks by contact id (v13)")
struct ContactBlocksMigrationTests {
    @Test func aBlockMadeBeforeTheUpgradeStillHoldsJourneysBack() async throws {
        let h = try await StoreHarness(.sqlite, actions: [.userUpdate: [.enterJourney(journey: 20)]])
        defer { h.remove() }
        let until = StoreHarness.t0.adding(1, .days).microsecondsSinceEpoch
        let upgraded = try await h.upgradedStore(from: "v12: when a contact's email subscription last changed", rows: """
            INSERT INTO contacts (list_id, contact_id, email_subscribed, mobile_subscribed, created_at, updated_at, blocked_until)
            VALUES (1, 'ada', 1, 0, 1, 1, NULL), (2, 'ada', 1, 0, 1, 1, \(until)), (1, 'bob', 1, 0, 1, 1, 5);
            """)
        defer { try? upgraded.close() }
        let blocks = try await upgraded.database.read { db in
            try Row.fetchAll(db, sql: "SELECT contact_id, blocked_until FROM contact_blocks ORDER BY contact_id").map { [$0[0] as String, "\($0[1] as Int64)"] }
        }
        #expect(blocks == [["ada", "\(until)"], ["bob", "5"]])
        let outcomes = try await upgraded.apply([
            try h.plan(#"{"type":"USER_UPDATE","contactId":"ada"}"#), try h.plan(#"{"type":"USER_UPDATE","contactId":"bob"}"#),
        ], now: StoreHarness.t0)
        #expect(outcomes == [
            .applied(notes: ["enter_journey: contact ada is blocked until \(Timestamp(microsecondsSinceEpoch: until).rfc3339): not entered in journey 20"]),
            .applied(notes: []),
        ])
    }
}
