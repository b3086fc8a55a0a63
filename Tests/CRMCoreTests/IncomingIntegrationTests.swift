import CRMCore
import Testing

@Suite("Incoming HTTP integrations")
struct IncomingIntegrationTests {
    static let customOrder = EventType(rawValue: "CUSTOM_ORDER")
    /// 2023-11-14T22:13:20.123456Z
    let at = Timestamp(microsecondsSinceEpoch: 1_700_000_000_123_456)

    static let orderBody = """
        {"order_number":"A-1","customer_email":"ada@example.com",\
        "products":[{"name":"Tea","qty":2},{"name":"Mug","qty":1}],"paid":true,"note":null}
        """

    static let emailAttribute = AttributeDefinition(name: "email", headers: ["customer_email"])
    static let createContact = Action.createContact(list: 2, emailSubscribed: true, mobileSubscribed: false)
    static let mapped = ActionPlanner(mapping: Mapping(attributes: [emailAttribute], actions: [customOrder: [createContact]]))
    static let unmapped = ActionPlanner(mapping: Mapping(attributes: [emailAttribute], actions: [:]))

    func integration(
        source: String = "shop", eventType: IncomingEventType = .fixed(IncomingIntegrationTests.customOrder),
        contactId: RequestField? = .body("customer_email"), deduplication: RequestDeduplication? = nil
    ) -> IncomingIntegration {
        IncomingIntegration(
            source: source, endpointId: "shop-orders-1", eventType: eventType, contactId: contactId, deduplication: deduplication
        )
    }

    func request(_ body: String, headers: [(name: String, value: String)] = [], eventId: String = "ev-1") -> IncomingRequest {
        IncomingRequest(method: "POST", headers: headers, body: Array(body.utf8), receivedAt: at, eventId: eventId)
    }

    func failure(_ integration: IncomingIntegration, _ request: IncomingRequest, planner: ActionPlanner = IncomingIntegrationTests.unmapped) -> EventError? {
        do {
            let event = try integration.prepare(request, planner: planner)
            Issue.record("expected an error, got \(event)")
            return nil
        } catch {
            return error
        }
    }

    func key(_ integration: IncomingIntegration, _ request: IncomingRequest) throws -> IdempotencyKey {
        try integration.prepare(request, planner: Self.unmapped).key
    }

    // MARK: Request fields

    @Test func parsesRequestFields() {
        #expect(RequestField("body.a.b") == .body("a.b"))
        #expect(RequestField("body.products.0.name") == .body("products.0.name"))
        #expect(RequestField("body.headers.x") == .body("headers.x"))
        #expect(RequestField("headers.X-Request-ID") == .header("X-Request-ID"))
    }

    @Test(arguments: ["", "body", "body.", "headers", "headers.", "header.X-Id", "query.a", "Body.a", "HEADERS.X", "bodya", "a.body.b"])
    func refusesOtherRequestFields(text: String) {
        #expect(RequestField(text) == nil)
    }

    @Test(arguments: ["body.a", "body.a.b", "body.products.0.name", "headers.X-Request-ID", "headers.x"])
    func requestFieldDescriptionRoundTrips(text: String) throws {
        let field = try #require(RequestField(text))
        #expect(field.description == text)
        #expect(RequestField(field.description) == field)
    }

    @Test func requestHeadersMatchCaseInsensitivelyAndTheFirstWins() {
        let request = request("{}", headers: [("X-Shop", "one"), ("x-shop", "two")])
        #expect(request.header("x-SHOP") == "one")
        #expect(request.header("X-Other") == nil)
    }

    // MARK: The recorded request

    static let recordedHeaders: [(name: String, value: String)] = [
        ("Content-Type", "application/json"), ("Authorization", "Bearer token"), ("X-Request-ID", "r-1"),
        ("cookie", "session=1"), ("Proxy-Authorization", "Basic eA=="), ("content-type", "text/plain"),
    ]

