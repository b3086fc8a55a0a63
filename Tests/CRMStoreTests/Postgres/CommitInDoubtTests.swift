import CRMCore
@testable import CRMStorePostgres
import CRMTestSupport
import Foundation
import PostgresNIO
import Synchronization
import Testing

/// A connection lost during a transaction: the store asks the server what became of the transaction instead of
/// running the batch again blindly. The connection is cut by a proxy between the store and the server when the
/// store sends a chosen statement: `COMMIT` (its text with the terminating NUL; `BEGIN … READ COMMITTED` does not
/// match), or a prepared statement by name.
@Suite("PostgreSQL store: a connection lost during a transaction", .serialized, .timeLimit(.minutes(2)))
struct CommitInDoubtTests {
    static let commitStatement = "COMMIT\u{0}"

    /// A fresh schema, and a store on it whose connections go through a proxy; its sessions carry `application` as
    /// their `application_name`.
    final class Setup: Sendable {
        let h: StoreHarness
        let proxy: ConnectionCuttingProxy
        let store: PostgresCRMStore
        let application: String
        /// A registration and a purchase, neither with a message id: their keys are checked only when they may be
        /// redeliveries, so a batch that committed and ran again would apply them twice.
        let events: [PlannedEvent]
        private let pool: Task<Void, any Error>

        init(
            actions: [EventType: [Action]] = StoreHarness.standardActions, logs: CapturedLogs? = nil, startupParameters: [(String, String)] = []
        ) async throws {
            h = try await StoreHarness(.postgres, actions: actions)
            let server = try PostgresTestServer.shared()
            proxy = try ConnectionCuttingProxy(to: server.host, port: server.port)
            application = "doubt-\(h.schema!)"
            var configuration = PostgresClient.Configuration(
                host: server.host, port: proxy.port, username: server.username, password: server.password, database: server.database, tls: .disable
            )
            configuration.options.additionalStartupParameters = [("search_path", h.schema!), ("application_name", application)] + startupParameters
            configuration.options.maximumConnections = 2
            // A lost connection sometimes fails its query at once in postgres-nio and sometimes leaves it hanging
            // until the call's limit closes the connection: 3 s instead of 30 keeps the test short either way.
            store = PostgresCRMStore(configuration: configuration, logger: logs?.logger ?? StoreHarness.logger, callTimeout: .seconds(3))
            pool = Task { [store] in try await store.run() }
            do {
                try await store.prepare(waitingAtMost: .seconds(60))
                events = [
                    try h.plan(registration("doubt-1", #"{"email":"doubt@example.com"}"#)),
                    try h.plan(deposit("doubt-1", amount: "12.5", transaction: nil)),
                ]
            } catch {
                pool.cancel()
                proxy.stop()
                h.remove()
                throw error
            }
        }

        func stop() {
            pool.cancel()
            proxy.stop()
            h.remove()
        }

        var commitsInDoubt: Int { store.counters.commitsInDoubt.load(ordering: .relaxed) }
        var lostTransactions: Int { store.counters.lostTransactions.load(ordering: .relaxed) }

        /// The store's sessions on the server that are in a transaction.
        func openTransactions() async throws -> Int {
            try await StoreHarness.admin(try PostgresTestServer.shared()) { [application] connection in
                try await connection.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = \(application) AND state <> 'idle'", logger: StoreHarness.logger
                ).get().rows.first?.decode(Int.self) ?? -1
            }
        }

        /// Applies the batch, which must fail as a lost connection does: the store is unavailable.
        func applyExpectingLostConnection(sourceLocation: SourceLocation = #_sourceLocation) async {
            await #expect(sourceLocation: sourceLocation) {
                _ = try await store.apply(events, now: StoreHarness.t0)
            } throws: { error in
                (error as? StoreError)?.code == .unavailable
            }
        }

        /// Applies the batch again, as a source does after a failure; it goes in whole, once.
        func applyAgainExpectingItOnce(sourceLocation: SourceLocation = #_sourceLocation) async throws {
            #expect(try await store.apply(events, now: StoreHarness.t0) == [.applied(notes: []), .applied(notes: [])], sourceLocation: sourceLocation)
            #expect(try await h.count("purchases") == 1, sourceLocation: sourceLocation)
            #expect(try await h.count("journey_enrollments") == 1, sourceLocation: sourceLocation)
        }
    }

