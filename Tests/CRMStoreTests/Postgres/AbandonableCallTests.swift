import CRMCore
@testable import CRMStorePostgres
import Synchronization
import Testing

/// A call past its time limit, or whose caller is cancelled, is given up even when it never returns and ignores
/// cancellation (a statement on a connection the server ended); a call within it returns its own result or error.
@Suite("Abandonable call")
struct AbandonableCallTests {
    final class Flag: Sendable {
        let value = Mutex(false)
        var isSet: Bool { value.withLock { $0 } }
        func set() { value.withLock { $0 = true } }
    }

    /// A call that is resumed only when the test lets it (after its deadline), deaf to cancellation meanwhile.
    final class Gate: Sendable {
        let waiting = Mutex<CheckedContinuation<Void, Never>?>(nil)
        func wait() async { await withCheckedContinuation { continuation in waiting.withLock { $0 = continuation } } }
        func open() { waiting.withLock { $0.take() }?.resume() }
    }

    @Test func aCallThatDoesNotReturnIsGivenUpAtItsDeadline() async throws {
        let closed = Flag()
        let gate = Gate()
        let started = ContinuousClock.now
        await #expect(throws: StoreError.self) {
            try await AbandonableCall.run(timeout: .milliseconds(200), onAbandon: { closed.set() }) { () async throws -> Int in
                // Not resumed by cancellation: what a statement lost by the driver looks like.
                await gate.wait()
                return 1
            }
        }
        // Without the limit the call would never return; the bound is loose because a loaded machine (the sanitizer
        // runs) can delay the timer's task by seconds.
        #expect(ContinuousClock.now - started < .seconds(60))
        #expect(closed.isSet)
        // The abandoned call ends late; its result goes nowhere.
        while gate.waiting.withLock({ $0 == nil }) { try await Task.sleep(for: .milliseconds(10)) }
        gate.open()
    }

    /// A caller cancelled (a deadline of its own, a shutdown) does not wait for the call: it gets `CancellationError`
    /// at once, and the connection is closed before it resumes.
    @Test func aCancelledCallerLeavesTheCallBehindAtOnce() async throws {
        let closed = Flag()
        let gate = Gate()
        let caller = Task {
            try await AbandonableCall.run(timeout: .seconds(600), onAbandon: { closed.set() }) { () async throws -> Int in
                await gate.wait()
                return 1
            }
        }
        while gate.waiting.withLock({ $0 == nil }) { try await Task.sleep(for: .milliseconds(10)) }
        let started = ContinuousClock.now
        caller.cancel()
        await #expect(throws: CancellationError.self) { try await caller.value }
        #expect(ContinuousClock.now - started < .seconds(60))
        #expect(closed.isSet)
        gate.open()
    }

    @Test func aCallWithinItsDeadlineKeepsItsResultAndErrors() async throws {
        let closed = Flag()
        let value = try await AbandonableCall.run(timeout: .seconds(30), onAbandon: { closed.set() }) { 42 }
        #expect(value == 42)
        await #expect(throws: StoreError(.rejected, "no")) {
            try await AbandonableCall.run(timeout: .seconds(30), onAbandon: { closed.set() }) { () async throws -> Int in
                throw StoreError(.rejected, "no")
            }
        }
        #expect(!closed.isSet)
    }
}
