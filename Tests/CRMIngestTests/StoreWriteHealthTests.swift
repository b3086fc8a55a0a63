import CRMCore
@testable import CRMIngest
import Synchronization
import Testing

/// Readiness follows the store's writes: a failed commit makes the daemon "not ready" until one succeeds, or until
/// the failure is older than `freshFor` (nobody retried it).
@Suite("Store write health")
struct StoreWriteHealthTests {
    /// A store whose `apply` fails while `failing` is set.
    final class SwitchableStore: CRMStore {
        let failing = Mutex(true)
        func apply(_ events: [PlannedEvent], now: Timestamp, timing: CommitTiming) async throws -> [EventOutcome] {
            if failing.withLock({ $0 }) { throw StoreError(.io, "database or disk is full") }
            return events.map { _ in .applied(notes: []) }
        }
        func contact(_ contactId: String, list: Int?) async throws -> ContactLookupResult { .notFound }
        func pruneLedger(before cutoff: Timestamp) async throws -> Int { 0 }
        func incomingRequest(_ eventId: String) async throws -> String? { nil }
        func integrationEndpoint(source: String, proposed: String) async throws -> String { proposed }
        func ping() async throws {}
    }

    final class ManualClock: Sendable {
        let instant = Mutex(ContinuousClock.now)
        func advance(_ by: Duration) { instant.withLock { $0 += by } }
    }

    @Test func aFailedWriteIsReportedUntilOneSucceeds() async throws {
        let base = SwitchableStore()
        let health = StoreWriteHealth()
        let store = WriteHealthReportingStore(base: base, health: health)
        #expect(health.failure == nil)
        await #expect(throws: StoreError.self) { try await store.apply([], now: .now()) }
        #expect(health.failure?.contains("database or disk is full") == true)
        base.failing.withLock { $0 = false }
        _ = try await store.apply([], now: .now())
        #expect(health.failure == nil)
    }

    @Test func aFailureNobodyRetriesGoesStale() async throws {
        let clock = ManualClock()
        let health = StoreWriteHealth(freshFor: .seconds(30), now: { clock.instant.withLock { $0 } })
        health.failed(StoreError(.unavailable, "PostgreSQL 25006: cannot execute INSERT in a read-only transaction"))
        clock.advance(.seconds(29))
        #expect(health.failure?.contains("25006") == true)
        clock.advance(.seconds(2))
        #expect(health.failure == nil)
    }
}
