import CRMConfig
import CRMCore
import CRMSourceSupport
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTPTypes
import ServiceLifecycle

/// One configured HTTP integration, ready to serve: its endpoint, how it authenticates and its metrics.
public struct HTTPIntegration: Sendable {
    public var integration: IncomingIntegration
    /// nil: `auth: none`.
    public var verifier: IncomingJWTVerifier?
    public var metrics: EventMetrics

    public init(integration: IncomingIntegration, verifier: IncomingJWTVerifier?, metrics: EventMetrics) {
        self.integration = integration
        self.verifier = verifier
        self.metrics = metrics
    }
}

/// What the operational endpoints report, supplied by the daemon.
public struct OperationalProbes: Sendable {
    /// Why the daemon is not ready (store unreachable, a source not connected); empty when ready.
    public var readinessProblems: @Sendable () async -> [String]
    /// The Prometheus text exposition of every metric.
    public var metricsText: @Sendable () -> String

    public init(readinessProblems: @escaping @Sendable () async -> [String], metricsText: @escaping @Sendable () -> String) {
        self.readinessProblems = readinessProblems
        self.metricsText = metricsText
    }
}

/// The daemon's HTTP server on Hummingbird 2: `POST /incoming/<endpoint>` for the integrations, and `GET /healthz`,
/// `/readyz`, `/metrics`. A `Service`: on graceful shutdown it answers 503 to new requests, lets the ones in flight
/// finish, and stops.
public struct IncomingHTTPServer: Service {
    /// The integrations keyed by endpoint id and the mapping they feed, swapped together by a reload: a request
    /// reads them once, when it starts, so it never meets a new integration with an old mapping or the reverse.
    public struct Routing: Sendable {
        public var integrations: [String: HTTPIntegration]
        public var processor: EventProcessor

        public init(integrations: [String: HTTPIntegration], processor: EventProcessor) {
            self.integrations = integrations
            self.processor = processor
        }
    }

    let config: HTTPServerConfig
    /// Read once per request, so a reload can swap it.
    let routing: @Sendable () -> Routing
    let store: any CRMStore
    let probes: OperationalProbes
    let logger: Logger
    let now: @Sendable () -> Timestamp
    let makeEventId: @Sendable () -> String
    let onListening: @Sendable (Int) -> Void

    /// - Parameters:
    ///   - integrations: keyed by their endpoint id.
    ///   - processor: the current mapping (a reload swaps it); each request uses the one it started with.
    ///   - onListening: called with the bound port once the server accepts connections (port 0 picks a free one).
    public init(
        config: HTTPServerConfig, integrations: [HTTPIntegration], processor: @escaping @Sendable () -> EventProcessor,
        store: any CRMStore, probes: OperationalProbes, logger: Logger, now: @escaping @Sendable () -> Timestamp = Timestamp.now,
        makeEventId: @escaping @Sendable () -> String = { TimeOrderedEventId.make(at: Timestamp.now()) },
        onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
        let table = Self.table(integrations)
        self.init(
            config: config, routing: { Routing(integrations: table, processor: processor()) }, store: store, probes: probes, logger: logger,
            now: now, makeEventId: makeEventId, onListening: onListening
        )
    }

    /// - Parameter routing: the current integrations (see `table(_:)`) and mapping, read once per request: a reload
    ///   swaps both at once.
    public init(
        config: HTTPServerConfig, routing: @escaping @Sendable () -> Routing, store: any CRMStore, probes: OperationalProbes, logger: Logger,
        now: @escaping @Sendable () -> Timestamp = Timestamp.now, makeEventId: @escaping @Sendable () -> String = { TimeOrderedEventId.make(at: Timestamp.now()) },
        onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
        self.config = config
        self.routing = routing
        self.store = store
        self.probes = probes
        self.logger = logger
        self.now = now
        self.makeEventId = makeEventId
        self.onListening = onListening
    }

