import CRMConfig
import CRMCore
import CRMSourceHTTP
import CRMSourceSupport
import CRMStoreSQLite
import Crypto
import CryptoExtras
import CurlHTTP
import Foundation
import Glibc
import Logging
import ServiceLifecycle

/// A clock tests move by hand.
final class ManualClock: @unchecked Sendable {
    // `current` is guarded by `lock`.
    private let lock = NSLock()
    private var current: Timestamp

    init(_ start: Timestamp = Timestamp(secondsSinceEpoch: 1_790_000_000)) { current = start }

    var now: Timestamp { lock.withLock { current } }
    func advance(seconds: Int64) { lock.withLock { current = Timestamp(microsecondsSinceEpoch: current.microsecondsSinceEpoch + seconds * 1_000_000) } }
}

/// A running `IncomingHTTPServer` on a free loopback port, with a real SQLite store in a temp folder.
final class RunningServer: @unchecked Sendable {
    // Set once before `start` returns.
    let store: SQLiteCRMStore
    let folder: URL
    let clock: ManualClock
    private(set) var port = 0
    private var group: ServiceGroup?
    private var task: Task<Void, any Error>?

    init(clock: ManualClock = ManualClock()) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-http-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        store = try SQLiteCRMStore(path: folder.appendingPathComponent("crm.sqlite").path)
        self.clock = clock
    }

    /// A server on an existing database file (a restart).
    init(reopening path: String, clock: ManualClock) throws {
        folder = URL(fileURLWithPath: (path as NSString).deletingLastPathComponent)
        store = try SQLiteCRMStore(path: path)
        self.clock = clock
    }

    /// Starts the server and waits until it listens.
    func start(
        integrations: [HTTPIntegration], mapping: Mapping, store override: (any CRMStore)? = nil,
        maxBody: Int = 1 << 20, readTimeout: Duration = .seconds(30), probes: OperationalProbes? = nil,
        routing: (@Sendable () -> IncomingHTTPServer.Routing)? = nil
    ) async throws {
        let listening = PortBox()
        let clock = self.clock
        let store: any CRMStore = override ?? self.store
        let table = IncomingHTTPServer.table(integrations)
        let processor = EventProcessor(mapping: mapping)
        let server = IncomingHTTPServer(
            config: HTTPServerConfig(host: "127.0.0.1", port: 0, maxBodyBytes: maxBody, readTimeout: readTimeout),
            routing: routing ?? { IncomingHTTPServer.Routing(integrations: table, processor: processor) }, store: store,
            probes: probes ?? OperationalProbes(readinessProblems: { [] }, metricsText: { "" }),
            logger: Logger(label: "test.http"), now: { clock.now }, onListening: { listening.set($0) }
        )
        let group = ServiceGroup(services: [server], logger: Logger(label: "test.http"))
        self.group = group
        task = Task { try await group.run() }
        let deadline = ContinuousClock.now + .seconds(20)
        while listening.value == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        port = listening.value
        guard port != 0 else { throw TestFailure("the server did not start listening within 20 s") }
    }

    func stop() async throws {
        await group?.triggerGracefulShutdown()
        try await task?.value
        try? FileManager.default.removeItem(at: folder)
    }

    /// Starts a graceful stop and waits for it at most `deadline`: false when it did not end (the stop is left
    /// running, so a server that never stops fails the test instead of hanging the run).
    func stop(within deadline: Duration) async -> Bool {
        let done = StopFlag()
        let group = self.group
        let task = self.task
        Task {
            await group?.triggerGracefulShutdown()
            _ = try? await task?.value
            done.set()
        }
        let started = ContinuousClock.now
        while !done.isSet, ContinuousClock.now - started < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if done.isSet { try? FileManager.default.removeItem(at: folder) }
        return done.isSet
    }

    /// Stops the server and leaves the database in place.
    func stopKeepingFiles() async {
        await group?.triggerGracefulShutdown()
        _ = try? await task?.value
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// One request over real HTTP, on a thread of its own (curl blocks; the server needs the cooperative pool).
    func send(
        _ path: String, method: String = "POST", json: String? = nil, headers: [(String, String)] = [],
        contentType: String? = "application/json"
    ) async throws -> HTTPResponse {
        var all = headers.map { (name: $0.0, value: $0.1) }
        if let contentType, json != nil { all.append((name: "Content-Type", value: contentType)) }
        let request = CurlHTTP.HTTPRequest(method: method, url: url(path), headers: all, body: Array((json ?? "").utf8))
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result { () throws -> HTTPResponse in
                    try CurlHTTPClient().send(request, timeout: .seconds(30))
                })
            }.start()
        }
    }
}

/// A raw TCP connection to the server, for clients curl will not play: one that stalls or drips its body.
final class RawConnection: @unchecked Sendable {
    // The descriptor is used by one test task at a time.
    private let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard fd >= 0, connected == 0 else { throw TestFailure("cannot connect to 127.0.0.1:\(port)") }
    }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// What the server sent until it closed the connection or `timeout` passed (on a thread: `recv` blocks).
    func received(within timeout: Duration) async -> String {
        let fd = self.fd
        return await withCheckedContinuation { continuation in
            Thread {
                var seconds = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &seconds, socklen_t(MemoryLayout<timeval>.size))
                var all: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let count = recv(fd, &buffer, buffer.count, 0)
                    if count <= 0 { break }
                    all += buffer[..<count]
                }
                continuation.resume(returning: String(decoding: all, as: UTF8.self))
            }.start()
        }
    }

    func close() { _ = Glibc.close(fd) }
}

final class PortBox: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var port = 0
    func set(_ value: Int) { lock.withLock { port = value } }
    var value: Int { lock.withLock { port } }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension HTTPResponse {
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: JSONValue? { try? JSONParser().parse(body) }
}

/// Builds JWTs by hand, including broken ones, so every refusal can be tested.
enum TokenMaker {
    static func base64URL(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func signingInput(header: String, claims: String) -> String {
        base64URL(Array(header.utf8)) + "." + base64URL(Array(claims.utf8))
    }

    static func hs256(header: String = #"{"alg":"HS256","typ":"JWT"}"#, claims: String, secret: [UInt8]) -> String {
        let input = signingInput(header: header, claims: claims)
        let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: secret))
        return input + "." + base64URL(Array(mac))
    }

    static func rs256(header: String = #"{"alg":"RS256","typ":"JWT"}"#, claims: String, key: _RSA.Signing.PrivateKey) throws -> String {
        let input = signingInput(header: header, claims: claims)
        let signature = try key.signature(for: SHA256.hash(data: Array(input.utf8)), padding: .insecurePKCS1v1_5)
        return input + "." + base64URL(Array(signature.rawRepresentation))
    }

    static func claims(exp: Int64?, nbf: Int64? = nil, aud: String? = "crm", iss: String? = "shop") -> String {
        var members: [(key: String, value: JSONValue)] = [("sub", .string("tester"))]
        if let exp { members.append(("exp", .number(String(exp)))) }
        if let nbf { members.append(("nbf", .number(String(nbf)))) }
        if let aud { members.append(("aud", .string(aud))) }
        if let iss { members.append(("iss", .string(iss))) }
        return JSONWriter.string(.object(members))
    }
}

/// One 2048-bit RSA key for the whole test run (generating one takes a while).
enum TestRSAKey {
    static let shared: _RSA.Signing.PrivateKey = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
}
