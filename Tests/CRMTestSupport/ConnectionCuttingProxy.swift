import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A TCP proxy on 127.0.0.1 in front of a server, which cuts a connection when the client sends a chosen byte
/// sequence: after handing that chunk to the server (the server acts on it, the client never hears back) or before
/// (the server never sees it). For tests of a connection lost at a chosen moment, such as during a PostgreSQL
/// `COMMIT`. Blocking sockets, two threads per connection: a test helper, not a server.
public final class ConnectionCuttingProxy: @unchecked Sendable {
    /// Where the cut falls relative to the chunk that holds the pattern.
    public enum Cut: Sendable {
        /// The client is cut off, then the chunk reaches the server, which then gets an orderly end.
        case afterForwarding
        /// The chunk is dropped, the client cut off, and the server gets an orderly end.
        case beforeForwarding
        /// The chunk is dropped and the client cut off, but the server's side stays open, as after a network
        /// partition: the server waits for more from a client that is gone, until `stop()`.
        case beforeForwardingLeavingTheServerWaiting
        /// The client is cut off and the chunk reaches the server, whose side stays open (a partition just after the
        /// request left): the server acts on it, then waits for more, until `stop()`.
        case afterForwardingLeavingTheServerWaiting
    }

    /// The port clients connect to.
    public let port: Int
    private let target: sockaddr_in
    /// Closed by the accept loop when it ends (`stop()` only shuts it down), so no other thread can meet its number
    /// reused.
    private let listener: Int32
    // Guarded by `lock`: every descriptor in `open` is still open; a pump removes its pair before closing it.
    private let lock = NSLock()
    private var armed: (pattern: [UInt8], cut: Cut)?
    private var cuts = 0
    private var open: Set<Int32> = []
    private var stopped = false
    private var listenerClosed = false

    public init(to host: String, port: Int) throws {
        target = Self.address(host, port: port)
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL) }
        var address = Self.address("127.0.0.1", port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 16) == 0 else {
            close(descriptor)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        listener = descriptor
        self.port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Cuts the next connection whose client sends `pattern` (within one read), once.
    public func cut(whenClientSends pattern: String, _ cut: Cut) {
        lock.withLock { armed = (Array(pattern.utf8), cut) }
    }

    /// Connections cut so far.
    public var cutCount: Int { lock.withLock { cuts } }

    /// Stops accepting and ends every connection; the threads close the descriptors as they finish. Idempotent.
    public func stop() {
        lock.withLock {
            guard !stopped else { return }
            stopped = true
            if !listenerClosed { shutdown(listener, Int32(SHUT_RDWR)) }
            for descriptor in open { shutdown(descriptor, Int32(SHUT_RDWR)) }
        }
    }

    deinit { stop() }

    private static func address(_ host: String, port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr(host)
        return address
    }

    private func acceptLoop() {
        defer {
            lock.withLock {
                listenerClosed = true
                close(listener)
            }
        }
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = target
            let connected = server >= 0 && withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
            let accepted = lock.withLock {
                guard !stopped, connected else { return false }
                open.formUnion([client, server])
                return true
            }
            guard accepted else {
                close(client)
                if server >= 0 { close(server) }
                if lock.withLock({ stopped }) { return }
                continue
            }
            let pair = Pair(client: client, server: server)
            Thread.detachNewThread { [self] in pump(pair, fromClient: true) }
            Thread.detachNewThread { [self] in pump(pair, fromClient: false) }
        }
    }

    /// One connection's two descriptors; closed once both directions ended.
    private final class Pair: @unchecked Sendable {
        let client: Int32
        let server: Int32
        private let lock = NSLock()
        private var ended = 0
        private var severed = false

        init(client: Int32, server: Int32) {
            self.client = client
            self.server = server
        }

        /// Cuts the client off at once; from then on what the server answers is read and dropped.
        func severClient() {
            lock.withLock { severed = true }
            shutdown(client, Int32(SHUT_RDWR))
        }

        /// An orderly end for the server after what it was sent (a reset could make it drop bytes it has not read).
        func endServer() {
            shutdown(server, Int32(SHUT_WR))
        }

        var isSevered: Bool { lock.withLock { severed } }

        /// True for the second direction to end: it closes the descriptors.
        func directionEnded() -> Bool {
            lock.withLock {
                ended += 1
                return ended == 2
            }
        }
    }

    private func pump(_ pair: Pair, fromClient: Bool) {
        let (source, sink) = fromClient ? (pair.client, pair.server) : (pair.server, pair.client)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(source, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            if !fromClient {
                // After a cut the server's answers go nowhere; read on until it closes.
                if pair.isSevered { continue }
                if !Self.writeAll(sink, buffer[0..<count]) { break }
                continue
            }
            let cut: Cut? = lock.withLock {
                guard let armed, Self.contains(buffer[0..<count], armed.pattern) else { return nil }
                self.armed = nil
                cuts += 1
                return armed.cut
            }
            guard let cut else {
                if !Self.writeAll(sink, buffer[0..<count]) { break }
                continue
            }
            // The client is cut off before the chunk goes on, so no answer to it can reach the client.
            pair.severClient()
            switch cut {
            case .afterForwarding:
                _ = Self.writeAll(sink, buffer[0..<count])
                pair.endServer()
            case .beforeForwarding:
                pair.endServer()
            case .beforeForwardingLeavingTheServerWaiting:
                break
            case .afterForwardingLeavingTheServerWaiting:
                _ = Self.writeAll(sink, buffer[0..<count])
            }
            break
        }
        if !pair.isSevered { shutdown(sink, Int32(SHUT_WR)) }
        if pair.directionEnded() {
            lock.withLock { _ = open.subtract([pair.client, pair.server]) }
            close(pair.client)
            close(pair.server)
        }
    }

    private static func writeAll(_ descriptor: Int32, _ bytes: ArraySlice<UInt8>) -> Bool {
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    private static func contains(_ haystack: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        var start = haystack.startIndex
        while start + needle.count <= haystack.endIndex {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
            start += 1
        }
        return false
    }
}
