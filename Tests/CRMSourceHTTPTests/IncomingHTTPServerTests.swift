import CRMConfig
import CRMCore
import CRMSourceHTTP
import CRMSourceSupport
import CRMStoreSQLite
import CoreMetrics
import CurlHTTP
import Foundation
import Prometheus
import Synchronization
import Testing

/// The HTTP server over real loopback HTTP, with a real SQLite store and a hand-moved clock.
@Suite("Incoming HTTP server")
struct IncomingHTTPServerTests {
    static let endpoint = "shop-endpoint-0001"
    static let path = "/incoming/\(endpoint)"
    static let mapping = Mapping(
        attributes: [AttributeDefinition(name: "email", headers: ["customer_email"])],
        actions: [EventType(rawValue: "CUSTOM_ORDER"): [.createContact(list: 2, emailSubscribed: false, mobileSubscribed: false)]]
    )
    static let order = #"{"customer_email":"ann@example.com","order_number":"111","products":[{"name":"Earwax","id":"abc"}]}"#

    static func integration(
        dedup: RequestDeduplication? = RequestDeduplication(parameters: [.body("order_number"), .header("X-Request-ID")], windowSeconds: 7 * 86_400),
        verifier: IncomingJWTVerifier? = nil, metrics: EventMetrics = EventMetrics(source: "shop")
    ) -> HTTPIntegration {
        HTTPIntegration(
            integration: IncomingIntegration(
                source: "shop", endpointId: endpoint, eventType: .fixed(EventType(rawValue: "CUSTOM_ORDER")),
                contactId: .body("customer_email"), deduplication: dedup
            ),
            verifier: verifier, metrics: metrics
        )
    }

    @Test func aRequestAnswers200AndIsRecordedThenTheSameParametersAnswer204() async throws {
        let server = try RunningServer()
        try await server.start(integrations: [Self.integration()], mapping: Self.mapping)
        let first = try await server.send(Self.path, json: Self.order, headers: [("X-Request-ID", "r-1"), ("Authorization", "Bearer x")])
        #expect(first.status == 200)
        guard case let .string(eventId)? = first.json?["eventId"] else { Issue.record("no eventId in \(first.text)"); return }
        // Same parameters (order number and X-Request-ID), different other content: a duplicate.
        let again = try await server.send(Self.path, json: #"{"customer_email":"ann@example.com","order_number":"111","note":"retry"}"#,
                                          headers: [("x-request-id", "r-1")])
        #expect(again.status == 204)
        #expect(again.body.isEmpty)
        // Another X-Request-ID: new.
        #expect(try await server.send(Self.path, json: Self.order, headers: [("X-Request-ID", "r-2")]).status == 200)

        #expect(try await server.store.count("incoming_requests") == 2)
        let record = try #require(try await server.store.incomingRequest(eventId))
        let json = try JSONParser().parse(record)
        #expect(json["body"]?["products.0.name"] == .string("Earwax"))
        #expect(json["body"]?["customer_email"] == .string("ann@example.com"))
        #expect(json["headers"]?["X-Request-ID"] == .string("r-1"))
        #expect(json["headers"]?["Authorization"] == nil)
        #expect(json["method"] == .string("POST"))
        #expect(json["endpointId"] == .string(Self.endpoint))
        #expect(json["eventId"] == .string(eventId))
        #expect(json["time"] == .number(String(server.clock.now.microsecondsSinceEpoch / 1_000)))
        guard case let .found(contact) = try await server.store.contact("ann@example.com", list: 2) else {
            Issue.record("the mapped create_contact did not run"); return
        }
        #expect(contact.attribute("email") == .string("ann@example.com"))
        try await server.stop()
    }

