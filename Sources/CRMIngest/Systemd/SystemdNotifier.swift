import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// systemd's notify protocol (sd_notify(3)) without libsystemd: newline-separated `KEY=VALUE` assignments sent as
/// one datagram to the AF_UNIX socket named by `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
/// Sending never blocks: a datagram that cannot be sent at once is dropped and reported, as sd_notify does.
public struct SystemdNotifier: Sendable {
    /// The socket's address as `NOTIFY_SOCKET` gives it.
    public let socketPath: String
    /// `WATCHDOG_USEC` when it applies to this process (`WATCHDOG_PID` unset or ours); nil: no watchdog.
    public let watchdogMicroseconds: UInt64?

    /// The notifier the environment asks for; nil when `NOTIFY_SOCKET` is unset (not run by systemd as Type=notify).
    public init?(environment: [String: String], processIdentifier: Int32 = getpid()) {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty else { return nil }
        socketPath = path
        if let usec = environment["WATCHDOG_USEC"].flatMap(UInt64.init), usec > 0,
           environment["WATCHDOG_PID"].flatMap(Int32.init).map({ $0 == processIdentifier }) ?? true {
            watchdogMicroseconds = usec
        } else {
            watchdogMicroseconds = nil
        }
    }

    /// Why a notification could not be sent.
    public struct SendError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Sends one notification, e.g. `["READY=1", "STATUS=consuming"]`.
    public func send(_ assignments: [String]) throws(SendError) {
        let message = Array(assignments.joined(separator: "\n").utf8)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(socketPath.utf8)
        let abstract = pathBytes.first == UInt8(ascii: "@")
        if abstract { pathBytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity, pathBytes.count > 0 else {
            throw SendError(description: "NOTIFY_SOCKET \(socketPath): not a usable socket address")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        // A path address counts its terminating zero; an abstract one is exactly its bytes.
        let length = socklen_t(MemoryLayout<sa_family_t>.size + pathBytes.count + (abstract ? 0 : 1))
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SendError(description: "socket(AF_UNIX): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                message.withUnsafeBytes { bytes in
                    sendto(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), socketAddress, length)
                }
            }
        }
        guard sent == message.count else {
            throw SendError(description: "sending to NOTIFY_SOCKET \(socketPath): \(String(cString: strerror(errno)))")
        }
    }

    /// `RELOADING=1` with the monotonic time systemd's `Type=notify-reload` asks for.
    public static func reloadingAssignments() -> [String] {
        // Dispatch's uptime is CLOCK_MONOTONIC on Linux.
        ["RELOADING=1", "MONOTONIC_USEC=\(DispatchTime.now().uptimeNanoseconds / 1_000)"]
    }
}
