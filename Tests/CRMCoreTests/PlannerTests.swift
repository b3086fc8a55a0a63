import CRMCore
import Testing

@Suite("Action planning and idempotency keys")
struct PlannerTests {
    static let attributes = [
        AttributeDefinition(name: "firstName", headers: ["firstName", "first_name"]),
        AttributeDefinition(name: "email", headers: ["email"]),
    ]
    let at = Timestamp(secondsSinceEpoch: 1_600_000_000)

    func plan(_ actions: [EventType: [Action]], _ json: String) throws -> ActionPlanner.Plan? {
        let event = try DefaultFormatDecoder().decode(Array(json.utf8)).event
        return try ActionPlanner(mapping: Mapping(attributes: Self.attributes, actions: actions)).plan(event, receivedAt: at)
    }

    @Test func createThenJourney() throws {
        let plan = try #require(try plan(
            [.userRegistration: [.createContact(list: 1, emailSubscribed: false, mobileSubscribed: true), .enterJourney(journey: 10)]],
            #"{"type":"USER_REGISTRATION","contactId":"c1","properties":{"first_name":"Ada","firstName":"Ada L","unknown":1}}"#
        ))
        #expect(plan.unmatchedProperties == 1)
        #expect(plan.operations == [
            .upsertContact(
                list: 1, contactId: "c1", attributes: [AttributeValue(name: "firstName", value: .string("Ada L"))], consent: nil,
                createWith: NewContactDefaults(emailSubscribed: false, mobileSubscribed: true)
            ),
            .enterJourney(journey: 10, contactId: "c1", at: at),
        ])
    }

    /// Past 16 attributes the planner finds them through a dictionary instead of a look along the list: the same
    /// choices either way. Each attribute has two headers; the second comes first in the event and loses.
    @Test(arguments: [3, 16, 17, 40]) func theFirstListedHeaderWinsForAnyNumberOfAttributes(count: Int) throws {
        let attributes = (0..<count).map { AttributeDefinition(name: "a\($0)", headers: ["h\($0)", "alt\($0)"]) }
        var properties: [Property] = []
        for index in 0..<count {
            properties.append(Property(key: "alt\(index)", value: .string("second \(index)")))
            properties.append(Property(key: "x\(index)", value: .number("1")))
            properties.append(Property(key: "h\(index)", value: .string("first \(index)")))
            properties.append(Property(key: "alt\(index)", value: .string("second again \(index)")))
        }
        let (values, unmatched) = Mapping(attributes: attributes, actions: [:]).attributeValues(of: properties)
        #expect(values == (0..<count).map { AttributeValue(name: "a\($0)", value: .string("first \($0)")) })
        #expect(unmatched == count)
    }

    @Test func consentTravelsWithUpdate() throws {
        let plan = try #require(try plan(
            [.userConsentUpdate: [.updateContact(list: 2)]],
            #"{"type":"USER_CONSENT_UPDATE","contactId":"c1","channel":"SMS","consented":true}"#
        ))
        #expect(plan.operations == [.upsertContact(
            list: 2, contactId: "c1", attributes: [], consent: .init(channel: .sms, consented: true), createWith: nil
        )])
    }

    @Test func purchaseRowCarriesTheTransaction() throws {
        let plan = try #require(try plan(
            [.withdrawalRejected: [.createPurchaseRow(list: 1)]],
            #"{"type":"WITHDRAWAL_REJECTED","contactId":"c1","timestamp":"2020-02-05T13:20:00","amount":100.50,"transactionId":"t9"}"#
        ))
        guard case let .addPurchase(list, contactId, row) = try #require(plan.operations.first) else {
            Issue.record("not a purchase")
            return
        }
        #expect(list == 1 && contactId == "c1")
        #expect(row.kind == .withdrawal && row.status == .rejected && row.amount.text == "100.50" && row.transactionId == "t9")
    }

    @Test func blockCountsFromTheEventOrTheReceiveTime() throws {
        let plan = try #require(try plan(
            [.userBlocked: [.tempBlockContact(list: 1, findBy: .originalId, duration: 2, unit: .hours)]],
            #"{"type":"USER_BLOCKED","contactId":"c1"}"#
        ))
        #expect(plan.operations == [.block(list: 1, selector: .contactId("c1"), until: at.adding(2, .hours))])
    }

    @Test func findByEmailNeedsAnEmail() throws {
        let actions: [EventType: [Action]] = [.userBlocked: [.anonymizeContact(list: 1, findBy: .email)]]
        #expect(throws: EventError.self) { try plan(actions, #"{"type":"USER_BLOCKED","contactId":"c1"}"#) }
        let planned = try #require(try plan(actions, #"{"type":"USER_BLOCKED","contactId":"c1","properties":{"email":"A@x.org"}}"#))
        #expect(planned.operations == [.anonymize(list: 1, selector: .email("A@x.org"))])
    }

    @Test func unmappedTypeIsSkipped() throws {
        #expect(try plan([:], #"{"type":"USER_UPDATE","contactId":"c1"}"#) == nil)
        let processor = EventProcessor(mapping: Mapping(attributes: [], actions: [:]))
        let message = IncomingMessage(body: Array(#"{"type":"USER_UPDATE","contactId":"c1"}"#.utf8), identity: .content,
                                      mayBeRedelivery: false, receivedAt: at, source: "s")
        guard case .skipped(.userUpdate) = processor.prepare(message) else {
            Issue.record("not skipped")
            return
        }
    }

    func key(_ identity: IncomingMessage.Identity, redelivered: Bool, body: String = #"{"type":"USER_UPDATE","contactId":"c1"}"#) -> IdempotencyKey? {
        let processor = EventProcessor(mapping: Mapping(attributes: [], actions: [.userUpdate: [.updateContact(list: 1)]]),
                                       redeliveryWindowSeconds: 60)
        let message = IncomingMessage(body: Array(body.utf8), identity: identity, mayBeRedelivery: redelivered, receivedAt: at, source: "q")
        guard case let .event(event) = processor.prepare(message) else { return nil }
        return event.key
    }

    @Test func messageIdsAreAlwaysChecked() {
        #expect(key(.messageId("m-1"), redelivered: false) == IdempotencyKey(value: "m:q:m-1", check: .always))
    }

    @Test func contentKeysAreCheckedOnlyOnRedeliveryWithinTheWindow() throws {
        let first = try #require(key(.content, redelivered: false))
        let again = try #require(key(.content, redelivered: true))
        #expect(first.check == .recordOnly)
        #expect(again.check == .since(Timestamp(secondsSinceEpoch: 1_600_000_000 - 60)))
        #expect(first.value == again.value)
        #expect(first.value.hasPrefix("c:q:"))
        // The canonical form ignores member order and spacing.
        let reordered = try #require(key(.content, redelivered: false, body: #"{ "contactId": "c1", "type": "USER_UPDATE" }"#))
        #expect(reordered.value == first.value)
    }
}
