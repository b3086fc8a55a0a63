import CRMCore
@testable import CRMStorePostgres
import Synchronization
import Testing

/// A call past its time limit is given up even when it never returns and ignores cancellation (a statement on a
/// connection the server ended); a call within it returns its own result or error.
@Suite("Abandonable call")
struct AbandonableCallTests {
    final class Flag: Sendable {
        let value = Mutex(false)
        var isSet: Bool { value.withLock { $0 } }
        func set() { value.withLock { $0 = true } }
    }

    @Test func aCallThatNeverReturnsIsGivenUpAtItsDeadline() async throws {
        let closed = Flag()
        let started = ContinuousClock.now
        await #expect(throws: StoreError.self) {
            try await AbandonableCall.run(timeout: .milliseconds(200), onTimeout: { closed.set() }) { () async throws -> Int in
                // Never resumed, and deaf to cancellation: what a statement lost by the driver looks like.
                await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }
                return 1
            }
        }
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(closed.isSet)
    }

    @Test func aCallWithinItsDeadlineKeepsItsResultAndErrors() async throws {
        let closed = Flag()
        let value = try await AbandonableCall.run(timeout: .seconds(30), onTimeout: { closed.set() }) { 42 }
        #expect(value == 42)
        await #expect(throws: StoreError(.rejected, "no")) {
            try await AbandonableCall.run(timeout: .seconds(30), onTimeout: { closed.set() }) { () async throws -> Int in
                throw StoreError(.rejected, "no")
            }
        }
        #expect(!closed.isSet)
    }
}
