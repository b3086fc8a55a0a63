import Logging
import ServiceLifecycle

/// Tells systemd how the daemon is (`Type=notify`): `READY=1` once the store answers and every source is connected,
/// `WATCHDOG=1` every half `WATCHDOG_USEC` while the pipeline is healthy, `STOPPING=1` when the graceful shutdown
/// begins (it is the group's last service, so the first to hear of it). Reloads send their own `RELOADING=1` and
/// `READY=1` (see `ConfigReloader`).
///
/// Healthy means the store answers. A source waiting for its broker is not a reason for systemd to restart the
/// daemon (a restart does not bring the broker back): it shows in `STATUS=` and `/readyz`, and the watchdog goes on.
struct SystemdNotifyService: Service {
    let notifier: SystemdNotifier
    /// Set once READY=1 was sent (reloads say RELOADING/READY only after it).
    var announcedReady = ReloadableValue(false)
    /// Why the daemon is not ready yet (store, sources); empty: ready.
    let readinessProblems: @Sendable () async -> [String]
    /// Why the pipeline is unhealthy; empty: healthy, the watchdog is fed.
    let healthProblems: @Sendable () async -> [String]
    let logger: Logger
    var readinessPollInterval: Duration = .milliseconds(100)

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var waitingSince = ContinuousClock.now
            var lastStatus = ""
            while true {
                let problems = await readinessProblems()
                if problems.isEmpty { break }
                let status = "STATUS=starting: \(problems.joined(separator: "; "))"
                if status != lastStatus, ContinuousClock.now - waitingSince > .seconds(1) {
                    send([status])
                    lastStatus = status
                    waitingSince = ContinuousClock.now
                }
                try await Task.sleep(for: readinessPollInterval)
            }
            send(["READY=1", "STATUS=consuming"])
            announcedReady.replace(with: true)
            logger.info("systemd told READY=1")
            guard let watchdog = notifier.watchdogMicroseconds else {
                try await gracefulShutdown()
                return
            }
            let interval = Duration.microseconds(Int64(watchdog / 2))
            var unhealthy = false
            while true {
                let problems = await healthProblems()
                if problems.isEmpty {
                    send(["WATCHDOG=1"] + (unhealthy ? ["STATUS=consuming"] : []))
                    unhealthy = false
                } else if !unhealthy {
                    unhealthy = true
                    logger.warning("pipeline unhealthy; the systemd watchdog is not fed", metadata: ["problems": "\(problems.joined(separator: "; "))"])
                    send(["STATUS=unhealthy: \(problems.joined(separator: "; "))"])
                }
                try await Task.sleep(for: interval)
            }
        }
        send(["STOPPING=1", "STATUS=stopping: draining in-flight work"])
    }

    private func send(_ assignments: [String]) {
        do { try notifier.send(assignments) } catch { logger.warning("systemd notification failed: \(error)") }
    }
}
