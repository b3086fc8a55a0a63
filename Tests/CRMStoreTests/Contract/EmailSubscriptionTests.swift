import CRMCore
import Testing

/// `setEmailSubscription` with the time the sender's status changed: a change older than the one held is left out,
/// whatever the order of arrival; a tie goes to the later arrival; a change without a time applies in arrival order.
@Suite("Store contract: email subscription changes in time order")
struct EmailSubscriptionTests {
    static let statusType = EventType(rawValue: "PROCA_EMAIL_STATUS")

    /// Applies change number `n` for `contact` as its own batch.
    func change(
        _ h: StoreHarness, _ n: Int, _ contact: String = "lena", subscribed: Bool, reason: String? = nil, at seconds: Int64?
    ) async throws -> EventOutcome {
        let event = PlannedEvent(
            key: IdempotencyKey(value: "status-\(n)", check: .always), type: Self.statusType, contactId: contact,
            operations: [.setEmailSubscription(
                list: 1, contactId: contact, subscribed: subscribed, reason: reason, asOf: seconds.map { Timestamp(secondsSinceEpoch: $0) }
            )]
        )
        return try await h.store.apply([event], now: StoreHarness.t0)[0]
    }

    func subscription(_ h: StoreHarness) async throws -> (Bool?, String?) {
        let lena = try await h.contact("lena")
        return (lena?.emailSubscribed, lena?.emailUnsubscribeReason)
    }

    @Test(arguments: StoreKind.allCases) func anOlderStatusArrivingLaterChangesNothing(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        try await h.send(#"{"type":"USER_REGISTRATION","contactId":"lena"}"#) // subscribed on creation
        #expect(try await change(h, 1, subscribed: false, reason: "unsub", at: 2_000) == .applied(notes: []))
        #expect(try await subscription(h) == (false, "unsub"))
        // A retried double opt-in from before the unsubscription: left out, without a note (nothing is missing).
        #expect(try await change(h, 2, subscribed: true, at: 1_000) == .applied(notes: []))
        #expect(try await subscription(h) == (false, "unsub"))
        // The same instant: the later arrival wins.
        _ = try await change(h, 3, subscribed: true, at: 2_000)
        #expect(try await subscription(h) == (true, nil))
        // Without a time: applied in arrival order, and the time held stays.
        _ = try await change(h, 4, subscribed: false, reason: "bounce", at: nil)
        #expect(try await subscription(h) == (false, "bounce"))
        _ = try await change(h, 5, subscribed: true, at: 1_500)
        #expect(try await subscription(h) == (false, "bounce"))
        // A newer one applies.
        _ = try await change(h, 6, subscribed: true, at: 3_000)
        #expect(try await subscription(h) == (true, nil))
        // A missing contact is still reported.
        #expect(try await change(h, 7, "nobody", subscribed: true, at: 4_000) == .applied(notes: ["email subscription: no contact nobody in list 1"]))
    }
}