    /// Integrations keyed by their endpoint id (the first of two with one id wins; the configuration refuses that).
    public static func table(_ integrations: [HTTPIntegration]) -> [String: HTTPIntegration] {
        Dictionary(integrations.map { ($0.integration.endpointId, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public func run() async throws {
        let state = ServerState()
        let router = Router()
        let handler = IncomingRequestHandler(server: self, state: state)
        router.post("/incoming/:endpoint") { request, context in
            try await handler.handle(request, endpoint: context.parameters.get("endpoint") ?? "")
        }
        for method in [HTTPRequest.Method.get, .put, .delete, .patch, .head] {
            router.on("/incoming/:endpoint", method: method) { _, _ in
                JSONResponse.error(.methodNotAllowed, "method_not_allowed", "use POST", headers: [.allow: "POST"])
            }
        }
        router.get("/healthz") { _, _ in JSONResponse.make(.ok, .object([("status", .string("ok"))])) }
        router.get("/readyz") { _, _ in
            let problems = await probes.readinessProblems()
            if problems.isEmpty { return JSONResponse.make(.ok, .object([("status", .string("ready"))])) }
            return JSONResponse.make(.serviceUnavailable, .object([
                ("status", .string("not_ready")), ("problems", .array(problems.map(JSONValue.string))),
            ]))
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: probes.metricsText()))
            )
        }
        let onListening = self.onListening
        let logger = self.logger
        let readTimeout = TimeAmount.nanoseconds(Int64(config.readTimeout.components.seconds) * 1_000_000_000)
        let routing = self.routing
        let app = Application(
            router: router,
            // Closes a connection idle (between requests, or within one) for the read timeout, or whose request
            // has not arrived whole within it.
            server: .http1(configuration: .init(
                additionalChannelHandlers: [RequestReadDeadline(timeout: readTimeout)], idleTimeout: readTimeout
            )),
            configuration: ApplicationConfiguration(address: .hostname(config.host, port: config.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let table = routing().integrations
                logger.info("http server listening", metadata: [
                    "address": "\(config.host):\(port)", "integrations": "\(table.count)",
                ])
                for integration in table.values { integration.metrics.setUp(true) }
                onListening(port)
            },
            logger: logger
        )
        try await withGracefulShutdownHandler {
            try await app.run()
        } onGracefulShutdown: {
            state.beginShutdown()
        }
        for integration in routing().integrations.values { integration.metrics.setUp(false) }
        logger.info("http server stopped", metadata: ["answered_during_shutdown": "\(state.refusedDuringShutdown)"])
    }
}

/// Shared by the handlers: whether the server is shutting down.
final class ServerState: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var shuttingDown = false
    private var refused = 0

    func beginShutdown() { lock.withLock { shuttingDown = true } }

    /// True (and counted) when a new request must be refused because the server is stopping.
    func refuseBecauseStopping() -> Bool {
        lock.withLock {
            if shuttingDown { refused += 1 }
            return shuttingDown
        }
    }

    var refusedDuringShutdown: Int { lock.withLock { refused } }
}

/// `POST /incoming/<endpoint>`: authenticate, parse, deduplicate, apply, answer.
struct IncomingRequestHandler: Sendable {
    let server: IncomingHTTPServer
    let state: ServerState

