import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a blocking closure on a thread of its own and awaits it, so it never occupies the cooperative pool.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

public func onOwnThread(_ body: @escaping @Sendable () -> Void) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        Thread {
            body()
            continuation.resume()
        }.start()
    }
}

/// Thread names the kernel shows (`top -H`, `ps -L`, `/proc/PID/task/TID/comm`, profiles). A name given through
/// Foundation's `Thread.name` did not reach the kernel here (not even one of 15 bytes; `pthread_setname_np` refuses
/// longer ones outright), and a thread left unnamed shows its creator's name (`oot.default-qos` for one started
/// from Swift's pool).
public enum ThreadName {
    /// Names the calling thread: call it first thing in the thread's body, with a name from `make`.
    /// (Through `/proc/thread-self/comm`: Glibc's module does not export the GNU `pthread_setname_np`.)
    public static func nameCurrentThread(_ name: String) {
        #if canImport(Glibc)
        let descriptor = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = Array(name.utf8.prefix(15)).withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
        #endif
    }

    /// `prefix`, then as much of `name` as fits, then `suffix`: at most 15 bytes, cut between characters
    /// (`make("rmq:", "app-events")` is `rmq:app-events`; `make("sqs:", "orders", suffix: ":0")` is `sqs:orders:0`).
    public static func make(_ prefix: String, _ name: String, suffix: String = "") -> String {
        let room = 15 - prefix.utf8.count - suffix.utf8.count
        var kept = ""
        for character in name {
            guard kept.utf8.count + character.utf8.count <= room else { break }
            kept.append(character)
        }
        return prefix + kept + suffix
    }
}