    @Test func aCommitWhoseAnswerWasLostIsFoundCommittedAndNotAppliedAgain() async throws {
        let setup = try await Setup()
        defer { setup.stop() }
        setup.proxy.cut(whenClientSends: Self.commitStatement, .afterForwarding)
        let outcomes: [EventOutcome]
        do {
            outcomes = try await setup.store.apply(setup.events, now: StoreHarness.t0)
        } catch {
            // What a source does with a batch the store failed: it runs it again.
            Issue.record("the batch failed: \(error)")
            outcomes = try await setup.store.apply(setup.events, now: StoreHarness.t0)
        }
        #expect(setup.proxy.cutCount == 1)
        #expect(setup.commitsInDoubt == 1)
        #expect(outcomes == [.applied(notes: []), .applied(notes: [])])
        #expect(try await setup.h.count("purchases") == 1)
        #expect(try await setup.h.count("journey_enrollments") == 1)
        #expect(try await setup.h.contact("doubt-1")?.purchases.count == 1)
    }

    @Test func aCommitThatNeverReachedTheServerLeavesNothingAndTheBatchRunsAgain() async throws {
        let setup = try await Setup()
        defer { setup.stop() }
        setup.proxy.cut(whenClientSends: Self.commitStatement, .beforeForwarding)
        await setup.applyExpectingLostConnection()
        #expect(setup.proxy.cutCount == 1)
        #expect(setup.commitsInDoubt == 1)
        #expect(try await setup.h.count("purchases") == 0)
        #expect(try await setup.h.contact("doubt-1") == nil)
        try await setup.applyAgainExpectingItOnce()
    }

    /// The server never learns that the client is gone (a network partition): the transaction stays in progress,
    /// idle, holding its locks. The store ends its session (`pg_terminate_backend`), which rolls it back, and the
    /// batch runs again.
    @Test func aTransactionLeftOpenByALostClientIsEndedAndTheBatchRunsAgain() async throws {
        let setup = try await Setup()
        defer { setup.stop() }
        setup.proxy.cut(whenClientSends: Self.commitStatement, .beforeForwardingLeavingTheServerWaiting)
        await setup.applyExpectingLostConnection()
        #expect(setup.proxy.cutCount == 1)
        #expect(try await setup.h.count("purchases") == 0)
        #expect(try await setup.openTransactions() == 0)
        try await setup.applyAgainExpectingItOnce()
    }

    /// The same partition in the middle of a transaction, before `COMMIT`: the server keeps the transaction open
    /// with the contact's lock, which the batch run again would wait for (past the call's limit, again and again).
    @Test func aTransactionCutOffBeforeItsCommitIsEndedSoTheBatchCanRunAgain() async throws {
        let setup = try await Setup()
        defer { setup.stop() }
        // The purchase's insert, after the registration's statements in the same transaction.
        setup.proxy.cut(whenClientSends: "PostgresStatements.PurchaseInsert", .beforeForwardingLeavingTheServerWaiting)
        await setup.applyExpectingLostConnection()
        #expect(setup.proxy.cutCount == 1)
        #expect(setup.commitsInDoubt == 0)
        try await setup.applyAgainExpectingItOnce()
    }

    /// The partition falls just after the statement that takes the transaction's locks left: the server takes them
    /// and keeps the transaction open, before the store learns its id. The session, known since before `BEGIN`, is
    /// ended all the same, so the batch run again does not wait for locks held for a client that is gone.
    @Test func aTransactionCutOffWhileTakingItsLocksIsEndedSoTheBatchCanRunAgain() async throws {
        let setup = try await Setup()
        defer { setup.stop() }
        setup.proxy.cut(whenClientSends: "INSERT INTO commit_witnesses", .afterForwardingLeavingTheServerWaiting)
        await setup.applyExpectingLostConnection()
        #expect(setup.proxy.cutCount == 1)
        #expect(setup.lostTransactions == 1)
        #expect(setup.commitsInDoubt == 0)
        #expect(try await setup.openTransactions() == 0)
        try await setup.applyAgainExpectingItOnce()
    }

    /// The server ran the `COMMIT` and then keeps the session, waiting for a client that is gone (a partition just
    /// after the `COMMIT` left), on a server whose `track_activities` is off: `pg_stat_activity.state` then says only
    /// "disabled", never "idle", so whether the session is still in a transaction is read from its lock on its own
    /// virtual transaction id. The transaction is found over and committed, and nothing is applied twice.
    @Test func aCommittedTransactionIsFoundOverWithoutActivityTracking() async throws {
        // Only PostgreSQL 15 and later let a role be granted this setting (scripts/postgres-node.sh grants it).
        let version = try await StoreHarness.admin(try PostgresTestServer.shared()) { connection in
            try await connection.query("SELECT current_setting('server_version_num')::int", logger: StoreHarness.logger).get().rows.first?.decode(Int.self) ?? 0
        }
        guard version >= 150_000 else { return }
        let setup = try await Setup(startupParameters: [("track_activities", "off")])
        defer { setup.stop() }
        setup.proxy.cut(whenClientSends: Self.commitStatement, .afterForwardingLeavingTheServerWaiting)
        let outcomes = try await setup.store.apply(setup.events, now: StoreHarness.t0)
        #expect(setup.proxy.cutCount == 1)
        #expect(setup.commitsInDoubt == 1)
        #expect(outcomes == [.applied(notes: []), .applied(notes: [])])
        #expect(try await setup.h.count("purchases") == 1)
    }

