import CRMCore
import SNSSupport
import Testing

@Suite("SNS envelope")
struct EnvelopeTests {
    /// What SQS receives from an SNS topic without raw delivery: the payload is an escaped JSON string.
    static let notification = #"""
        {
          "Type" : "Notification",
          "MessageId" : "6f1c2d9e-4b7a-4f0e-9c21-8d2b5a7e3f10",
          "TopicArn" : "arn:aws:sns:ap-southeast-2:111122223333:jomablue-push",
          "Subject" : "person",
          "Message" : "{\"resource_type\":\"person\",\"generated_at\":\"2026-05-13T00:02:10.118Z\",\"identifiers\":{\"id\":\"northwind/event_person/51490\",\"first_name\":\"\uc9c0\uc740\",\"email\":\"jieun.lee@example.co.kr\"},\"data\":{\"checked_in\":true,\"note\":\"line\\nbreak \\\"quoted\\\"\"}}",
          "Timestamp" : "2026-05-13T00:02:10.412Z",
          "SignatureVersion" : "1",
          "Signature" : "bm90LWEtcmVhbC1zaWduYXR1cmU=",
          "SigningCertURL" : "https://sns.ap-southeast-2.amazonaws.com/SimpleNotificationService-0000.pem",
          "UnsubscribeURL" : "https://sns.ap-southeast-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:ap-southeast-2:111122223333:jomablue-push:0a1b",
          "MessageAttributes" : {
            "resource_type" : {"Type":"String","Value":"person"},
            "attempt" : {"Type":"Number","Value":"3.0e0"},
            "regions" : {"Type":"String.Array","Value":"[\"APAC\",\"EMEA\"]"},
            "thumbprint" : {"Type":"Binary","Value":"AAECAw=="}
          }
        }
        """#

    @Test func unwrapsANotification() throws {
        let envelope = try #require(try SNSEnvelope.unwrap(json(Self.notification)))
        #expect(envelope.messageId == "6f1c2d9e-4b7a-4f0e-9c21-8d2b5a7e3f10")
        #expect(envelope.topicArn == "arn:aws:sns:ap-southeast-2:111122223333:jomablue-push")
        #expect(envelope.timestamp == "2026-05-13T00:02:10.412Z")
        #expect(envelope.subject == "person")
        #expect(envelope.messageAttributes == [
            "resource_type": .string("person"),
            "attempt": .number("3.0e0"),
            "regions": .stringArray(#"["APAC","EMEA"]"#),
            "thumbprint": .binary("AAECAw=="),
        ])
        #expect(envelope.message.hasPrefix(#"{"resource_type":"person","#))

        let payload = try envelope.payload()
        #expect(payload["resource_type"] == .string("person"))
        #expect(payload["identifiers"]?["first_name"] == .string("지은"))
        #expect(payload["data"]?["note"] == .string("line\nbreak \"quoted\""))
        #expect(payload["data"]?["checked_in"] == .bool(true))
    }

    @Test func minimalNotification() throws {
        let body = try json(#"{"Type":"Notification","MessageId":"m-1","TopicArn":"arn:aws:sns:eu-west-1:1:t","Message":"not JSON at all","Subject":null}"#)
        let envelope = try #require(try SNSEnvelope.unwrap(body))
        #expect(envelope == SNSEnvelope(messageId: "m-1", topicArn: "arn:aws:sns:eu-west-1:1:t", message: "not JSON at all"))
        #expect(throws: JSONParseError.self) { try envelope.payload() }
    }

    /// AWS's own examples once wrote a Number attribute's value unquoted; the literal text is kept.
    @Test func numberValueWrittenAsANumber() throws {
        let body = try json(
            #"{"Type":"Notification","MessageId":"m","TopicArn":"t","Message":"{}","MessageAttributes":{"price_usd":{"Type":"Number","Value":210.75}}}"#)
        #expect(try SNSEnvelope.unwrap(body)?.messageAttributes["price_usd"] == .number("210.75"))
    }

    @Test(arguments: [
        // Raw delivery: the payload itself.
        #"{"resource_type":"person","identifiers":{"id":"northwind/event_person/1"},"data":{}}"#,
        // Other SNS message types.
        #"{"Type":"SubscriptionConfirmation","MessageId":"m","TopicArn":"t","Message":"You have chosen to subscribe","SubscribeURL":"https://example.com","Token":"x"}"#,
        #"{"Type":"UnsubscribeConfirmation","MessageId":"m","TopicArn":"t","Message":"x"}"#,
        // Not quite a notification.
        #"{"Type":"Notification","TopicArn":"t","Message":"x"}"#,
        #"{"Type":"Notification","MessageId":"m","Message":"x"}"#,
        #"{"Type":"Notification","MessageId":7,"TopicArn":"t","Message":"x"}"#,
        #"{"Type":"notification","MessageId":"m","TopicArn":"t","Message":"x"}"#,
        #"{"type":"Notification","MessageId":"m","TopicArn":"t","Message":"x"}"#,
        // Not objects.
        #"["Notification"]"#,
        #""Notification""#,
        "null",
    ])
    func notAnEnvelope(_ text: String) throws {
        #expect(try SNSEnvelope.unwrap(json(text)) == nil)
    }

    @Test(arguments: [
        (#""Message":{"resource_type":"person"}"#, "invalid SNS notification: Message: expected a string (the payload), found an object"),
        (#""Message":null"#, "invalid SNS notification: Message: expected a string (the payload), found null"),
        (#""Message":42"#, "invalid SNS notification: Message: expected a string (the payload), found a number"),
        (#""Subject":"s""#, "invalid SNS notification: Message: missing"),
        (#""Message":"{}","Timestamp":1715558530"#, "invalid SNS notification: Timestamp: expected a string, found a number"),
        (#""Message":"{}","Subject":["a"]"#, "invalid SNS notification: Subject: expected a string, found an array"),
        (#""Message":"{}","MessageAttributes":[]"#, "invalid SNS notification: MessageAttributes: expected an object, found an array"),
        (#""Message":"{}","MessageAttributes":{"a":"x"}"#, "invalid SNS notification: MessageAttributes.a: expected an object with Type and Value, found a string"),
        (#""Message":"{}","MessageAttributes":{"a":{"Value":"x"}}"#, "invalid SNS notification: MessageAttributes.a.Type: missing"),
        (#""Message":"{}","MessageAttributes":{"a":{"Type":1,"Value":"x"}}"#, "invalid SNS notification: MessageAttributes.a.Type: expected a string, found a number"),
        (#""Message":"{}","MessageAttributes":{"a":{"Type":"String"}}"#, "invalid SNS notification: MessageAttributes.a.Value: missing"),
        (#""Message":"{}","MessageAttributes":{"a":{"Type":"String","Value":true}}"#, "invalid SNS notification: MessageAttributes.a.Value: expected a string, found a boolean"),
    ])
    func brokenNotification(_ fields: String, error: String) throws {
        let body = try json(#"{"Type":"Notification","MessageId":"m","TopicArn":"t","# + fields + "}")
        let thrown = #expect(throws: SNSEnvelopeError.self) { try SNSEnvelope.unwrap(body) }
        #expect(thrown?.description == error)
    }

    @Test func messageFieldErrorNamesTheField() throws {
        let body = try json(#"{"Type":"Notification","MessageId":"m","TopicArn":"t","Message":{"a":1}}"#)
        let thrown = #expect(throws: SNSEnvelopeError.self) { try SNSEnvelope.unwrap(body) }
        #expect(thrown?.field == "Message")
    }

    /// The envelope feeds the policy in its own scope.
    @Test func policyOnEnvelopeUsesItsScope() throws {
        let envelope = try #require(try SNSEnvelope.unwrap(json(Self.notification)))

        let byAttribute = try SNSFilterPolicy(parsing: #"{"resource_type": ["person"], "attempt": [{"numeric": ["=", 3]}], "regions": ["EMEA"]}"#)
        #expect(byAttribute.matches(envelope: envelope))
        let byAttributeOther = try SNSFilterPolicy(parsing: #"{"resource_type": ["event"]}"#)
        #expect(!byAttributeOther.matches(envelope: envelope))

        let byBody = try SNSFilterPolicy(parsing: #"{"data": {"checked_in": [true]}}"#, scope: .messageBody)
        #expect(byBody.matches(envelope: envelope))
        let byBodyOther = try SNSFilterPolicy(parsing: #"{"data": {"checked_in": [false]}}"#, scope: .messageBody)
        #expect(!byBodyOther.matches(envelope: envelope))
        // A body-scoped policy does not look at attributes, even when they would match.
        let attributeNameInBody = try SNSFilterPolicy(parsing: #"{"attempt": [{"exists": true}]}"#, scope: .messageBody)
        #expect(!attributeNameInBody.matches(envelope: envelope))
    }

    @Test func bodyPolicyOnANonJSONMessage() throws {
        let envelope = SNSEnvelope(messageId: "m", topicArn: "t", message: "plain text")
        #expect(!(try SNSFilterPolicy(parsing: #"{"a": [{"exists": false}]}"#, scope: .messageBody)).matches(envelope: envelope))
        #expect(try SNSFilterPolicy(parsing: "{}", scope: .messageBody).matches(envelope: envelope))
    }
}