    @Test func theWindowRunsFromTheLastRequestCarryingTheHash() async throws {
        let server = try RunningServer()
        let day: Int64 = 86_400
        try await server.start(integrations: [Self.integration(dedup: RequestDeduplication(parameters: [.body("order_number")], windowSeconds: 7 * day))], mapping: Self.mapping)
        #expect(try await server.send(Self.path, json: Self.order).status == 200)
        server.clock.advance(seconds: 6 * day)
        #expect(try await server.send(Self.path, json: Self.order).status == 204) // day 6: duplicate, window restarts
        server.clock.advance(seconds: 6 * day)
        #expect(try await server.send(Self.path, json: Self.order).status == 204) // day 12: 6 days after the last one
        server.clock.advance(seconds: 7 * day + 1)
        #expect(try await server.send(Self.path, json: Self.order).status == 200) // over 7 days after the last one
        #expect(try await server.store.count("incoming_requests") == 2)
        try await server.stop()
    }

    /// The window lives in the store: a new server (a restarted daemon) on the same database still answers 204.
    @Test func theWindowSurvivesARestart() async throws {
        let first = try RunningServer()
        try await first.start(integrations: [Self.integration()], mapping: Self.mapping)
        #expect(try await first.send(Self.path, json: Self.order, headers: [("X-Request-ID", "r-9")]).status == 200)
        await first.stopKeepingFiles()
        let path = first.store.path
        try first.store.close()
        let second = try RunningServer(reopening: path, clock: first.clock)
        try await second.start(integrations: [Self.integration()], mapping: Self.mapping)
        #expect(try await second.send(Self.path, json: Self.order, headers: [("X-Request-ID", "r-9")]).status == 204)
        #expect(try await second.store.count("incoming_requests") == 1)
        try await second.stop()
        try? FileManager.default.removeItem(at: first.folder)
    }

    @Test func theClientsOwnHashHeaderIsUsedAlone() async throws {
        let server = try RunningServer()
        try await server.start(integrations: [Self.integration(dedup: RequestDeduplication(parameters: [.body("order_number")], header: "X-Dedup-Hash"))], mapping: Self.mapping)
        #expect(try await server.send(Self.path, json: Self.order, headers: [("X-Dedup-Hash", "h1")]).status == 200)
        // Different order number, same client hash: duplicate.
        #expect(try await server.send(Self.path, json: #"{"customer_email":"ann@example.com","order_number":"999"}"#, headers: [("X-Dedup-Hash", "h1")]).status == 204)
        // Same order number, another client hash: new.
        #expect(try await server.send(Self.path, json: Self.order, headers: [("X-Dedup-Hash", "h2")]).status == 200)
        try await server.stop()
    }

    @Test func concurrentIdenticalRequestsAreAppliedOnce() async throws {
        let server = try RunningServer()
        try await server.start(integrations: [Self.integration()], mapping: Self.mapping)
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<16 {
                group.addTask { try await server.send(Self.path, json: Self.order, headers: [("X-Request-ID", "same")]).status }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses.filter { $0 == 200 }.count == 1)
        #expect(statuses.filter { $0 == 204 }.count == 15)
        #expect(try await server.store.count("incoming_requests") == 1)
        try await server.stop()
    }

