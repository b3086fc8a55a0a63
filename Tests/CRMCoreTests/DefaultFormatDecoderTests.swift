import CRMCore
import Testing

@Suite("Default event format")
struct DefaultFormatDecoderTests {
    let decoder = DefaultFormatDecoder()

    func decode(_ text: String) throws(EventError) -> CRMEvent {
        try decoder.decode(Array(text.utf8)).event
    }

    func reason(_ text: String) -> String? {
        do {
            _ = try decode(text)
            return nil
        } catch {
            return error.description
        }
    }

    static let userTypes: [EventType] = [.userRegistration, .userUpdate, .userBlocked]
    static let transactionTypes: [EventType] = EventType.defaultFormatTypes.filter { $0.transaction != nil }

    @Test(arguments: userTypes)
    func decodesUserEvents(type: EventType) throws {
        let event = try decode(#"{"type":"\#(type.rawValue)","contactId":"abc123","properties":{"prop1":"value1","n":{"x":2}}}"#)
        #expect(event.type == type)
        #expect(event.contactId == "abc123")
        #expect(event.properties == [Property(key: "prop1", value: .string("value1")), Property(key: "n.x", value: .number("2"))])
        #expect(event.consent == nil && event.transaction == nil)
    }

    @Test(arguments: ConsentChannel.allCases)
    func decodesConsentUpdates(channel: ConsentChannel) throws {
        let event = try decode(#"{"type":"USER_CONSENT_UPDATE","contactId":"abc123","channel":"\#(channel.rawValue)","consented":false}"#)
        #expect(event == .userConsentUpdate(ConsentPayload(contactId: "abc123", channel: channel, consented: false)))
    }

    @Test(arguments: transactionTypes)
    func decodesMoneyEvents(type: EventType) throws {
        let event = try decode("""
            {"type":"\(type.rawValue)","contactId":"abc123","timestamp":"2020-02-05T13:20:00","amount":100.50,
             "transactionId":"t-1","vendor":"someVendor","paymentType":"VISA","currency":"EUR","properties":{"prop1":"value1"}}
            """)
        #expect(event.type == type)
        let transaction = try #require(event.transaction)
        #expect(transaction.amount.text == "100.50")
        #expect(transaction.timestamp.rfc3339 == "2020-02-05T13:20:00Z")
        #expect(transaction.transactionId == "t-1")
        #expect(transaction.vendor == "someVendor")
        #expect(transaction.paymentType == "VISA")
        #expect(transaction.currency == "EUR")
    }

    @Test(arguments: transactionTypes)
    func optionalMoneyFieldsMayBeAbsentOrNull(type: EventType) throws {
        let event = try decode(#"{"type":"\#(type.rawValue)","contactId":"c","timestamp":"2020-02-05T13:20:00Z","amount":5,"vendor":null}"#)
        let transaction = try #require(event.transaction)
        #expect(transaction.transactionId == nil && transaction.vendor == nil && transaction.paymentType == nil)
    }

    @Test(arguments: [
        (#"{"contactId":"a"}"#, "type: required"),
        (#"{"type":"USER_DELETE","contactId":"a"}"#, #"type: unknown event type "USER_DELETE""#),
        (#"{"type":7,"contactId":"a"}"#, "type: expected a string, got 7"),
        (#"[1]"#, "expected a JSON object, got an array"),
        (#"{"type":"USER_UPDATE"}"#, "USER_UPDATE.contactId: required"),
        (#"{"type":"USER_UPDATE","contactId":123}"#, "USER_UPDATE.contactId: expected a string, got 123"),
        (#"{"type":"USER_UPDATE","contactId":"  "}"#, "USER_UPDATE.contactId: must not be empty"),
        (#"{"type":"USER_UPDATE","contactId":"a","properties":[1]}"#, "USER_UPDATE.properties: expected an object, got [1]"),
        (#"{"type":"USER_CONSENT_UPDATE","contactId":"a","consented":true}"#, "USER_CONSENT_UPDATE.channel: required"),
        (#"{"type":"USER_CONSENT_UPDATE","contactId":"a","channel":"FAX","consented":true}"#,
         #"USER_CONSENT_UPDATE.channel: expected one of EMAIL, SMS, PUSH, INAPP, PRINT, PAGE, AUDIO, got "FAX""#),
        (#"{"type":"USER_CONSENT_UPDATE","contactId":"a","channel":"SMS","consented":"yes"}"#,
         #"USER_CONSENT_UPDATE.consented: expected true or false, got "yes""#),
        (#"{"type":"USER_CONSENT_UPDATE","contactId":"a","channel":"SMS"}"#, "USER_CONSENT_UPDATE.consented: required"),
        (#"{"type":"DEPOSIT_APPROVED","contactId":"a","timestamp":"2020-02-05T13:20:00","amount":"abc"}"#,
         #"DEPOSIT_APPROVED.amount: expected a number, got "abc""#),
        (#"{"type":"DEPOSIT_APPROVED","contactId":"a","timestamp":"2020-02-05T13:20:00"}"#, "DEPOSIT_APPROVED.amount: required"),
        (#"{"type":"DEPOSIT_APPROVED","contactId":"a","timestamp":"2020-02-05T13:20:00","amount":-5}"#,
         "DEPOSIT_APPROVED.amount: must not be negative, got -5"),
        (#"{"type":"WITHDRAWAL_APPROVED","contactId":"a","timestamp":"2020-02-05T13:20:00","amount":1e400}"#,
         "WITHDRAWAL_APPROVED.amount: 1e400 is out of range (at most 15 digits before the decimal point)"),
        (#"{"type":"WITHDRAWAL_APPROVED","contactId":"a","amount":1}"#, "WITHDRAWAL_APPROVED.timestamp: required"),
        (#"{"type":"WITHDRAWAL_APPROVED","contactId":"a","amount":1,"timestamp":"yesterday"}"#,
         #"WITHDRAWAL_APPROVED.timestamp: expected an ISO-8601 date and time, got "yesterday""#),
        (#"{"type":"WITHDRAWAL_APPROVED","contactId":"a","amount":1,"timestamp":"2020-02-05T13:20:00","vendor":5}"#,
         "WITHDRAWAL_APPROVED.vendor: expected a string, got 5"),
        (#"{"type":"DEPOSIT_REQUESTED","contactId":"a","amount":1,"timestamp":"2020-02-05","transactionId":{"a":1}}"#,
         #"DEPOSIT_REQUESTED.transactionId: expected a string, got {"a":1}"#),
        ("{\"type\":\"USER_UPDATE\"", "invalid JSON at byte 21: unexpected end of input in an object"),
    ])
    func namesTheFieldAndTheReason(text: String, expected: String) {
        #expect(reason(text) == expected)
    }

    @Test func refusesTooManyProperties() {
        let small = DefaultFormatDecoder(limits: .init(maxProperties: 2))
        let text = #"{"type":"USER_UPDATE","contactId":"a","properties":{"a":1,"b":2,"c":3}}"#
        #expect(throws: EventError.self) { try small.decode(Array(text.utf8)) }
    }

    @Test func ignoresUnknownTopLevelFields() throws {
        let event = try decode(#"{"type":"USER_UPDATE","contactId":"a","source":"web","version":2}"#)
        #expect(event == .userUpdate(UserPayload(contactId: "a")))
    }

    @Test func errorsCarryACode() {
        #expect(throws: EventError(.unknownType, field: "type", reason: #"unknown event type "USER_DELETE""#)) {
            try decode(#"{"type":"USER_DELETE","contactId":"a"}"#)
        }
    }
}