    func handle(_ request: Request, endpoint: String) async throws -> Response {
        let routing = server.routing()
        guard let integration = routing.integrations[endpoint] else {
            return JSONResponse.error(.notFound, "unknown_endpoint", "no integration has the endpoint \"\(endpoint.prefix(64))\"")
        }
        let metrics = integration.metrics
        if state.refuseBecauseStopping() {
            return JSONResponse.error(.serviceUnavailable, "shutting_down", "the daemon is stopping; retry later", headers: [.retryAfter: "5"])
        }
        let contentType = request.headers[.contentType].map(Self.mediaType(of:))
        guard let contentType, contentType == "application/json" || (contentType.hasPrefix("application/") && contentType.hasSuffix("+json")) else {
            metrics.count(.rejected, type: nil)
            return JSONResponse.error(.unsupportedMediaType, "not_json", "send the body as Content-Type: application/json, got \(contentType.map { "\"\($0)\"" } ?? "none")")
        }
        // JSON is read as UTF-8, uncompressed: another charset or an encoding is the client's choice the server does
        // not support (415), not a broken body (400).
        if let problem = Self.unsupportedEncoding(contentType: request.headers[.contentType] ?? "", contentEncoding: request.headers[.contentEncoding]) {
            metrics.count(.rejected, type: nil)
            return JSONResponse.error(.unsupportedMediaType, "unsupported_encoding", problem)
        }
        let started = ContinuousClock.now
        // Authenticated before the body is read: an unauthenticated client gets no memory for its body.
        if let verifier = integration.verifier {
            if case let .failure(failure) = await verifier.verify(authorization: request.headers[.authorization], now: server.now()) {
                metrics.count(.rejected, type: nil)
                server.logger.notice("refused an unauthenticated request", metadata: ["source": "\(integration.integration.source)", "reason": "\(LogRedaction.reason(failure.reason))"])
                return JSONResponse.error(.unauthorized, "unauthorized", failure.reason, headers: [.wwwAuthenticate: "Bearer", .connection: "close"])
            }
        }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: server.config.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            metrics.count(.rejected, type: nil)
            return JSONResponse.error(.contentTooLarge, "body_too_large", "the body is larger than max_body (\(server.config.maxBodyBytes) bytes)",
                                      headers: [.connection: "close"])
        }
        let receivedAt = server.now()
        let incoming = IncomingRequest(
            method: request.method.rawValue,
            headers: request.headers.map { (name: $0.name.rawName, value: $0.value) },
            body: Array(buffer: body), receivedAt: receivedAt, eventId: server.makeEventId()
        )
        let event: PlannedEvent
        do {
            event = try integration.integration.prepare(incoming, planner: routing.processor.planner)
        } catch {
            metrics.count(.received, type: nil)
            metrics.count(.rejected, type: nil)
            return JSONResponse.make(.badRequest, .object([
                ("error", .string(Self.snakeCase(error.code.description))), ("field", .string(error.field)), ("reason", .string(error.reason)),
            ]))
        }
        let type = event.type.rawValue
        metrics.count(.received, type: type)
        let outcome: EventOutcome
        do {
            outcome = try await server.store.apply([event], now: receivedAt, timing: .prompt).first ?? .failed(StoreError(.unavailable, "no outcome"))
        } catch {
            let storeError = error as? StoreError ?? StoreError(.unavailable, "\(error)")
            server.logger.error("store failed for an incoming request", metadata: ["source": "\(integration.integration.source)", "error": "\(storeError)"])
            if storeError.isTransient {
                // Handed back to the sender, who retries: as a RabbitMQ message given back.
                metrics.count(.requeued, type: type)
                return JSONResponse.error(.serviceUnavailable, "store_unavailable", "the store is unavailable; retry later", headers: [.retryAfter: "5"])
            }
            metrics.count(.failed, type: type)
            // The store's own message (SQL, a file path) goes to the log only, not to an unauthenticated caller.
            return JSONResponse.error(.internalServerError, "store_error", "the store failed; the daemon's log says why")
        }
        metrics.recordLatency(ContinuousClock.now - started)
        switch outcome {
        case .duplicate, .unchanged:
            metrics.count(.duplicate, type: type)
            return Response(status: .noContent)
        case let .applied(notes):
            let mapped = event.operations.count > 1
            metrics.count(mapped ? (notes.isEmpty ? .applied : .incomplete) : .skipped, type: type)
            var fields: [(key: String, value: JSONValue)] = [("eventId", .string(incoming.eventId)), ("type", .string(type))]
            if !mapped { fields.append(("actions", .string("none mapped: recorded only"))) }
            if !notes.isEmpty { fields.append(("notes", .array(notes.map(JSONValue.string)))) }
            return JSONResponse.make(.ok, .object(fields))
        case .imported:
            // Requests build their own operations here; profile imports come from RabbitMQ only.
            metrics.count(.applied, type: type)
            return JSONResponse.make(.ok, .object([("eventId", .string(incoming.eventId)), ("type", .string(type))]))
        case let .failed(error):
            metrics.count(.rejected, type: type)
            return JSONResponse.error(.unprocessableContent, "refused_by_store", error.message)
        }
    }

    /// Why a body sent with these headers cannot be read (a charset whose text is not ASCII bytes, such as UTF-16; a
    /// content encoding such as gzip), or nil. ASCII-compatible labels (us-ascii, iso-8859-1) pass: the body is read
    /// as UTF-8, and bytes that are not UTF-8 answer 400 naming the offset. Cheap when, as usual, neither is there.
    static func unsupportedEncoding(contentType: String, contentEncoding: String?) -> String? {
        if let encoding = contentEncoding, !encoding.isEmpty, encoding.lowercased() != "identity" {
            return "Content-Encoding \"\(encoding.prefix(64))\" is not supported: send the JSON uncompressed"
        }
        guard contentType.utf8.contains(UInt8(ascii: ";")) else { return nil }
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, pair[0].lowercased() == "charset" else { continue }
            let charset = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")).lowercased()
            if ["utf-16", "utf-32", "ucs-2", "ucs-4", "utf16", "utf32"].contains(where: { charset.hasPrefix($0) }) {
                return "charset \"\(charset.prefix(64))\" is not supported: send the JSON as UTF-8"
            }
        }
        return nil
    }

    /// The media type of a Content-Type value: before any `;` parameters, without surrounding spaces and tabs, in
    /// lower case (`Application/JSON; charset=utf-8` -> `application/json`). Works on bytes: Foundation's trimming
    /// goes through `NSString`, a noticeable share of a request's CPU.
    static func mediaType(of value: String) -> String {
        let bytes = value.utf8
        let end = bytes.firstIndex(of: UInt8(ascii: ";")) ?? bytes.endIndex
        let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        let kept = bytes[..<end].drop(while: isBlank).reversed().drop(while: isBlank).reversed()
        return String(decoding: kept.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 + 32 : $0 }, as: UTF8.self)
    }

    /// `invalidJSON` -> `invalid_json`: the API's error codes are snake case.
    static func snakeCase(_ code: String) -> String {
        var out = ""
        var previousWasUpper = false
        for character in code {
            if character.isUppercase {
                if !out.isEmpty, !previousWasUpper { out.append("_") }
                out.append(Character(character.lowercased()))
                previousWasUpper = true
            } else {
                out.append(character)
                previousWasUpper = false
            }
        }
        return out
    }
}

/// JSON responses: `{"error": code, "reason": text}` for errors.
enum JSONResponse {
    static func make(_ status: HTTPResponse.Status, _ value: JSONValue, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: JSONWriter.string(value))))
    }

    static func error(_ status: HTTPResponse.Status, _ code: String, _ reason: String, headers: HTTPFields = [:]) -> Response {
        make(status, .object([("error", .string(code)), ("reason", .string(reason))]), headers: headers)
    }
}

/// Closes a connection whose request has not arrived whole (head, body, end) within `timeout` of its head: a body
/// dripped a byte at a time never trips the idle timeout, yet must not hold its handler, or a graceful stop that
/// waits for handlers. One timer per request on the connection's event loop.
final class RequestReadDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            timer?.cancel()
            let channel = context.channel
            timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { channel.close(promise: nil) }
        case .end:
            timer?.cancel()
            timer = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }
}
