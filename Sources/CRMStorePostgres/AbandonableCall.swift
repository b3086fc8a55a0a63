import CRMCore
import Synchronization

/// Runs a call with a time limit it cannot outlive. When the server ends a session in the middle of a
/// transaction (`pg_terminate_backend`, a failover), a statement in flight on it may never complete in the driver;
/// past `timeout` the call is left behind (cancelled, and `onTimeout` closes its connection, so the pool drops it and
/// the server rolls back whatever it held) and `StoreError(.unavailable)` is thrown, which the caller retries on a new
/// connection. Unlike a task group, this returns at the deadline even when the call ignores cancellation.
enum AbandonableCall {
    static func run<Result: Sendable>(
        timeout: Duration, onTimeout: @escaping @Sendable () async -> Void,
        _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        let outcome = Outcome<Result>()
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Result, any Error>) in
            let work = Task {
                do { outcome.settle(.success(try await body())) } catch { outcome.settle(.failure(error)) }
            }
            let timer = Task {
                try? await Task.sleep(for: timeout)
                guard !Task.isCancelled else { return }
                let message = "PostgreSQL did not answer within \(timeout); the connection was closed"
                if outcome.settle(.failure(StoreError(.unavailable, message))) {
                    work.cancel()
                    await onTimeout()
                }
            }
            outcome.start(continuation, timer: timer)
        }
    }

    /// The first of the call's result and the timeout goes to the continuation; the other is dropped.
    private final class Outcome<Value: Sendable>: Sendable {
        private struct State {
            var continuation: CheckedContinuation<Value, any Error>?
            var timer: Task<Void, Never>?
            var early: Swift.Result<Value, any Error>?
            var settled = false
        }
        private let state = Mutex(State())

        func start(_ continuation: CheckedContinuation<Value, any Error>, timer: Task<Void, Never>) {
            let early: Swift.Result<Value, any Error>? = state.withLock { state in
                if let early = state.early { return early }
                state.continuation = continuation
                state.timer = timer
                return nil
            }
            if let early {
                timer.cancel()
                continuation.resume(with: early)
            }
        }

        /// Delivers `result` unless something was delivered before; whether it was delivered.
        @discardableResult
        func settle(_ result: Swift.Result<Value, any Error>) -> Bool {
            // nil: settled before; otherwise what to resume now (nothing when `start` has not run yet).
            let delivery: Delivery? = state.withLock { state in
                guard !state.settled else { return nil }
                state.settled = true
                guard let continuation = state.continuation else {
                    state.early = result
                    return Delivery(continuation: nil, timer: nil)
                }
                state.continuation = nil
                return Delivery(continuation: continuation, timer: state.timer)
            }
            guard let delivery else { return false }
            delivery.timer?.cancel()
            delivery.continuation?.resume(with: result)
            return true
        }

        private struct Delivery {
            var continuation: CheckedContinuation<Value, any Error>?
            var timer: Task<Void, Never>?
        }
    }
}
