import CRMCore
import Synchronization

/// Runs a call with a time limit it cannot outlive. When the server ends a session in the middle of a
/// transaction (`pg_terminate_backend`, a failover), a statement in flight on it may never complete in the driver;
/// past `timeout` the call is left behind: it is cancelled, `onAbandon` runs (it closes the call's connection, so the
/// pool drops it and the server rolls back whatever it held) and then `StoreError(.unavailable)` is thrown, which
/// the caller retries on a new connection. The caller's own cancellation (a deadline of its own, a shutdown that
/// escalated) abandons the call the same way, with `CancellationError`. Unlike a task group, this returns at once
/// even when the call ignores cancellation.
enum AbandonableCall {
    /// How the message of the error thrown past the time limit starts.
    static let timeoutMessagePrefix = "PostgreSQL did not answer within "

    /// `onAbandon` must not wait: it runs before the caller resumes (so a closed connection is never handed out
    /// again), possibly inside a cancellation handler.
    static func run<Result: Sendable>(
        timeout: Duration, onAbandon: @escaping @Sendable () -> Void,
        _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        let outcome = Outcome<Result>()
        let work = Task {
            do { outcome.settle(.success(try await body())) } catch { outcome.settle(.failure(error)) }
        }
        let abandon: @Sendable (any Error) -> Void = { reason in
            outcome.settle(.failure(reason)) {
                work.cancel()
                onAbandon()
            }
        }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled else { return }
            abandon(StoreError(.unavailable, "\(timeoutMessagePrefix)\(timeout); the connection was closed"))
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Result, any Error>) in
                outcome.start(continuation, timer: timer)
            }
        } onCancel: {
            abandon(CancellationError())
        }
    }

    /// The first of the call's result, the timeout and the caller's cancellation goes to the continuation; the others
    /// are dropped.
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

        /// Delivers `result` unless something was delivered before, running `beforeDelivery` first when it is
        /// delivered.
        func settle(_ result: Swift.Result<Value, any Error>, beforeDelivery: () -> Void = {}) {
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
            guard let delivery else { return }
            beforeDelivery()
            delivery.timer?.cancel()
            delivery.continuation?.resume(with: result)
        }

        private struct Delivery {
            var continuation: CheckedContinuation<Value, any Error>?
            var timer: Task<Void, Never>?
        }
    }
}
