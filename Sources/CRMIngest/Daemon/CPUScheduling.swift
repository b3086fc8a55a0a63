#if canImport(Glibc)
import Glibc
#endif

/// The Linux CPU scheduling policy the daemon's threads run under (`crm-ingest run --cpu-scheduling`).
///
/// `batch` (the default) is Linux's `SCHED_BATCH`, the policy for throughput work that is not interactive: a
/// thread of the daemon that wakes up does not preempt the thread running on that CPU, it runs when that one
/// yields or its slice ends. The daemon's work gives way gracefully (group commit: events that wait join the next
/// transaction, which then costs less per event), while a broker on the same machine is a chain of serial
/// processes that deliver less whenever they are preempted. Measured on 2 cores with RabbitMQ beside the daemon
/// (Docs/BENCHMARKS.md): drains 11-19% faster with 40% fewer transactions, the same latency at a fixed rate and the
/// same HTTP throughput. The nice value is not changed: a `batch` thread gets the same share of a busy CPU.
/// `normal` sets `SCHED_OTHER`, every other process's policy; `inherit` leaves the policy the daemon was started
/// with (systemd's `CPUSchedulingPolicy=`, `chrt`).
public enum CPUScheduling: String, Sendable, CaseIterable {
    case batch
    case normal
    case inherit

    /// The policy's number for `sched_setscheduler` (`<linux/sched.h>`: `SCHED_OTHER` 0, `SCHED_BATCH` 3; Swift's
    /// Glibc module leaves `SCHED_BATCH` out, it needs `_GNU_SOURCE`); nil for `inherit`.
    var policy: Int32? {
        switch self {
        case .batch: return 3
        case .normal: return 0
        case .inherit: return nil
        }
    }

    /// `SCHED_RESET_ON_FORK`, which `sched_getscheduler` adds to the policy of a thread that has it.
    static let resetOnForkFlag: Int32 = 0x4000_0000

    /// Why the policy could not be set.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Puts every thread of a process under this policy; threads they start later inherit it (threads are created
    /// with the creator's policy unless they ask otherwise, and NIO, Dispatch, Foundation and Swift's cooperative
    /// pool do not). Passes over `/proc/PID/task` until one finds every thread under the policy, so a thread
    /// started by one not yet switched is not missed. `processId` nil: this process. Returns the threads switched.
    /// Throws when /proc cannot be read, when a thread refused (a seccomp or container policy that forbids
    /// `sched_setscheduler`; after trying them all), or when threads kept appearing for 10 passes. Not Linux:
    /// nothing happens (`inherit` never does anything).
    @discardableResult
    public func apply(toProcess processId: Int32? = nil) throws(Failure) -> Int {
        #if os(Linux)
        guard let policy else { return 0 }
        var param = sched_param()
        param.sched_priority = 0
        var switched = 0
        for _ in 0..<10 {
            guard let threads = ProcFiles.threadIds(of: processId) else {
                throw Failure(description: "cannot list the threads in /proc/\(processId.map(String.init) ?? "self")/task")
            }
            var refusal: Failure?
            var changedThisPass = 0
            for thread in threads where sched_getscheduler(thread) & ~Self.resetOnForkFlag != policy {
                if sched_setscheduler(thread, policy, &param) == 0 {
                    changedThisPass += 1
                    continue
                }
                let code = errno
                if code != ESRCH, refusal == nil { // ESRCH: the thread ended meanwhile
                    refusal = Failure(description: "sched_setscheduler on thread \(thread): \(String(cString: strerror(code)))")
                }
            }
            if let refusal { throw refusal }
            switched += changedThisPass
            if changedThisPass == 0 { return switched }
        }
        throw Failure(description: "threads kept starting under another policy for 10 passes over /proc")
        #else
        return 0
        #endif
    }

    /// The policy a thread runs under, from `/proc/PID/task/TID/stat` (field 41); nil when the thread is gone.
    static func policyNumber(process processId: Int32, thread threadId: Int32) -> Int32? {
        guard let stat = ProcFiles.read("/proc/\(processId)/task/\(threadId)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command's closing parenthesis start at field 3 (state).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 38 ? Int32(fields[38]) : nil
    }

    /// The policy of every thread of a process that could be read (for tests and diagnostics).
    static func policies(of processId: Int32) -> [Int32] {
        (ProcFiles.threadIds(of: processId) ?? []).compactMap { policyNumber(process: processId, thread: $0) }
    }
}
