#if os(Linux)
import Foundation
import Testing
@testable import CRMIngest

/// `crm-ingest run --cpu-scheduling`: the policy reaches every thread of a process, and back.
@Suite struct CPUSchedulingTests {
    @Test func batchThenNormalReachesEveryThreadOfAProcess() throws {
        // python3 with three threads besides its main one, all asleep, started under SCHED_OTHER whatever this
        // test runs under.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "chrt", "--other", "0", "python3", "-c",
            "import threading, time\nfor _ in range(3): threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\ntime.sleep(60)",
        ]
        try process.run()
        defer { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        let pid = process.processIdentifier
        let deadline = Date().addingTimeInterval(10)
        while CPUScheduling.policies(of: pid).count < 4, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        #expect(CPUScheduling.policies(of: pid) == [0, 0, 0, 0])

        #expect(try CPUScheduling.inherit.apply(toProcess: pid) == 0)
        #expect(CPUScheduling.policies(of: pid) == [0, 0, 0, 0])

        #expect(try CPUScheduling.batch.apply(toProcess: pid) == 4)
        #expect(CPUScheduling.policies(of: pid) == [3, 3, 3, 3])
        // Already there: nothing to switch.
        #expect(try CPUScheduling.batch.apply(toProcess: pid) == 0)

        #expect(try CPUScheduling.normal.apply(toProcess: pid) == 4)
        #expect(CPUScheduling.policies(of: pid) == [0, 0, 0, 0])
    }

    @Test func aProcessThatIsGoneIsAnErrorNamingProc() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        let error = #expect(throws: CPUScheduling.Failure.self) { try CPUScheduling.batch.apply(toProcess: process.processIdentifier) }
        #expect(error?.description.contains("/proc/\(process.processIdentifier)/task") == true)
    }

    /// A policy `run` does not know is refused before anything starts, naming the option and the choices.
    @Test func runRefusesAnUnknownPolicy() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let result = try runCRMIngest(["run", "--cpu-scheduling", "fifo"], in: folder.url, environment: ["CRM_INGEST_DATA": folder.path("data")])
        #expect(result.status == 64)
        #expect(result.stderr.contains("--cpu-scheduling"))
        #expect(result.stderr.contains("'batch'") && result.stderr.contains("'normal'") && result.stderr.contains("'inherit'"))
        #expect(!FileManager.default.fileExists(atPath: folder.path("data")))
    }
}
#endif
