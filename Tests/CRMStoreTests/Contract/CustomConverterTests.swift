import CRMCore
import Foundation
import Testing

/// The issue's converter example end to end: sender payloads typed by a header, converted, decoded, planned and
/// applied to each store.
@Suite("Store contract: custom converters")
struct CustomConverterTests {
    static func converter() throws -> CustomConverter {
        CustomConverter(typeFrom: .header("event-name"), rules: [
            "signup": CustomConverter.Rule(
                type: .userRegistration,
                fields: [.init(name: "contactId", path: try JSONPath("$.user.id"))],
                properties: [.init(name: "email", path: try JSONPath("$.user.email")), .init(name: "firstName", path: try JSONPath("$.user.name.first"))]
            ),
            "payment": CustomConverter.Rule(type: .depositApproved, fields: [
                .init(name: "contactId", path: try JSONPath("$.uid")), .init(name: "amount", path: try JSONPath("$.payment.amount")),
                .init(name: "timestamp", path: try JSONPath("$.at")), .init(name: "transactionId", path: try JSONPath("$.payment.id")),
                .init(name: "currency", path: try JSONPath("$.payment.currency")),
            ]),
            "consent": CustomConverter.Rule(type: .userConsentUpdate, fields: [
                .init(name: "contactId", path: try JSONPath("$.uid")), .init(name: "channel", path: try JSONPath("$.channel")),
                .init(name: "consented", path: try JSONPath("$.granted")),
            ]),
        ])
    }

    static func harness(_ kind: StoreKind) async throws -> (StoreHarness, EventProcessor) {
        let h = try await StoreHarness(kind)
        let processor = EventProcessor(mapping: h.processor.planner.mapping, format: .custom(try converter()))
        return (h, processor)
    }

    static func prepare(_ processor: EventProcessor, _ type: String?, _ json: String) -> PreparedMessage {
        processor.prepare(IncomingMessage(
            body: Array(json.utf8), identity: .content, mayBeRedelivery: false, receivedAt: StoreHarness.t0, source: "partner",
            headers: type.map { ["Event-Name": $0] } ?? [:]
        ))
    }

