#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The Linux CPU scheduling policy the daemon's threads run under (`crm-ingest run --cpu-scheduling`).
///
/// `batch` (the default) is Linux's `SCHED_BATCH`, the policy for throughput work that is not interactive: a
/// thread of the daemon that wakes up does not preempt the thread running on that CPU, it runs when that one
/// yields or its slice ends. The daemon's work gives way gracefully (group commit: events that wait join the next
/// transaction, which then costs less per event), while a broker on the same machine is a chain of serial
/// processes that deliver less whenever they are preempted. Measured on 2 cores with RabbitMQ beside the daemon
/// (Docs/BENCHMARKS.md): drains 11-19% faster with 40% fewer transactions, the same latency at a fixed rate and the
/// same HTTP throughput. The nice value is not changed: a `batch` thread gets the same share of a busy CPU.
/// `normal` is `SCHED_OTHER`, every other process's policy.
public enum CPUScheduling: String, Sendable, CaseIterable {
    case batch
    case normal

    /// The policy's number for `sched_setscheduler` (`<linux/sched.h>`: `SCHED_OTHER` 0, `SCHED_BATCH` 3; Swift's
    /// Glibc module leaves `SCHED_BATCH` out, it needs `_GNU_SOURCE`).
    var policy: Int32 {
        switch self {
        case .batch: return 3
        case .normal: return 0
        }
    }

    /// Why a thread's policy could not be set.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var threadId: Int32
        public var errno: Int32
        public var description: String {
            "sched_setscheduler on thread \(threadId): \(String(cString: strerror(errno)))"
        }
    }

    /// Puts every thread of a process under this policy; threads they start later inherit it (threads are created
    /// with the creator's policy unless they ask otherwise, and NIO, Dispatch, Foundation and Swift's cooperative
    /// pool do not). Passes over `/proc/PID/task` until one finds every thread under the policy, so a thread
    /// started by one not yet switched is not missed. `processId` nil: this process. Linux only; elsewhere nothing
    /// happens. Returns the threads switched; throws the first thread that refused (a seccomp or container policy
    /// that forbids `sched_setscheduler`), after trying them all.
    @discardableResult
    public func apply(toProcess processId: Int32? = nil) throws -> Int {
        #if os(Linux)
        let folder = "/proc/\(processId.map(String.init) ?? "self")/task"
        var param = sched_param()
        param.sched_priority = 0
        var switched = 0
        for _ in 0..<10 {
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return switched }
            var failure: Failure?
            var changedThisPass = 0
            for threadId in entries.compactMap(Int32.init) where sched_getscheduler(threadId) != policy {
                if sched_setscheduler(threadId, policy, &param) == 0 {
                    changedThisPass += 1
                } else if Glibc.errno != ESRCH { // ESRCH: the thread ended meanwhile
                    failure = failure ?? Failure(threadId: threadId, errno: Glibc.errno)
                }
            }
            if let failure { throw failure }
            switched += changedThisPass
            if changedThisPass == 0 { return switched }
        }
        return switched
        #else
        return 0
        #endif
    }

    /// The policy a thread runs under, from `/proc/PID/task/TID/stat` (field 41); nil when the thread is gone.
    public static func policyNumber(process processId: Int32, thread threadId: Int32) -> Int32? {
        guard let stat = try? String(contentsOfFile: "/proc/\(processId)/task/\(threadId)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command's closing parenthesis start at field 3 (state).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 38 ? Int32(fields[38]) : nil
    }
}