    /// A statement the server cancels (`statement_timeout`, 57014, here while the transaction waits for a lock another
    /// session holds) fails on a working connection, which goes back to the pool: nothing is lost, so nothing is
    /// settled (settling looks the session up, and another batch may already run on it).
    @Test func aStatementCancelledByTheServerIsNotTakenForALostConnection() async throws {
        // Under the test's 3 s call limit, and far above any statement of the store's set-up.
        let setup = try await Setup(startupParameters: [("statement_timeout", "1500")])
        defer { setup.stop() }
        let keys = PostgresOperationWriter.lockKeys(setup.events)
        try await StoreHarness.admin(try PostgresTestServer.shared()) { connection in
            _ = try await connection.query("BEGIN", logger: StoreHarness.logger).get()
            _ = try await connection.query("SELECT pg_advisory_xact_lock(key) FROM unnest(\(keys)::bigint[]) AS k (key)", logger: StoreHarness.logger).get()
            await #expect(throws: (any Error).self) { _ = try await setup.store.apply(setup.events, now: StoreHarness.t0) }
            _ = try await connection.query("COMMIT", logger: StoreHarness.logger).get()
        }
        #expect(setup.lostTransactions == 0)
        try await setup.applyAgainExpectingItOnce()
    }

    /// A batch with an event the database refuses runs again with a savepoint per event, so its writes are made in
    /// subtransactions; the witness, written first at the top level, still tells that it committed.
    @Test func aBatchRunWithSavepointsIsFoundCommittedToo() async throws {
        var actions = StoreHarness.standardActions
        actions[.userUpdate] = [.createContact(list: 1, emailSubscribed: true, mobileSubscribed: true), .enterJourney(journey: 666)]
        let setup = try await Setup(actions: actions)
        defer { setup.stop() }
        try await setup.h.refuseJourney(666, message: "journey 666 is closed")
        let events = setup.events + [try setup.h.plan(#"{"type":"USER_UPDATE","contactId":"doubt-2","properties":{"firstName":"Bo"}}"#)]
        setup.proxy.cut(whenClientSends: Self.commitStatement, .afterForwarding)
        let outcomes: [EventOutcome]
        do {
            outcomes = try await setup.store.apply(events, now: StoreHarness.t0)
        } catch {
            Issue.record("the batch failed: \(error)")
            outcomes = try await setup.store.apply(events, now: StoreHarness.t0)
        }
        #expect(setup.store.counters.transactionsRedoneWithSavepoints.load(ordering: .relaxed) == 1)
        #expect(setup.proxy.cutCount == 1)
        #expect(outcomes.prefix(2) == [.applied(notes: []), .applied(notes: [])])
        guard case .failed = outcomes.last else {
            Issue.record("expected the refused event to fail, got \(String(describing: outcomes.last))")
            return
        }
        #expect(try await setup.h.count("purchases") == 1)
        #expect(try await setup.h.contact("doubt-2") == nil)
    }

    /// The server cannot be reached after the cut: the outcome stays unknown, and the store gives up (after twice the
    /// call's limit, here 3 s) instead of holding the lane, and with it the daemon's stop, for good. Without a limit
    /// the suite's time limit fails the test.
    @Test func aCommitWhoseOutcomeCannotBeLearnedIsGivenUp() async throws {
        let logs = CapturedLogs()
        let setup = try await Setup(logs: logs)
        defer { setup.stop() }
        setup.proxy.cut(whenClientSends: Self.commitStatement, .afterForwarding)
        let applying = Task { [setup] in try await setup.store.apply(setup.events, now: StoreHarness.t0) }
        while setup.proxy.cutCount == 0 { try await Task.sleep(for: .milliseconds(5)) }
        setup.proxy.stop() // no new connection reaches the server
        await #expect {
            _ = try await applying.value
        } throws: { error in
            (error as? StoreError)?.code == .unavailable
        }
        #expect(setup.commitsInDoubt == 1)
        #expect(logs.count("whether it committed is still unknown") == 1)
    }
}