    @Test func jwtIntegrationsAcceptValidTokensAndAnswer401OtherwiseRecordingNothing() async throws {
        let server = try RunningServer()
        let secret = Array("0123456789abcdef0123456789abcdef-shop".utf8)
        let verifier = try await IncomingJWTVerifier(config: JWTAuthConfig(algorithm: .hs256, key: .secret(secret), audience: "crm", issuer: "shop"))
        try await server.start(integrations: [Self.integration(verifier: verifier)], mapping: Self.mapping)
        let exp = server.clock.now.secondsSinceEpoch + 300
        let valid = TokenMaker.hs256(claims: TokenMaker.claims(exp: exp), secret: secret)
        #expect(try await server.send(Self.path, json: Self.order, headers: [("Authorization", "Bearer \(valid)")]).status == 200)

        let expired = TokenMaker.hs256(claims: TokenMaker.claims(exp: server.clock.now.secondsSinceEpoch - 3_600), secret: secret)
        let refused = try await server.send(Self.path, json: #"{"customer_email":"bob@example.com","order_number":"2"}"#,
                                            headers: [("Authorization", "Bearer \(expired)")])
        #expect(refused.status == 401)
        #expect(refused.json?["error"] == .string("unauthorized"))
        guard case let .string(reason)? = refused.json?["reason"] else { Issue.record("no reason: \(refused.text)"); return }
        #expect(reason.hasPrefix("token expired at"))
        #expect(refused.header("WWW-Authenticate") == "Bearer")
        let missing = try await server.send(Self.path, json: #"{"customer_email":"bob@example.com","order_number":"3"}"#)
        #expect(missing.status == 401)
        #expect(missing.json?["reason"] == .string("missing Authorization header: send Authorization: Bearer <JWT>"))
        #expect(try await server.store.count("incoming_requests") == 1)
        #expect(try await server.store.contact("bob@example.com", list: 2) == .notFound)
        try await server.stop()
    }

    /// A key rotation as senders live it: some have moved to the new key, some not yet; both are taken.
    @Test func duringAKeyRotationBothKeysAreTakenAndAnUnknownKidIsNot() async throws {
        let server = try RunningServer()
        let old = Array("0123456789abcdef0123456789abcdef-shop".utf8), new = Array("fedcba9876543210fedcba9876543210-shop".utf8)
        let verifier = try await IncomingJWTVerifier(config: JWTAuthConfig(algorithm: .hs256, keys: [
            .init(kid: "2026-12", key: .secret(new)), .init(kid: "2026-06", key: .secret(old)),
        ], audience: "crm", issuer: "shop"))
        try await server.start(integrations: [Self.integration(verifier: verifier)], mapping: Self.mapping)
        let claims = TokenMaker.claims(exp: server.clock.now.secondsSinceEpoch + 300)
        func header(_ kid: String) -> String { #"{"alg":"HS256","typ":"JWT","kid":"\#(kid)"}"# }
        let tokens = [
            TokenMaker.hs256(header: header("2026-12"), claims: claims, secret: new),
            TokenMaker.hs256(header: header("2026-06"), claims: claims, secret: old),
            TokenMaker.hs256(claims: claims, secret: old),
        ]
        for (index, token) in tokens.enumerated() {
            let order = #"{"customer_email":"c\#(index)@example.com","order_number":"r\#(index)"}"#
            #expect(try await server.send(Self.path, json: order, headers: [("Authorization", "Bearer \(token)")]).status == 200)
        }
        let retired = TokenMaker.hs256(header: header("2025-12"), claims: claims, secret: old)
        let refused = try await server.send(Self.path, json: #"{"customer_email":"late@example.com","order_number":"r9"}"#,
                                            headers: [("Authorization", "Bearer \(retired)")])
        #expect(refused.status == 401)
        #expect(refused.json?["reason"] == .string(#"unknown kid "2025-12": not one of this integration's keys"#))
        #expect(try await server.store.count("incoming_requests") == 3)
        #expect(try await server.store.contact("late@example.com", list: 2) == .notFound)
        try await server.stop()
    }

    @Test func errorsAnswerTheirStatusWithAJSONReasonAndTheServerGoesOn() async throws {
        let server = try RunningServer()
        try await server.start(integrations: [Self.integration()], mapping: Self.mapping, maxBody: 4_096)
        let badJSON = try await server.send(Self.path, json: #"{"customer_email": "a@b.c", "order_number": }"#)
        #expect(badJSON.status == 400)
        #expect(badJSON.json?["error"] == .string("invalid_json"))
        #expect(badJSON.json?["reason"] == .string("invalid JSON at byte 44: unexpected character '}'"))

        let notObject = try await server.send(Self.path, json: "[1,2]")
        #expect(notObject.status == 400)
        #expect(notObject.json?["reason"] == .string("expected a JSON object, got an array"))

        let noContact = try await server.send(Self.path, json: #"{"order_number":"5"}"#)
        #expect(noContact.status == 400)
        #expect(noContact.json?["field"] == .string("body.customer_email"))

        let unknown = try await server.send("/incoming/nope-nope-nope", json: Self.order)
        #expect(unknown.status == 404)
        #expect(unknown.json?["error"] == .string("unknown_endpoint"))

        let wrongMethod = try await server.send(Self.path, method: "GET")
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.header("Allow") == "POST")

        let tooLarge = try await server.send(Self.path, json: "{\"a\":\"" + String(repeating: "x", count: 5_000) + "\"}")
        #expect(tooLarge.status == 413)

        let form = try await server.send(Self.path, json: "a=1", contentType: "application/x-www-form-urlencoded")
        #expect(form.status == 415)
        #expect(form.json?["error"] == .string("not_json"))

        // After all that, a good request still works and nothing else was recorded.
        #expect(try await server.send(Self.path, json: Self.order).status == 200)
        #expect(try await server.store.count("incoming_requests") == 1)
        try await server.stop()
    }

    /// The hostile bodies of the field notes: each answers 400 naming the problem, and the server goes on.
    @Test func hostileBodiesAnswer400() async throws {
        let server = try RunningServer()
        try await server.start(integrations: [Self.integration()], mapping: Self.mapping)
        let cases: [(body: [UInt8], reason: String)] = [
            (Array(#"{"customer_email":"a@b.c","order_number":"1","x":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8), "not valid UTF-8"),
            (Array(#"{"customer_email":"a@b.c","order_number":"1","order_number":"2"}"#.utf8), "duplicate key"),
            (Array(String(repeating: "[", count: 10_000).utf8), "deeper than"),
            (Array(#"{"customer_email":"a@b.c","order_number":1\#(String(repeating: "0", count: 400))}"#.utf8), "number longer than 64 characters"),
        ]
        for item in cases {
            let request = CurlHTTP.HTTPRequest(method: "POST", url: server.url(Self.path), headers: [(name: "Content-Type", value: "application/json")], body: item.body)
            let response = try await withCheckedThrowingContinuation { continuation in
                Thread { continuation.resume(with: Result { try CurlHTTPClient().send(request, timeout: .seconds(30)) }) }.start()
            }
            #expect(response.status == 400)
            guard case let .string(reason)? = response.json?["reason"] else { Issue.record("no reason: \(response.text)"); continue }
            #expect(reason.contains(item.reason), "got: \(reason)")
        }
        // A large number within the limit is kept as its exact text.
        let huge = "1" + String(repeating: "0", count: 60)
        let accepted = try await server.send(Self.path, json: #"{"customer_email":"n@example.com","order_number":\#(huge)}"#)
        #expect(accepted.status == 200)
        guard case let .string(eventId)? = accepted.json?["eventId"], let record = try await server.store.incomingRequest(eventId) else {
            Issue.record("not recorded: \(accepted.text)"); return
        }
        #expect(record.contains(#""order_number":\#(huge)"#))
        try await server.stop()
    }

    @Test func anUnmappedTypeIsRecordedAndAnswered200WithoutActions() async throws {
        let server = try RunningServer()
        try await server.start(integrations: [Self.integration()], mapping: Mapping(attributes: [], actions: [:]))
        let response = try await server.send(Self.path, json: Self.order)
        #expect(response.status == 200)
        #expect(response.json?["actions"] == .string("none mapped: recorded only"))
        #expect(try await server.store.count("incoming_requests") == 1)
        #expect(try await server.store.contact("ann@example.com", list: 2) == .notFound)
        try await server.stop()
    }

    /// A client that sends a request's head and the start of its body, then nothing: its connection is closed after
    /// the read timeout, and a graceful stop does not wait for it. Before, the handler waited for the body forever,
    /// and so did the stop (and the daemon's sources, stopped after the HTTP server).
    @Test func aStalledBodyDoesNotHoldUpAGracefulStop() async throws {
        let server = try RunningServer()
        try await server.start(integrations: [Self.integration()], mapping: Self.mapping, readTimeout: .seconds(1))
        let client = try RawConnection(port: server.port)
        defer { client.close() }
        client.send("POST \(Self.path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        try await Task.sleep(for: .milliseconds(200))
        let stopped = ContinuousClock.now
        async let stoppedInTime = server.stop(within: .seconds(15))
        let reply = await client.received(within: .seconds(10))
        #expect(ContinuousClock.now - stopped < .seconds(5), "the stalled request held the connection: \(reply)")
        #expect(await stoppedInTime, "the graceful stop did not end")
        #expect(try await server.store.count("ledger") == 0)
    }

    /// A body dripped a byte at a time, never idle for the read timeout, has its connection closed once the read
    /// timeout has passed since the request's head; nothing is recorded. Before, the handler read on for as long as
    /// the client dripped (30 s here), and a graceful stop waited for it.
    @Test func aDrippedBodyHasItsConnectionClosed() async throws {
        let server = try RunningServer()
        try await server.start(integrations: [Self.integration()], mapping: Self.mapping, readTimeout: .seconds(1))
        let client = try RawConnection(port: server.port)
        defer { client.close() }
        client.send("POST \(Self.path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(Self.order.utf8.count)\r\n\r\n")
        let began = ContinuousClock.now
        let drip = Task {
            for character in Self.order where !Task.isCancelled {
                client.send(String(character))
                try? await Task.sleep(for: .milliseconds(300))
            }
        }
        let reply = await client.received(within: .seconds(10))
        drip.cancel()
        #expect(reply.isEmpty, "\(reply)")
        #expect(ContinuousClock.now - began < .seconds(4), "the connection stayed open")
        #expect(try await server.store.count("ledger") == 0)
        #expect(await server.stop(within: .seconds(15)))
    }

    /// A reload swaps the integrations and the mapping as one, and a request reads them once: here every read after
    /// the first gives a mapping without the integration's type, as a reload renaming it would. The request still
    /// meets its integration's own mapping (applied, a contact made), never "none mapped" (recorded, its
    /// deduplication key used up, its actions lost for good).
    @Test func aRequestReadsItsIntegrationAndMappingTogether() async throws {
        let server = try RunningServer()
        let table = IncomingHTTPServer.table([Self.integration()])
        let reads = Mutex(0)
        let old = IncomingHTTPServer.Routing(integrations: table, processor: EventProcessor(mapping: Self.mapping))
        let renamed = IncomingHTTPServer.Routing(
            integrations: table,
            processor: EventProcessor(mapping: Mapping(attributes: Self.mapping.attributes, actions: [EventType(rawValue: "SHOP_ORDER"): [.createContact(list: 2, emailSubscribed: false, mobileSubscribed: false)]]))
        )
        try await server.start(integrations: [], mapping: Self.mapping, routing: {
            reads.withLock { count in
                count += 1
                return count <= 2 ? old : renamed // the server's own read at start, then the request's
            }
        })
        let response = try await server.send(Self.path, json: Self.order)
        #expect(response.status == 200)
        #expect(response.json?["actions"] == nil)
        #expect(try await server.store.count("contacts") == 1)
        try await server.stop()
    }

    @Test func aStoreThatIsDownAnswers503WithRetryAfter() async throws {
        let server = try RunningServer()
        let registry = PrometheusCollectorRegistry()
        let metrics = EventMetrics(source: "shop-503", factory: PrometheusMetricsFactory(registry: registry))
        try await server.start(integrations: [Self.integration(metrics: metrics)], mapping: Self.mapping, store: FailingStore())
        let response = try await server.send(Self.path, json: Self.order)
        #expect(response.status == 503)
        #expect(response.header("Retry-After") == "5")
        #expect(response.json?["error"] == .string("store_unavailable"))
        // Counted: received, then handed back to the sender.
        let text = registry.emitToString()
        #expect(text.contains(#"crm_ingest_events_total{source="shop-503",type="CUSTOM_ORDER",outcome="received"} 1"#))
        #expect(text.contains(#"crm_ingest_events_total{source="shop-503",type="CUSTOM_ORDER",outcome="requeued"} 1"#))
        try await server.stop()
    }


    /// A charset other than UTF-8, or a compressed body, is a format the server does not take (415), not broken
    /// JSON (400); UTF-8 named in any spelling is fine.
    @Test func anotherCharsetOrAnEncodingAnswers415() async throws {
        let server = try RunningServer()
        try await server.start(integrations: [Self.integration()], mapping: Self.mapping)
        let utf16 = try await server.send(Self.path, json: Self.order, contentType: "application/json; charset=utf-16")
        #expect(utf16.status == 415)
        #expect(utf16.json?["error"] == .string("unsupported_encoding"))
        let gzip = try await server.send(Self.path, json: Self.order, headers: [("Content-Encoding", "gzip")])
        #expect(gzip.status == 415)
        #expect(try await server.store.count("ledger") == 0)
        #expect(try await server.send(Self.path, json: Self.order, contentType: "application/json; charset=\"UTF-8\"").status == 200)
        // An ASCII body labelled with an ASCII-compatible charset is read as it always was.
        let ascii = #"{"customer_email":"bo@example.com","order_number":"112"}"#
        #expect(try await server.send(Self.path, json: ascii, contentType: "application/json; charset=ISO-8859-1").status == 200)
        try await server.stop()
    }

    /// A store failure retrying cannot fix answers 500 without the store's own message (SQL, file paths), which
    /// goes to the log only: the caller may be anyone who can reach the port.
    /// An update for a contact that does not exist commits (the request is recorded) but acts on nothing: the
    /// answer carries the note, and the metrics count it as incomplete, not applied.
    @Test func anUpdateOfAMissingContactIsCountedIncomplete() async throws {
        let server = try RunningServer()
        let registry = PrometheusCollectorRegistry()
        let metrics = EventMetrics(source: "shop-notes", factory: PrometheusMetricsFactory(registry: registry))
        let updateOnly = Mapping(
            attributes: Self.mapping.attributes, actions: [EventType(rawValue: "CUSTOM_ORDER"): [.updateContact(list: 2)]]
        )
        try await server.start(integrations: [Self.integration(metrics: metrics)], mapping: updateOnly)
        let response = try await server.send(Self.path, json: Self.order)
        #expect(response.status == 200)
        #expect(response.json?["notes"] == .array([.string("update_contact: no contact ann@example.com in list 2")]))
        let text = registry.emitToString()
        #expect(text.contains(#"crm_ingest_events_total{source="shop-notes",type="CUSTOM_ORDER",outcome="incomplete"} 1"#))
        #expect(!text.contains(#"outcome="applied""#))
        try await server.stop()
    }

    @Test func aBrokenStoreAnswers500WithoutItsDetails() async throws {
        let server = try RunningServer()
        let broken = FailingStore(error: StoreError(.schema, "no such table: contacts in /var/lib/crm-ingest/crm.sqlite"))
        let registry = PrometheusCollectorRegistry()
        let metrics = EventMetrics(source: "shop-500", factory: PrometheusMetricsFactory(registry: registry))
        try await server.start(integrations: [Self.integration(metrics: metrics)], mapping: Self.mapping, store: broken)
        let response = try await server.send(Self.path, json: Self.order)
        #expect(response.status == 500)
        #expect(response.json?["error"] == .string("store_error"))
        #expect(!response.text.contains("no such table") && !response.text.contains("/var/lib"))
        let text = registry.emitToString()
        #expect(text.contains(#"crm_ingest_events_total{source="shop-500",type="CUSTOM_ORDER",outcome="received"} 1"#))
        #expect(text.contains(#"crm_ingest_events_total{source="shop-500",type="CUSTOM_ORDER",outcome="failed"} 1"#))
        try await server.stop()
    }

    /// An HTTP client waits on the line: its event is committed promptly (`CommitTiming.prompt`), not held for the
    /// commit interval that broker deliveries share.
    @Test func anIncomingRequestAsksForAPromptCommit() async throws {
        let server = try RunningServer()
        let recording = TimingRecordingStore(base: server.store)
        try await server.start(integrations: [Self.integration()], mapping: Self.mapping, store: recording)
        #expect(try await server.send(Self.path, json: Self.order).status == 200)
        #expect(recording.timings.withLock { $0 } == [.prompt])
        if case .found = try await server.store.contact("ann@example.com", list: 2) {} else { Issue.record("the order's contact was not stored") }
        try await server.stop()
    }

    @Test func healthReadinessAndMetrics() async throws {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        let board = SourceStatusBoard()
        board.set("broker", .down("connection refused"))
        let server = try RunningServer()
        let store = server.store
        try await server.start(
            integrations: [Self.integration(metrics: EventMetrics(source: "shop", factory: factory))], mapping: Self.mapping,
            probes: OperationalProbes(readinessProblems: {
                var problems: [String] = []
                do { try await store.ping() } catch { problems.append("store: \(error)") }
                for (source, state) in board.snapshot {
                    if case let .down(reason) = state { problems.append("source \(source): \(reason)") }
                }
                return problems
            }, metricsText: { registry.emitToString() })
        )
        #expect(try await server.send("/healthz", method: "GET").status == 200)
        let notReady = try await server.send("/readyz", method: "GET")
        #expect(notReady.status == 503)
        #expect(notReady.json?["problems"] == .array([.string("source broker: connection refused")]))
        board.set("broker", .up)
        #expect(try await server.send("/readyz", method: "GET").status == 200)

        #expect(try await server.send(Self.path, json: Self.order).status == 200)
        #expect(try await server.send(Self.path, json: Self.order).status == 204)
        #expect(try await server.send(Self.path, json: "{").status == 400)
        let metrics = try await server.send("/metrics", method: "GET")
        #expect(metrics.status == 200)
        #expect(metrics.header("Content-Type")?.hasPrefix("text/plain") == true)
        let text = metrics.text
        #expect(text.contains(#"crm_ingest_events_total{source="shop",type="CUSTOM_ORDER",outcome="applied"} 1"#))
        #expect(text.contains(#"crm_ingest_events_total{source="shop",type="CUSTOM_ORDER",outcome="duplicate"} 1"#))
        #expect(text.contains(#"crm_ingest_events_total{source="shop",type="unknown",outcome="rejected"} 1"#))
        #expect(text.contains(#"crm_ingest_processing_seconds_count{source="shop"} 2"#))
        #expect(text.contains(#"crm_ingest_source_up{source="shop"} 1"#))
        try await server.stop()
    }
}

/// A store that notes the commit timing of every batch and passes it on.
final class TimingRecordingStore: StoreDecorator {
    let base: any CRMStore
    let timings = Mutex<[CommitTiming]>([])
    init(base: any CRMStore) { self.base = base }
    func apply(_ events: [PlannedEvent], now: Timestamp, timing: CommitTiming) async throws -> [EventOutcome] {
        timings.withLock { $0.append(timing) }
        return try await base.apply(events, now: now, timing: timing)
    }
    func settled(_ events: [PlannedEvent], _ result: Result<[EventOutcome], any Error>) async {}
}

/// A store whose database is gone.
struct FailingStore: CRMStore {
    var error = StoreError(.unavailable, "disk gone")
    func apply(_ events: [PlannedEvent], now: Timestamp, timing: CommitTiming) async throws -> [EventOutcome] { throw error }
    func contact(_ contactId: String, list: Int?) async throws -> ContactLookupResult { throw error }
    func pruneLedger(before cutoff: Timestamp) async throws -> Int { throw error }
    func incomingRequest(_ eventId: String) async throws -> String? { throw error }
    func integrationEndpoint(source: String, proposed: String) async throws -> String { throw error }
    func ping() async throws { throw error }
}
