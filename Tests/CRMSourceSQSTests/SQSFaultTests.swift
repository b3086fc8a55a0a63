import CRMConfig
import CRMCore
import CRMSourceSQS
import CRMSourceSupport
import CRMStoreSQLite
import CRMTestSupport
import Foundation
import SQSClient
import Testing

/// Faults of the SQS endpoint (issue 10), on a moto_server of the test's own: the shared one serves other tests.
extension SQSSourceTests {
    /// moto frozen with SIGSTOP for 40 s mid-run, the way a hung endpoint looks to a client: connections are
    /// accepted and nothing is answered. The long polls (11 s here) and the batch deletes (30 s) time out and are
    /// retried with back-off; the source reports itself down meanwhile and up once moto answers again (SIGCONT).
    /// Messages whose deletion timed out come back after their visibility timeout and the ledger recognises them.
    /// Totals are exact: every event applied once, nothing left in the queue.
    @Test func aFrozenEndpointTimesOutIsRetriedAndLosesNothing() async throws {
        let server = try MotoTestServer.startOwn()
        defer {
            kill(server.pid, SIGCONT)
            server.stop()
        }
        let queue = try server.createQueue("frozen-\(UUID().uuidString.prefix(6))", attributes: ["VisibilityTimeout": "20"])
        let contacts = 60, steps = 10, total = contacts * steps
        var messages: [SQSClient.OutgoingMessage] = []
        for step in 0..<steps {
            for contact in 0..<contacts { messages.append(.init(id: "m\(messages.count % 10)", body: Self.event(contact: contact, step: step))) }
        }
        let (first, second) = (Array(messages[..<(total / 2)]), Array(messages[(total / 2)...]))
        let (store, folder) = try Self.store()
        defer { try? FileManager.default.removeItem(at: folder) }
        var settings = config(server, queue, folder: folder)
        settings.pollers = 1
        let board = SourceStatusBoard()
        let state: @Sendable () -> SourceStatusBoard.State? = { board.snapshot.first?.state }
        let applied: @Sendable () async throws -> Int = { try await store.count("ledger") }
        let observed = ObservedStates()
        let totals = try await Self.run(settings, store: store, whileRunning: {
            try await Self.sendKeepingBacklog(server, queue, first, backlog: 50, applied: applied)
            // Frozen while the first half is still being received and deleted: frozen first, then checked, so that
            // the daemon cannot drain the last messages sent in between.
            kill(server.pid, SIGSTOP)
            #expect(try await applied() < total / 2, "the first half was drained before the freeze")
            let frozenUntil = ContinuousClock.now + .seconds(40)
            while ContinuousClock.now < frozenUntil {
                if case let .down(reason)? = state() { observed.down = reason }
                try await Task.sleep(for: .milliseconds(200))
            }
            let appliedWhileFrozen = try await applied()
            kill(server.pid, SIGCONT)
            // Up again, and the first half applied in full, before the second half is sent.
            let recovered = ContinuousClock.now + .seconds(120)
            while ContinuousClock.now < recovered {
                let caughtUp = try await applied() >= total / 2
                if state() == .up && caughtUp { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            observed.upAgain = state() == .up
            observed.appliedWhileFrozen = appliedWhileFrozen
            try await Self.sendKeepingBacklog(server, queue, second, backlog: 50, applied: applied)
        }, progress: applied, statusBoard: board) { try await applied() >= total }

        #expect(observed.down != nil, "the source never reported itself down while moto was frozen")
        #expect(observed.upAgain, "the source did not report itself up after moto answered again")
        #expect(try await store.count("ledger") == total)
        #expect(try await store.count("contacts") == contacts)
        #expect(try await store.count("purchases") == contacts * steps / 2)
        #expect(totals.applied == total && totals.refused == 0)
        let client = SQSClient(queueURL: queue, region: server.region, credentials: server.credentials, endpoint: server.url)
        let left = try client.queueAttributes(["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        #expect(left["ApproximateNumberOfMessages"] == "0" && left["ApproximateNumberOfMessagesNotVisible"] == "0")
        print("SQS freeze: \(observed.appliedWhileFrozen) applied when moto was resumed; down reason: \(observed.down ?? "-"); duplicates \(totals.duplicates)")
    }
}

/// What the fault test saw while it ran (written by its publishing task, read after).
private final class ObservedStates: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var _down: String?
    private var _upAgain = false
    private var _appliedWhileFrozen = 0
    var down: String? { get { lock.withLock { _down } } set { lock.withLock { _down = newValue } } }
    var upAgain: Bool { get { lock.withLock { _upAgain } } set { lock.withLock { _upAgain = newValue } } }
    var appliedWhileFrozen: Int { get { lock.withLock { _appliedWhileFrozen } } set { lock.withLock { _appliedWhileFrozen = newValue } } }
}