    static let expectedRecordJSON = #"{"body":{"order_number":"A-1","customer_email":"ada@example.com","#
        + #""products.0.name":"Tea","products.0.qty":2,"products.1.name":"Mug","products.1.qty":1,"paid":true,"note":null},"#
        + #""endpointId":"shop-orders-1","eventId":"ev-1","#
        + #""headers":{"Content-Type":"application/json","X-Request-ID":"r-1"},"method":"POST","time":1700000000123}"#

    @Test func recordsTheRequestWithAFlattenedBodyAndNoCredentials() throws {
        let event = try integration().prepare(request(Self.orderBody, headers: Self.recordedHeaders), planner: Self.unmapped)
        #expect(event.operations.count == 1)
        guard case let .recordRequest(record)? = event.operations.last else {
            Issue.record("the last operation is not the record: \(event.operations)")
            return
        }
        #expect(record.json == Self.expectedRecordJSON)

        let json = try JSONParser().parse(record.json)
        #expect(json["body"]?["products.0.name"] == .string("Tea"))
        #expect(json["body"]?["products.1.qty"] == .number("1"))
        #expect(json["body"]?["products"] == nil)
        #expect(json["headers"]?["Authorization"] == nil)
        #expect(json["headers"]?["cookie"] == nil)
        #expect(json["headers"]?["Proxy-Authorization"] == nil)
        #expect(json["method"] == .string("POST"))
        #expect(json["time"] == .number("1700000000123"))
        #expect(json["endpointId"] == .string("shop-orders-1"))
        #expect(json["eventId"] == .string("ev-1"))

        #expect(record == RequestRecord(
            eventId: "ev-1", source: "shop", endpointId: "shop-orders-1", eventType: Self.customOrder,
            contactId: "ada@example.com", receivedAt: at, json: Self.expectedRecordJSON
        ))
    }

    @Test func aMappedTypeUpsertsTheContactThenRecords() throws {
        let event = try integration().prepare(request(Self.orderBody, headers: Self.recordedHeaders), planner: Self.mapped)
        let record = RequestRecord(
            eventId: "ev-1", source: "shop", endpointId: "shop-orders-1", eventType: Self.customOrder,
            contactId: "ada@example.com", receivedAt: at, json: Self.expectedRecordJSON
        )
        #expect(event.operations == [
            .upsertContact(
                list: 2, contactId: "ada@example.com",
                attributes: [AttributeValue(name: "email", value: .string("ada@example.com"))], consent: nil,
                createWith: NewContactDefaults(emailSubscribed: true, mobileSubscribed: false)
            ),
            .recordRequest(record),
        ])
        #expect(event.type == Self.customOrder)
        #expect(event.contactId == "ada@example.com")
        // order_number, products.0.name, products.0.qty, products.1.name, products.1.qty, paid, note
        #expect(event.unmatchedProperties == 7)
        #expect(event.key == IdempotencyKey(value: "r:shop:ev-1", check: .recordOnly))
    }

    @Test func anUnmappedTypeOnlyRecords() throws {
        let event = try integration().prepare(request(Self.orderBody), planner: Self.unmapped)
        #expect(event.type == Self.customOrder)
        #expect(event.contactId == "ada@example.com")
        #expect(event.unmatchedProperties == 0)
        guard case let .recordRequest(record) = try #require(event.operations.first) else {
            Issue.record("not a record: \(event.operations)")
            return
        }
        #expect(event.operations.count == 1)
        #expect(record.contactId == "ada@example.com")
        #expect(record.eventType == Self.customOrder)
    }

    @Test func anEmptyActionListOnlyRecords() throws {
        let planner = ActionPlanner(mapping: Mapping(attributes: [], actions: [Self.customOrder: []]))
        let event = try integration(contactId: .body("missing")).prepare(request(Self.orderBody), planner: planner)
        #expect(event.operations.count == 1)
        #expect(event.contactId == "")
    }

    @Test func withoutAContactFieldTheRecordHasNoContact() throws {
        let event = try integration(contactId: nil).prepare(request(#"{"a":1}"#), planner: Self.unmapped)
        #expect(event.contactId == "")
        #expect(event.operations == [.recordRequest(RequestRecord(
            eventId: "ev-1", source: "shop", endpointId: "shop-orders-1", eventType: Self.customOrder, contactId: nil,
            receivedAt: at, json: #"{"body":{"a":1},"endpointId":"shop-orders-1","eventId":"ev-1","headers":{},"method":"POST","time":1700000000123}"#
        ))])
    }

    @Test func anAbsentContactIsFineWhenTheTypeHasNoActions() throws {
        let event = try integration().prepare(request(#"{"order_number":"A-1"}"#), planner: Self.unmapped)
        #expect(event.contactId == "")
        guard case let .recordRequest(record)? = event.operations.first else {
            Issue.record("not a record: \(event.operations)")
            return
        }
        #expect(record.contactId == nil)
    }

    @Test func contactIdsComeFromNumbersAndHeaders() throws {
        let number = try integration(contactId: .body("customer.id")).prepare(request(#"{"customer":{"id":42}}"#), planner: Self.mapped)
        #expect(number.contactId == "42")
        #expect(number.operations.first == .upsertContact(
            list: 2, contactId: "42", attributes: [], consent: nil,
            createWith: NewContactDefaults(emailSubscribed: true, mobileSubscribed: false)
        ))

        let header = try integration(contactId: .header("X-Customer")).prepare(
            request(#"{"a":1}"#, headers: [("x-customer", "c-7")]), planner: Self.mapped
        )
        #expect(header.contactId == "c-7")
    }

    // MARK: Errors

    @Test func refusesInvalidJSONWithTheByteOffset() throws {
        let error = try #require(failure(integration(), request(#"{"a": x}"#)))
        #expect(error.code == .invalidJSON)
        #expect(error.field == "body")
        #expect(error.reason == "invalid JSON at byte 6: unexpected character 'x'")
    }

    @Test func refusesAnEmptyBody() throws {
        let error = try #require(failure(integration(), request("")))
        #expect(error.code == .invalidJSON)
        #expect(error.field == "body")
        #expect(error.reason == "invalid JSON at byte 0: unexpected end of input")
    }

    @Test(arguments: [("[1,2]", "an array"), (#""text""#, "a string"), ("12", "a number"), ("null", "null"), ("true", "a boolean")])
    func refusesABodyThatIsNotAnObject(body: String, typeName: String) throws {
        let error = try #require(failure(integration(), request(body)))
        #expect(error.code == .notAnObject)
        #expect(error.field == "body")
        #expect(error.reason == "expected a JSON object, got \(typeName)")
    }

    @Test func aMappedTypeNeedsTheContact() throws {
        let error = try #require(failure(integration(), request(#"{"order_number":"A-1"}"#), planner: Self.mapped))
        #expect(error.code == .missingField)
        #expect(error.field == "body.customer_email")
        #expect(error.reason == "required: it names the contact the CUSTOM_ORDER actions work on")
    }

    @Test func aMappedTypeWithoutAContactFieldNamesContactId() throws {
        let error = try #require(failure(integration(contactId: nil), request(Self.orderBody), planner: Self.mapped))
        #expect(error.code == .missingField)
        #expect(error.field == "contact_id")
        #expect(error.reason == "required: it names the contact the CUSTOM_ORDER actions work on")
    }

    @Test(arguments: [
        (#"{"customer_email":true}"#, "true"),
        (#"{"customer_email":false}"#, "false"),
        (#"{"customer_email":null}"#, "null"),
        (#"{"customer_email":""}"#, #""""#),
    ])
    func refusesAContactIdOfTheWrongType(body: String, excerpt: String) throws {
        // Refused whether or not the type has actions: the field is configured and present.
        for planner in [Self.mapped, Self.unmapped] {
            let error = try #require(failure(integration(), request(body), planner: planner))
            #expect(error.code == .invalidField)
            #expect(error.field == "body.customer_email")
            #expect(error.reason == "names the contact, so it must be a non-empty string or number, got \(excerpt)")
        }
    }

    /// An object or array where the contact id belongs is present, so it is of the wrong type, not missing.
    @Test(arguments: [#"{"customer_email":{"address":"ada@example.com"}}"#, #"{"customer_email":["ada@example.com"]}"#])
    func refusesAContactIdThatIsAnObjectOrArray(body: String) throws {
        // As for a boolean: refused whether or not the type has actions.
        for planner in [Self.mapped, Self.unmapped] {
            let error = try #require(failure(integration(), request(body), planner: planner))
            #expect(error.code == .invalidField)
            #expect(error.field == "body.customer_email")
            #expect(error.reason.hasPrefix("names the contact, so it must be a non-empty string or number, got "))
        }
    }

    @Test func takesTheEventTypeFromABodyField() throws {
        let integration = integration(eventType: .field(.body("meta.type")))
        let mapped = try integration.prepare(request(#"{"meta":{"type":"CUSTOM_ORDER"},"customer_email":"a@b.c"}"#), planner: Self.mapped)
        #expect(mapped.type == Self.customOrder)
        #expect(mapped.operations.count == 2)

        let other = try integration.prepare(request(#"{"meta":{"type":"CUSTOM_REFUND"}}"#), planner: Self.mapped)
        #expect(other.type == EventType(rawValue: "CUSTOM_REFUND"))
        #expect(other.operations.count == 1)
    }

    @Test func takesTheEventTypeFromAHeader() throws {
        let integration = integration(eventType: .field(.header("X-Event-Type")))
        let event = try integration.prepare(request(#"{"a":1}"#, headers: [("x-event-type", "CUSTOM_PING")]), planner: Self.unmapped)
        #expect(event.type == EventType(rawValue: "CUSTOM_PING"))

        let error = try #require(failure(integration, request(#"{"a":1}"#)))
        #expect(error.code == .missingField)
        #expect(error.field == "headers.X-Event-Type")
        #expect(error.reason == "required: it names the event type")
    }

    @Test func refusesAMissingEventTypeField() throws {
        let error = try #require(failure(integration(eventType: .field(.body("type"))), request(Self.orderBody)))
        #expect(error.code == .missingField)
        #expect(error.field == "body.type")
        #expect(error.reason == "required: it names the event type")
    }

    @Test(arguments: [
        (#"{"type":5}"#, "5"),
        (#"{"type":true}"#, "true"),
        (#"{"type":null}"#, "null"),
        (#"{"type":""}"#, #""""#),
    ])
    func refusesAnEventTypeThatIsNotANonEmptyString(body: String, excerpt: String) throws {
        let error = try #require(failure(integration(eventType: .field(.body("type"))), request(body)))
        #expect(error.code == .invalidField)
        #expect(error.field == "body.type")
        #expect(error.reason == "names the event type, so it must be a non-empty string of at most 128 characters, got \(excerpt)")
    }

    @Test func eventTypeNamesAreAtMost128Characters() throws {
        let integration = integration(eventType: .field(.body("type")))
        let longest = String(repeating: "T", count: 128)
        #expect(try integration.prepare(request(#"{"type":"\#(longest)"}"#), planner: Self.unmapped).type == EventType(rawValue: longest))
        let error = try #require(failure(integration, request(#"{"type":"\#(longest)X"}"#)))
        #expect(error.code == .invalidField)
        #expect(error.field == "body.type")
    }

    /// An object where the event type belongs is present, so it is of the wrong type, not missing.
    @Test func refusesAnEventTypeThatIsAnObject() throws {
        let error = try #require(failure(integration(eventType: .field(.body("type"))), request(#"{"type":{"name":"CUSTOM_ORDER"}}"#)))
        #expect(error.code == .invalidField)
        #expect(error.field == "body.type")
    }

    @Test func theEventTypeIsCheckedBeforeTheContact() throws {
        let error = try #require(failure(integration(eventType: .field(.body("type"))), request(#"{"customer_email":true}"#), planner: Self.mapped))
        #expect(error.field == "body.type")
        #expect(error.code == .missingField)
    }

    // MARK: Deduplication keys

    static let window: Int64 = 3_600
    static let orderAndShop = RequestDeduplication(parameters: [.body("order_number"), .header("X-Shop")], windowSeconds: window)

    var windowStart: Timestamp { Timestamp(microsecondsSinceEpoch: 1_700_000_000_123_456 - Self.window * 1_000_000) }

    @Test func sameParameterValuesGiveTheSameKeyOverASlidingWindow() throws {
        let integration = integration(deduplication: Self.orderAndShop)
        let first = try key(integration, request(#"{"order_number":"A-1","total":10}"#, headers: [("X-Shop", "s1")], eventId: "ev-1"))
        let second = try key(integration, request(#"{"total":99,"order_number":"A-1"}"#, headers: [("X-Shop", "s1")], eventId: "ev-2"))
        // SHA-256 of [["body.order_number","A-1"],["headers.X-Shop","s1"]]
        let expected = IdempotencyKey(
            value: "d:shop:dd211ebb104ac45a2567596cfd98978e4e1301f56351466feb9629a4b6451e51",
            check: .slidingWindow(since: windowStart)
        )
        #expect(first == expected)
        #expect(second == expected)
    }

    @Test func differentParameterValuesGiveDifferentKeys() throws {
        let integration = integration(deduplication: Self.orderAndShop)
        let base = try key(integration, request(#"{"order_number":"A-1"}"#, headers: [("X-Shop", "s1")]))
        let otherOrder = try key(integration, request(#"{"order_number":"A-2"}"#, headers: [("X-Shop", "s1")]))
        let otherShop = try key(integration, request(#"{"order_number":"A-1"}"#, headers: [("X-Shop", "s2")]))
        let numberNotString = try key(integration, request(#"{"order_number":1}"#, headers: [("X-Shop", "s1")]))
        let stringOne = try key(integration, request(#"{"order_number":"1"}"#, headers: [("X-Shop", "s1")]))
        let values = [base.value, otherOrder.value, otherShop.value, numberNotString.value, stringOne.value]
        #expect(Set(values).count == 5)
        #expect(values.allSatisfy { $0.hasPrefix("d:shop:") && $0.count == "d:shop:".count + 64 })
    }

    @Test func headerParametersMatchCaseInsensitively() throws {
        let integration = integration(deduplication: Self.orderAndShop)
        let body = #"{"order_number":"A-1"}"#
        let keys = try [("X-Shop", "s1"), ("x-shop", "s1"), ("X-SHOP", "s1")].map { try key(integration, request(body, headers: [$0])) }
        #expect(keys.allSatisfy { $0.value == "d:shop:dd211ebb104ac45a2567596cfd98978e4e1301f56351466feb9629a4b6451e51" })
    }

    @Test func aMissingParameterCountsAsNull() throws {
        let integration = integration(deduplication: Self.orderAndShop)
        let first = try key(integration, request(#"{"order_number":"A-1"}"#, eventId: "ev-1"))
        let second = try key(integration, request(#"{"order_number":"A-1","x":1}"#, eventId: "ev-2"))
        // SHA-256 of [["body.order_number","A-1"],["headers.X-Shop",null]]
        let expected = IdempotencyKey(
            value: "d:shop:a6e6cc73259807f8dbb38be9d051f0e3ce22505d74576ae7c680d993128c8398",
            check: .slidingWindow(since: windowStart)
        )
        #expect(first == expected)
        #expect(second == expected)
    }

    @Test func theClientsHashHeaderAloneIsUsedWhenPresent() throws {
        var dedup = Self.orderAndShop
        dedup.header = "X-Dedup-Hash"
        let integration = integration(deduplication: dedup)
        let first = try key(integration, request(#"{"order_number":"A-1"}"#, headers: [("X-Shop", "s1"), ("X-Dedup-Hash", "abc123")], eventId: "ev-1"))
        let second = try key(integration, request(#"{"order_number":"B-9"}"#, headers: [("x-dedup-hash", "abc123")], eventId: "ev-2"))
        let expected = IdempotencyKey(value: "d:shop:client:abc123", check: .slidingWindow(since: windowStart))
        #expect(first == expected)
        #expect(second == expected)

        let other = try key(integration, request(#"{"order_number":"A-1"}"#, headers: [("X-Shop", "s1"), ("X-Dedup-Hash", "zzz")]))
        #expect(other.value == "d:shop:client:zzz")
    }

    @Test func withoutTheHashHeaderTheParametersAreUsed() throws {
        var dedup = Self.orderAndShop
        dedup.header = "X-Dedup-Hash"
        let withHeaderConfigured = integration(deduplication: dedup)
        let expected = IdempotencyKey(
            value: "d:shop:dd211ebb104ac45a2567596cfd98978e4e1301f56351466feb9629a4b6451e51",
            check: .slidingWindow(since: windowStart)
        )
        #expect(try key(withHeaderConfigured, request(#"{"order_number":"A-1"}"#, headers: [("X-Shop", "s1")])) == expected)
        // An empty hash header is no hash.
        #expect(try key(withHeaderConfigured, request(#"{"order_number":"A-1"}"#, headers: [("X-Shop", "s1"), ("X-Dedup-Hash", "")])) == expected)
    }

    @Test func aHashHeaderWithoutParametersFallsBackToTheRequestId() throws {
        let integration = integration(deduplication: RequestDeduplication(parameters: [], header: "X-Dedup-Hash", windowSeconds: Self.window))
        #expect(try key(integration, request("{}", headers: [("X-Dedup-Hash", "h1")])) == IdempotencyKey(
            value: "d:shop:client:h1", check: .slidingWindow(since: windowStart)
        ))
        #expect(try key(integration, request("{}", eventId: "ev-5")) == IdempotencyKey(value: "r:shop:ev-5", check: .recordOnly))
    }

    @Test func aRequestWithNoneOfTheParametersIsNeverADuplicate() throws {
        let integration = integration(deduplication: Self.orderAndShop)
        let first = try key(integration, request(#"{"other":1}"#, eventId: "ev-1"))
        let second = try key(integration, request(#"{"other":1}"#, eventId: "ev-2"))
        #expect(first == IdempotencyKey(value: "r:shop:ev-1", check: .recordOnly))
        #expect(second == IdempotencyKey(value: "r:shop:ev-2", check: .recordOnly))
    }

    @Test func withoutDeduplicationEveryRequestIsKeyedByItsId() throws {
        let integration = integration()
        #expect(try key(integration, request(#"{"order_number":"A-1"}"#, eventId: "ev-1")) == IdempotencyKey(value: "r:shop:ev-1", check: .recordOnly))
        #expect(try key(integration, request(#"{"order_number":"A-1"}"#, eventId: "ev-2")) == IdempotencyKey(value: "r:shop:ev-2", check: .recordOnly))
    }

    @Test func twoSourcesNeverShareAKey() throws {
        let shop = integration(source: "shop", deduplication: Self.orderAndShop)
        let other = integration(source: "other", deduplication: Self.orderAndShop)
        let sample = request(#"{"order_number":"A-1"}"#, headers: [("X-Shop", "s1")])
        let shopKey = try key(shop, sample)
        let otherKey = try key(other, sample)
        #expect(shopKey.value == "d:shop:dd211ebb104ac45a2567596cfd98978e4e1301f56351466feb9629a4b6451e51")
        #expect(otherKey.value == "d:other:dd211ebb104ac45a2567596cfd98978e4e1301f56351466feb9629a4b6451e51")
        #expect(shopKey != otherKey)

        var withHeader = Self.orderAndShop
        withHeader.header = "X-Dedup-Hash"
        let hashed = request("{}", headers: [("X-Dedup-Hash", "h")])
        #expect(try key(integration(source: "shop", deduplication: withHeader), hashed).value == "d:shop:client:h")
        #expect(try key(integration(source: "other", deduplication: withHeader), hashed).value == "d:other:client:h")

        #expect(try key(integration(source: "shop"), sample).value != key(integration(source: "other"), sample).value)
    }

    @Test func theWindowStartsAtReceiptMinusTheWindow() throws {
        let integration = integration(deduplication: RequestDeduplication(parameters: [.body("order_number")], windowSeconds: 7 * 86_400))
        let key = try key(integration, request(#"{"order_number":"A-1"}"#))
        #expect(key.check == .slidingWindow(since: Timestamp(microsecondsSinceEpoch: 1_700_000_000_123_456 - 604_800_000_000)))
    }
}
