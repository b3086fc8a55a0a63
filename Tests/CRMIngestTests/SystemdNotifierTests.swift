@testable import CRMIngest
import CRMTestSupport
import Foundation
import Logging
import ServiceLifecycle
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("systemd notify protocol")
struct SystemdNotifierTests {
    @Test func sendsToAPathSocket() throws {
        let socket = try NotifySocket()
        let notifier = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.address]))
        try notifier.send(["READY=1", "STATUS=consuming"])
        #expect(socket.receive() == "READY=1\nSTATUS=consuming")
    }

    @Test func sendsToAnAbstractSocket() throws {
        let socket = try NotifySocket(abstract: true)
        #expect(socket.address.hasPrefix("@"))
        let notifier = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.address]))
        try notifier.send(["STOPPING=1"])
        #expect(socket.receive() == "STOPPING=1")
    }

    @Test func noSocketNoNotifierAndAMissingSocketIsAnError() {
        #expect(SystemdNotifier(environment: [:]) == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": ""]) == nil)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/nonexistent/notify.sock"])
        #expect(throws: SystemdNotifier.SendError.self) { try notifier?.send(["READY=1"]) }
    }

    @Test func theWatchdogAppliesOnlyToItsProcess() {
        let ours = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "\(getpid())"])
        #expect(ours?.watchdogMicroseconds == 4_000_000)
        let unnamed = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "4000000"])
        #expect(unnamed?.watchdogMicroseconds == 4_000_000)
        let another = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"])
        #expect(another?.watchdogMicroseconds == nil)
        let zero = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "0"])
        #expect(zero?.watchdogMicroseconds == nil)
    }

    @Test func reloadingCarriesTheMonotonicClock() throws {
        let assignments = SystemdNotifier.reloadingAssignments()
        #expect(assignments.first == "RELOADING=1")
        let usec = try #require(assignments.last.flatMap { $0.split(separator: "=").last }.flatMap { UInt64($0) })
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let current = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
        #expect(usec <= current && current - usec < 5_000_000)
    }

    /// The service: READY=1 only once the daemon is ready, WATCHDOG=1 at half the interval while healthy and not
    /// while unhealthy, STOPPING=1 on graceful shutdown.
    @Test func theServiceSaysReadyFeedsTheWatchdogAndSaysStopping() async throws {
        let socket = try NotifySocket()
        let notifier = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.address, "WATCHDOG_USEC": "200000"]))
        let state = TestFlags()
        let service = SystemdNotifyService(
            notifier: notifier,
            readinessProblems: { state.ready ? [] : ["source a: not connected yet"] },
            healthProblems: { state.healthy ? [] : ["store: disk I/O error"] },
            logger: .init(label: "test"), readinessPollInterval: .milliseconds(20)
        )
        let group = ServiceGroupHarness(service)
        // Not ready: nothing but (after a second) a STATUS line, which a loaded machine may deliver before this
        // test task runs.
        var early = await socket.received(timeout: .milliseconds(300))
        while let line = early, line.hasPrefix("STATUS=") { early = await socket.received(timeout: .milliseconds(300)) }
        #expect(early == nil, "said before ready: \(early ?? "")")
        state.ready = true
        var ready = await socket.received()
        while let line = ready, line.hasPrefix("STATUS=") { ready = await socket.received() }
        #expect(ready == "READY=1\nSTATUS=consuming")
        #expect(await socket.received() == "WATCHDOG=1")
        #expect(await socket.received() == "WATCHDOG=1")
        state.healthy = false
        // Unhealthy: said once, then the watchdog is not fed. (Waits for messages, never for silence, except to
        // show that none comes: a loaded machine only delays messages.)
        var message = await socket.received()
        while let current = message, current == "WATCHDOG=1" { message = await socket.received() }
        #expect(message?.hasPrefix("STATUS=unhealthy: store: disk I/O error") == true)
        #expect(await socket.received(timeout: .milliseconds(500)) == nil, "the watchdog was fed while unhealthy")
        state.healthy = true
        #expect(await socket.received() == "WATCHDOG=1\nSTATUS=consuming")
        try await group.stop()
        var last: String?
        while let message = await socket.received(timeout: .milliseconds(300)) { last = message }
        #expect(last == "STOPPING=1\nSTATUS=stopping: draining in-flight work")
    }
}

/// Flags a test flips while a service reads them.
final class TestFlags: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var readyValue = false
    private var healthyValue = true
    var ready: Bool {
        get { lock.withLock { readyValue } }
        set { lock.withLock { readyValue = newValue } }
    }
    var healthy: Bool {
        get { lock.withLock { healthyValue } }
        set { lock.withLock { healthyValue = newValue } }
    }
}

/// One service in a running service group, stopped gracefully by the test.
struct ServiceGroupHarness {
    let group: ServiceGroup
    let task: Task<Void, any Error>

    init(_ service: some Service) {
        let group = ServiceGroup(configuration: .init(services: [.init(service: service)], logger: Logger(label: "test")))
        self.group = group
        task = Task { try await group.run() }
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}
