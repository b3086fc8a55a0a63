import CRMCore

/// One SNS message attribute as the notification envelope carries it: `{"Type": "String", "Value": "person"}`.
///
/// `type` is SNS's data type: `String`, `Number`, `String.Array` (a JSON array written as a string) or `Binary`
/// (base64). `value` is always the text SNS wrote, so a `Number` keeps its literal (`3.015e2`).
public struct SNSMessageAttribute: Sendable, Hashable {
    public var type: String
    public var value: String

    public init(type: String, value: String) {
        self.type = type
        self.value = value
    }

    public static func string(_ value: String) -> SNSMessageAttribute { SNSMessageAttribute(type: "String", value: value) }
    public static func number(_ value: String) -> SNSMessageAttribute { SNSMessageAttribute(type: "Number", value: value) }
    public static func stringArray(_ json: String) -> SNSMessageAttribute { SNSMessageAttribute(type: "String.Array", value: json) }
    public static func binary(_ base64: String) -> SNSMessageAttribute { SNSMessageAttribute(type: "Binary", value: base64) }
}

/// Why a body that is an SNS notification cannot be used: the field (as a path, e.g. `MessageAttributes.price.Value`)
/// and what is wrong with it.
public struct SNSEnvelopeError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { "invalid SNS notification: \(field): \(reason)" }
}

/// An SNS notification as SNS delivers it to SQS (or HTTP) without raw message delivery:
/// `{"Type":"Notification","MessageId":…,"TopicArn":…,"Message":"<payload as a string>","Timestamp":…,
/// "MessageAttributes":{"name":{"Type":…,"Value":…}},…}`.
///
/// `messageId` is reused when SNS retries a delivery, so it is a sound deduplication key. The signature fields are
/// not kept: nothing here verifies them.
public struct SNSEnvelope: Sendable, Equatable {
    public var messageId: String
    public var topicArn: String
    /// The published payload, exactly as the publisher sent it (for JSON publishers, JSON text).
    public var message: String
    public var timestamp: String?
    public var subject: String?
    /// Empty when the notification has no `MessageAttributes`.
    public var messageAttributes: [String: SNSMessageAttribute]

    public init(
        messageId: String,
        topicArn: String,
        message: String,
        timestamp: String? = nil,
        subject: String? = nil,
        messageAttributes: [String: SNSMessageAttribute] = [:]
    ) {
        self.messageId = messageId
        self.topicArn = topicArn
        self.message = message
        self.timestamp = timestamp
        self.subject = subject
        self.messageAttributes = messageAttributes
    }

    /// The notification inside an SQS message body, nil when the body is not one (raw delivery, or a message that
    /// never went through SNS).
    ///
    /// A body is a notification when `Type` is `"Notification"` and `MessageId` and `TopicArn` are strings. Such a
    /// body whose other fields are unusable (a `Message` that is missing or not a string, `MessageAttributes`
    /// that are not `{"Type": string, "Value": string}` objects, a non-string `Timestamp` or `Subject`) throws: it is
    /// a broken notification, not someone else's payload. `SubscriptionConfirmation` and `UnsubscribeConfirmation`
    /// messages are not notifications and give nil.
    public static func unwrap(_ body: JSONValue) throws(SNSEnvelopeError) -> SNSEnvelope? {
        // A body from an SNS topic (its ARN says so) that is not a usable notification is refused with the reason,
        // rather than read as a payload of its own and refused for fields it was never meant to have.
        if case let .string(arn)? = body["TopicArn"], arn.hasPrefix("arn:aws:sns:"), let type = body["Type"] {
            guard case .string("Notification") = type else {
                if case .string("SubscriptionConfirmation") = type {
                    // SNS confirms a same-account subscription of a queue itself; one made from another account (a
                    // vendor's topic) waits for this confirmation, and until then no event arrives.
                    throw SNSEnvelopeError(field: "Type", reason: "a SubscriptionConfirmation, not a notification: no event arrives until the subscription is confirmed; open the message's SubscribeURL, or run aws sns confirm-subscription with its TopicArn and Token")
                }
                if case let .string(name) = type, name.hasSuffix("Confirmation") {
                    throw SNSEnvelopeError(field: "Type", reason: "a \(name), not a notification: it carries no event")
                }
                throw SNSEnvelopeError(field: "Type", reason: "expected \"Notification\", found \(type.excerpt)")
            }
            guard case .string? = body["MessageId"] else {
                throw SNSEnvelopeError(field: "MessageId", reason: body["MessageId"].map { "expected a string, found \($0.typeName)" } ?? "missing")
            }
        }
        guard case .string("Notification") = body["Type"],
            case let .string(messageId)? = body["MessageId"],
            case let .string(topicArn)? = body["TopicArn"]
        else { return nil }

        guard let messageValue = body["Message"] else {
            throw SNSEnvelopeError(field: "Message", reason: "missing")
        }
        guard case let .string(message) = messageValue else {
            throw SNSEnvelopeError(field: "Message", reason: "expected a string (the payload), found \(messageValue.typeName)")
        }
        return SNSEnvelope(
            messageId: messageId,
            topicArn: topicArn,
            message: message,
            timestamp: try optionalString(body, "Timestamp"),
            subject: try optionalString(body, "Subject"),
            messageAttributes: try attributes(body["MessageAttributes"])
        )
    }

    /// The payload parsed as JSON (what Jomablue and most publishers send).
    public func payload(parser: JSONParser = JSONParser()) throws(JSONParseError) -> JSONValue {
        try parser.parse(message)
    }

    private static func optionalString(_ body: JSONValue, _ field: String) throws(SNSEnvelopeError) -> String? {
        switch body[field] {
        case nil, .null?: return nil
        case let .string(text)?: return text
        case let other?: throw SNSEnvelopeError(field: field, reason: "expected a string, found \(other.typeName)")
        }
    }

    private static func attributes(_ value: JSONValue?) throws(SNSEnvelopeError) -> [String: SNSMessageAttribute] {
        let members: [(key: String, value: JSONValue)]
        switch value {
        case nil, .null?: return [:]
        case let .object(list)?: members = list
        case let other?:
            throw SNSEnvelopeError(field: "MessageAttributes", reason: "expected an object, found \(other.typeName)")
        }
        var result: [String: SNSMessageAttribute] = [:]
        for (name, attribute) in members {
            let field = "MessageAttributes.\(name)"
            guard case .object = attribute else {
                throw SNSEnvelopeError(field: field, reason: "expected an object with Type and Value, found \(attribute.typeName)")
            }
            guard case let .string(type)? = attribute["Type"] else {
                let reason = attribute["Type"].map { "expected a string, found \($0.typeName)" } ?? "missing"
                throw SNSEnvelopeError(field: field + ".Type", reason: reason)
            }
            let text: String
            switch attribute["Value"] {
            case let .string(string)?: text = string
            // SNS writes every value as a string; a bare number (seen in AWS's own examples) keeps its literal text.
            case let .number(literal)?: text = literal
            case nil: throw SNSEnvelopeError(field: field + ".Value", reason: "missing")
            case let other?: throw SNSEnvelopeError(field: field + ".Value", reason: "expected a string, found \(other.typeName)")
            }
            result[name] = SNSMessageAttribute(type: type, value: text)
        }
        return result
    }
}
