import CRMCore
import Foundation
import GRDB
import Testing

@testable import CRMStoreSQLite

/// Migration v11 put a purchase's kind in its uniqueness: a database v10 left, holding a deposit, takes the withdrawal
/// with the same transaction id and status as a row of its own, and a repeat of either is still one row.
@Suite("SQLite purchase uniqueness by kind (v11)")
struct PurchaseUniquenessTests {
    @Test func aStoreUpgradedFromV10RecordsAWithdrawalBesideTheDepositOfTheSameTransaction() async throws {
        let h = try await StoreHarness(.sqlite)
        defer { h.remove() }
        let upgraded = try await h.upgradedStore(from: "v10: no index on contact_id alone for contacts", rows: """
            INSERT INTO contacts (list_id, contact_id, email_subscribed, mobile_subscribed, created_at, updated_at)
            VALUES (1, 'ada', 1, 0, 1, 1);
            INSERT INTO purchases (list_id, contact_id, kind, status, amount, transaction_id, occurred_at)
            VALUES (1, 'ada', 'DEPOSIT', 'APPROVED', '10', 'abc123', 1);
            """)
        defer { try? upgraded.close() }
        let withdrawal = try h.plan(deposit("ada", amount: "4", transaction: "abc123", type: "WITHDRAWAL_APPROVED"))
        let repeated = try h.plan(deposit("ada", amount: "10", transaction: "abc123"), id: "a-repeat")
        let outcomes = try await upgraded.apply([withdrawal, repeated], now: StoreHarness.t0)
        #expect(outcomes.first == .applied(notes: []))
        #expect(outcomes.last == .applied(notes: ["create_purchase_row: transaction abc123 is already recorded as APPROVED"]))
        let (kinds, columns) = try await upgraded.database.read { db in
            (try String.fetchAll(db, sql: "SELECT kind FROM purchases ORDER BY id"),
             try String.fetchAll(db, sql: "SELECT name FROM pragma_index_info('purchases_by_contact_transaction') ORDER BY seqno"))
        }
        #expect(kinds == ["DEPOSIT", "WITHDRAWAL"])
        #expect(columns == ["list_id", "contact_id", "transaction_id", "kind", "status"])
    }
}
