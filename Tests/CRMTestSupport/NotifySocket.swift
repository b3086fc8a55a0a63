import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A datagram socket standing in for systemd's notify socket: bound to a path (or an abstract name), read with a
/// timeout.
public final class NotifySocket: @unchecked Sendable {
    // The descriptor is only read from; one test reads at a time.
    public let descriptor: Int32
    /// What `NOTIFY_SOCKET` should say.
    public let address: String
    private let path: String?

    public init(abstract: Bool = false) throws {
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.descriptor = descriptor
        let name = abstract ? "crm-ingest-test-\(UUID().uuidString.prefix(8))" : NSTemporaryDirectory() + "notify-\(UUID().uuidString.prefix(8)).sock"
        var bytes = Array(name.utf8)
        if abstract { bytes.insert(0, at: 0) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL) }
        self.address = abstract ? "@" + name : name
        path = abstract ? nil : name
    }

    /// The next datagram, or nil after `timeout`.
    public func receive(timeout: Duration = .seconds(10)) -> String? {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(timeout.components.seconds * 1_000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        guard poll(&poller, 1, milliseconds) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    /// `receive` on a thread of its own, for async tests: a test blocked in `poll` on a thread of Swift's cooperative
    /// pool (two threads on two cores) starved the service it was waiting for when the whole suite ran under the
    /// sanitizers, and the message came after the timeout.
    public func received(timeout: Duration = .seconds(10)) async -> String? {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: self.receive(timeout: timeout)) }
        }
    }

    deinit {
        close(descriptor)
        if let path { unlink(path) }
    }
}