    @Test(arguments: StoreKind.allCases) func senderPayloadsBecomeContactsPurchasesAndConsents(_ kind: StoreKind) async throws {
        let (h, processor) = try await Self.harness(kind)
        defer { h.remove() }
        let messages: [(String, String)] = [
            ("signup", #"{"user":{"id":"p-100","email":"mia@example.se","name":{"first":"Mia","last":"Berg"}},"source":"app"}"#),
            ("payment", #"{"uid":"p-100","at":"2026-03-01T10:00:00Z","payment":{"id":"tx-9","amount":250.50,"currency":"SEK"}}"#),
            ("consent", #"{"uid":"p-100","channel":"SMS","granted":true}"#),
            ("signup", #"{"user":{"id":4711,"email":"numeric@example.se","name":{"first":"Num"}}}"#),
        ]
        for (type, json) in messages {
            guard case let .event(event) = Self.prepare(processor, type, json) else {
                Issue.record("\(type) was not accepted: \(Self.prepare(processor, type, json))")
                continue
            }
            #expect(try await h.store.apply([event], now: StoreHarness.t0) == [.applied(notes: [])])
        }
        let mia = try #require(try await h.contact("p-100"))
        #expect(mia.attribute("email") == .string("mia@example.se"))
        #expect(mia.attribute("firstName") == .string("Mia"))
        #expect(mia.journeys == [10])
        #expect(mia.purchases.map(\.amount.text) == ["250.50"])
        #expect(mia.purchases.first?.transactionId == "tx-9")
        #expect(mia.purchases.first?.currency == "SEK")
        #expect(mia.consents[.sms] == true)
        // A numeric id keeps its exact text.
        #expect(try await h.contact("4711")?.attribute("firstName") == .string("Num"))
    }

    /// The seed's optional fields (`transactionId`, `currency`, `vendor`, `paymentType`) may be missing or null even
    /// when a rule names a path for them: the purchase is recorded without them.
    @Test(arguments: StoreKind.allCases) func optionalFieldsMayBeMissing(_ kind: StoreKind) async throws {
        let (h, processor) = try await Self.harness(kind)
        defer { h.remove() }
        guard case let .event(signup) = Self.prepare(processor, "signup", #"{"user":{"id":"p-7","email":"p7@example.se","name":{"first":"P"}}}"#) else {
            Issue.record("signup refused")
            return
        }
        _ = try await h.store.apply([signup], now: StoreHarness.t0)
        for json in [#"{"uid":"p-7","at":"2026-03-01T10:00:00Z","payment":{"amount":10}}"#,
                     #"{"uid":"p-7","at":"2026-03-02T10:00:00Z","payment":{"id":null,"amount":20,"currency":null}}"#] {
            guard case let .event(event) = Self.prepare(processor, "payment", json) else {
                Issue.record("refused: \(Self.prepare(processor, "payment", json))")
                continue
            }
            #expect(try await h.store.apply([event], now: StoreHarness.t0) == [.applied(notes: [])])
        }
        let purchases = try #require(try await h.contact("p-7")).purchases
        #expect(purchases.map(\.amount.text).sorted() == ["10", "20"])
        #expect(purchases.allSatisfy { $0.transactionId == nil && $0.currency == nil })
    }

    /// A property the message does not carry is left out, as in a default-format message: the contact keeps its value.
    @Test(arguments: StoreKind.allCases) func aMissingPropertyIsLeftOut(_ kind: StoreKind) async throws {
        let (h, processor) = try await Self.harness(kind)
        defer { h.remove() }
        for json in [#"{"user":{"id":"q-1","email":"q1@example.se","name":{"first":"Q"}}}"#, #"{"user":{"id":"q-1","name":{"first":"Qu"}}}"#] {
            guard case let .event(event) = Self.prepare(processor, "signup", json) else {
                Issue.record("refused: \(Self.prepare(processor, "signup", json))")
                continue
            }
            _ = try await h.store.apply([event], now: StoreHarness.t0)
        }
        let q = try #require(try await h.contact("q-1"))
        #expect(q.attribute("firstName") == .string("Qu"))
        #expect(q.attribute("email") == .string("q1@example.se"))
    }

    @Test(arguments: [
        ("payment", #"{"uid":"p-1","at":"2026-03-01T10:00:00Z","payment":{"id":"tx-1","currency":"SEK"}}"#,
         "$.payment.amount: required by the payment rule's amount"),
        ("payment", #"{"uid":"p-1","at":"2026-03-01T10:00:00Z","payment":{"id":"tx-1","amount":"12.00","currency":"SEK"}}"#,
         #"$.payment.amount: the payment rule's amount must be number, got "12.00""#),
        ("payment", #"{"uid":"p-1","at":"yesterday","payment":{"id":"tx-1","amount":12,"currency":"SEK"}}"#,
         #"$.at: expected an ISO-8601 date and time, got "yesterday""#),
        ("signup", #"{"user":{"email":"x@example.se","name":{"first":"X"}}}"#, "$.user.id: required by the signup rule's contactId"),
        ("signup", #"{"user":{"id":{"x":1},"email":"x@example.se","name":{"first":"X"}}}"#,
         #"$.user.id: the signup rule's contactId must be number or string, got {"x":1}"#),
        ("consent", #"{"uid":"p-1","channel":"SMS","granted":"yes"}"#, #"$.granted: the consent rule's consented must be boolean, got "yes""#),
        ("refund", #"{"uid":"p-1"}"#, #"header:event-name: no converter rule for type "refund" (rules: consent, payment, signup)"#),
        ("payment", "[1]", "expected a JSON object, got an array"),
    ])
    func malformedMessagesAreRefusedNamingThePath(type: String, json: String, reason: String) async throws {
        // Refused before the store: one store is enough.
        let (h, processor) = try await Self.harness(.sqlite)
        defer { h.remove() }
        guard case let .rejected(error) = Self.prepare(processor, type, json) else {
            Issue.record("accepted: \(json)")
            return
        }
        #expect(error.description.hasPrefix(reason), "got: \(error.description)")
    }

    @Test func aMessageWithoutTheTypeHeaderIsRefused() async throws {
        let (h, processor) = try await Self.harness(.sqlite)
        defer { h.remove() }
        guard case let .rejected(error) = Self.prepare(processor, nil, #"{"uid":"p-1"}"#) else { Issue.record("accepted"); return }
        #expect(error.description == "header:event-name: required: it names the message's type")
    }

    /// One queue, several senders: the `x-format` header picks the format of each message.
    @Test(arguments: StoreKind.allCases) func theFormatIsChosenPerMessageByAHeader(_ kind: StoreKind) async throws {
        let h = try await StoreHarness(kind)
        defer { h.remove() }
        let processor = EventProcessor(mapping: h.processor.planner.mapping, format: .perMessage(
            by: .header("x-format"), formats: ["partner": .custom(try Self.converter()), "symplify": .standard], otherwise: nil
        ))
        func prepare(_ format: String?, _ type: String?, _ json: String) -> PreparedMessage {
            var headers: [String: String] = [:]
            headers["X-Format"] = format
            headers["event-name"] = type
            return processor.prepare(IncomingMessage(body: Array(json.utf8), identity: .content, mayBeRedelivery: false,
                                                     receivedAt: StoreHarness.t0, source: "mixed", headers: headers))
        }
        for prepared in [
            prepare("partner", "signup", #"{"user":{"id":"p-7","email":"p7@example.se","name":{"first":"Per"}}}"#),
            prepare("symplify", nil, #"{"type":"USER_REGISTRATION","contactId":"s-7","properties":{"firstName":"Sym"}}"#),
        ] {
            guard case let .event(event) = prepared else { Issue.record("not accepted: \(prepared)"); continue }
            #expect(try await h.store.apply([event], now: StoreHarness.t0) == [.applied(notes: [])])
        }
        #expect(try await h.contact("p-7")?.attribute("firstName") == .string("Per"))
        #expect(try await h.contact("s-7")?.attribute("firstName") == .string("Sym"))
        guard case let .rejected(unknown) = prepare("xml", nil, "{}") else { Issue.record("accepted"); return }
        #expect(unknown.description == #"header:x-format: unknown format "xml" (formats: partner, symplify)"#)
        guard case let .rejected(missing) = prepare(nil, nil, "{}") else { Issue.record("accepted"); return }
        #expect(missing.description == "header:x-format: required: it names the message's format (partner, symplify)")
    }
}
