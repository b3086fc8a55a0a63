import AWSSigV4
import CRMCore
import CurlHTTP
import Foundation

/// An SQS error: the AWS error code (`SignatureDoesNotMatch`, `AWS.SimpleQueueService.NonExistentQueue`, ...), its
/// message, and the HTTP status; or a transport failure (status 0).
public struct SQSError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var httpStatus: Int

    public init(code: String, message: String, httpStatus: Int) {
        self.code = code
        self.message = message
        self.httpStatus = httpStatus
    }

    /// Worth retrying: throttling, server errors, transport trouble. Not: bad credentials, missing queue.
    public var isTransient: Bool {
        httpStatus == 0 || httpStatus >= 500 || code.contains("Throttl") || code == "RequestThrottled" || code == "ServiceUnavailable"
    }

    /// The code without the `Exception` the JSON protocol may add (`ExpiredTokenException` is `ExpiredToken`).
    var baseCode: String { code.hasSuffix("Exception") ? String(code.dropLast("Exception".count)) : code }

    /// The credentials are wrong, expired or lack permission: retrying the same request cannot help.
    public var isAuthentication: Bool {
        ["SignatureDoesNotMatch", "InvalidClientTokenId", "UnrecognizedClient", "AccessDenied", "MissingAuthenticationToken",
         "IncompleteSignature", "ExpiredToken", "InvalidSignature", "InvalidAccessKeyId", "InvalidToken", "AuthFailure",
         "TokenRefreshRequired", "RequestExpired", "RequestTimeTooSkewed", "KmsAccessDenied"].contains(baseCode)
    }

    /// Refused because of the credentials themselves (unknown, expired, or a secret that does not match): other
    /// credentials may succeed.
    public var mayBeStaleCredentials: Bool {
        ["InvalidClientTokenId", "UnrecognizedClient", "ExpiredToken", "InvalidAccessKeyId", "InvalidToken", "TokenRefreshRequired",
         "SignatureDoesNotMatch", "InvalidSignature", "AuthFailure"].contains(baseCode) && !isClockSkew
    }

    /// Refused as signed at the wrong time: this machine's clock is off.
    public var isClockSkew: Bool {
        if ["RequestTimeTooSkewed", "RequestExpired"].contains(baseCode) { return true }
        guard ["SignatureDoesNotMatch", "InvalidSignature", "AuthFailure"].contains(baseCode) else { return false }
        let text = message.lowercased()
        return text.contains("signature expired") || text.contains("skew") || text.contains("signature not yet current")
    }

    public var description: String { httpStatus == 0 ? "sqs transport: \(message)" : "sqs \(code) (HTTP \(httpStatus)): \(message)" }
}

/// A received message.
public struct SQSMessage: Sendable, Hashable {
    public var messageId: String
    public var receiptHandle: String
    public var body: String
    /// System attributes: `ApproximateReceiveCount`, `MessageGroupId`, `SentTimestamp`, ...
    public var attributes: [String: String]
    /// Message attributes: name -> (data type, string value).
    public var messageAttributes: [String: MessageAttribute]

    /// A message attribute: `String`, `Number` (and custom `String.x`, `Number.x` types) carry `stringValue`;
    /// `Binary` (and `Binary.x`) carry `binaryValue`.
    public struct MessageAttribute: Sendable, Hashable {
        public var dataType: String
        public var stringValue: String?
        public var binaryValue: [UInt8]?

        public init(dataType: String, stringValue: String?, binaryValue: [UInt8]? = nil) {
            self.dataType = dataType
            self.stringValue = stringValue
            self.binaryValue = binaryValue
        }

        /// As SQS's JSON protocol writes it: `DataType`, then `StringValue` or `BinaryValue` (base64).
        public var json: JSONValue {
            if let binaryValue {
                return .object([("DataType", .string(dataType)), ("BinaryValue", .string(Data(binaryValue).base64EncodedString()))])
            }
            return .object([("DataType", .string(dataType)), ("StringValue", .string(stringValue ?? ""))])
        }

        /// Reads the JSON protocol's form; nil without a `DataType`, or with a `BinaryValue` that is not base64.
        public init?(json: JSONValue) {
            guard case let .string(type)? = json["DataType"] else { return nil }
            dataType = type
            if case let .string(text)? = json["StringValue"] { stringValue = text } else { stringValue = nil }
            if case let .string(base64)? = json["BinaryValue"] {
                guard let bytes = Data(base64Encoded: base64) else { return nil }
                binaryValue = [UInt8](bytes)
            } else {
                binaryValue = nil
            }
        }
    }

    public init(messageId: String, receiptHandle: String, body: String, attributes: [String: String] = [:], messageAttributes: [String: MessageAttribute] = [:]) {
        self.messageId = messageId
        self.receiptHandle = receiptHandle
        self.body = body
        self.attributes = attributes
        self.messageAttributes = messageAttributes
    }

    public var receiveCount: Int { Int(attributes["ApproximateReceiveCount"] ?? "") ?? 1 }
    public var messageGroupId: String? { attributes["MessageGroupId"] }
}

/// The SQS API over AWS JSON 1.0 (`X-Amz-Target: AmazonSQS.<Action>`), signed with SigV4, on libcurl.
///
/// Blocking and not thread-safe (one curl handle, kept alive): each poller thread owns its own client; the
/// threads of a source share one `AWSCredentialsProvider`.
///
/// A request refused for its credentials is sent once more when the provider has other credentials (they were
/// renewed meanwhile); one refused as signed at the wrong time is sent once more signed at SQS's time.
public final class SQSClient {
    public let queueURL: String
    public let endpoint: String
    public let region: String
    public let credentials: AWSCredentialsProvider
    private var signer: AWSSigner
    let http: CurlHTTPClient
    let now: @Sendable () -> Date
    let parser = JSONParser(limits: JSONLimits(maxBytes: 16 << 20, maxDepth: 32, maxObjectMembers: 10_000, maxStringBytes: 4 << 20))
    /// Requests sent, for the requests-per-message figure.
    public private(set) var requestCount = 0

    /// - Parameters:
    ///   - endpoint: where requests go; nil: `https://sqs.<region>.amazonaws.com` (the region's partition's suffix:
    ///     `amazonaws.com.cn` in China, …).
    ///   - now: the clock requests are signed with (tests move it).
    public init(
        queueURL: String, region: String, credentials: AWSCredentialsProvider, endpoint: String? = nil, connectTimeout: Duration = .seconds(5),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.queueURL = queueURL
        self.region = region
        self.endpoint = endpoint ?? AWSEndpoints.url(service: "sqs", region: region)
        self.credentials = credentials
        self.now = now
        signer = AWSSigner(credentials: AWSCredentials(accessKeyId: "", secretAccessKey: ""), name: "sqs", region: region)
        http = CurlHTTPClient(connectTimeout: connectTimeout)
    }

    /// A client with credentials that never change.
    public convenience init(queueURL: String, region: String, credentials: AWSCredentials, endpoint: String? = nil, connectTimeout: Duration = .seconds(5)) {
        self.init(queueURL: queueURL, region: region, credentials: .fixed(credentials), endpoint: endpoint, connectTimeout: connectTimeout)
    }

    // MARK: Actions

    /// Long-polls for up to `maxMessages` (1...10), waiting up to `waitSeconds` (0...20).
    /// `shouldAbort` ends the long poll early (about once a second it is asked); an aborted poll returns no messages.
    /// `attemptId` (FIFO queues): a receive retried after a failure with the same id gets the messages the failed
    /// one may have taken, instead of leaving them (and their groups) hidden for a visibility timeout.
    public func receiveMessages(
        maxMessages: Int = 10, waitSeconds: Int = 20, visibilityTimeout: Int? = nil, attemptId: String? = nil,
        shouldAbort: (@Sendable () -> Bool)? = nil
    ) throws(SQSError) -> [SQSMessage] {
        var request: [(key: String, value: JSONValue)] = [
            ("QueueUrl", .string(queueURL)),
            ("MaxNumberOfMessages", .number(String(maxMessages))),
            ("WaitTimeSeconds", .number(String(waitSeconds))),
            ("MessageSystemAttributeNames", .array([.string("All")])),
            ("AttributeNames", .array([.string("All")])),
            ("MessageAttributeNames", .array([.string("All")])),
        ]
        if let visibilityTimeout { request.append(("VisibilityTimeout", .number(String(visibilityTimeout)))) }
        if let attemptId { request.append(("ReceiveRequestAttemptId", .string(attemptId))) }
        let response: JSONValue
        do {
            response = try call("ReceiveMessage", .object(request), timeout: .seconds(waitSeconds + 10), shouldAbort: shouldAbort)
        } catch where error.code == "Aborted" {
            return []
        }
        guard case let .array(messages)? = response["Messages"] else { return [] }
        return messages.compactMap { message in
            guard case let .string(id)? = message["MessageId"], case let .string(handle)? = message["ReceiptHandle"] else { return nil }
            let body: String
            if case let .string(text)? = message["Body"] { body = text } else { body = "" }
            var attributes: [String: String] = [:]
            if case let .object(members)? = message["Attributes"] {
                for member in members { if case let .string(value) = member.value { attributes[member.key] = value } }
            }
            var messageAttributes: [String: SQSMessage.MessageAttribute] = [:]
            if case let .object(members)? = message["MessageAttributes"] {
                for member in members {
                    if let attribute = SQSMessage.MessageAttribute(json: member.value) { messageAttributes[member.key] = attribute }
                }
            }
            return SQSMessage(messageId: id, receiptHandle: handle, body: body, attributes: attributes, messageAttributes: messageAttributes)
        }
    }

    /// The result of a batch call: ids that succeeded, and the failures with their codes.
    public struct BatchResult: Sendable, Hashable {
        public var successful: [String]
        public var failed: [(id: String, code: String, message: String, senderFault: Bool)]

        public static func == (lhs: BatchResult, rhs: BatchResult) -> Bool {
            lhs.successful == rhs.successful && lhs.failed.map(\.id) == rhs.failed.map(\.id)
        }

        public func hash(into hasher: inout Hasher) { hasher.combine(successful) }
    }

    /// Deletes up to 10 messages by receipt handle (ids are the caller's, unique within the call).
    public func deleteMessages(_ entries: [(id: String, receiptHandle: String)]) throws(SQSError) -> BatchResult {
        let body: JSONValue = .object([
            ("QueueUrl", .string(queueURL)),
            ("Entries", .array(entries.map { .object([("Id", .string($0.id)), ("ReceiptHandle", .string($0.receiptHandle))]) })),
        ])
        return Self.batchResult(try call("DeleteMessageBatch", body, timeout: .seconds(30)))
    }

    /// Sets the visibility timeout of up to 10 in-flight messages.
    public func changeVisibility(_ entries: [(id: String, receiptHandle: String, seconds: Int)]) throws(SQSError) -> BatchResult {
        let body: JSONValue = .object([
            ("QueueUrl", .string(queueURL)),
            ("Entries", .array(entries.map {
                .object([("Id", .string($0.id)), ("ReceiptHandle", .string($0.receiptHandle)), ("VisibilityTimeout", .number(String($0.seconds)))])
            })),
        ])
        return Self.batchResult(try call("ChangeMessageVisibilityBatch", body, timeout: .seconds(30)))
    }

    /// Queue attributes by name (`VisibilityTimeout`, `RedrivePolicy`, `FifoQueue`, `ApproximateNumberOfMessages`...).
    public func queueAttributes(_ names: [String] = ["All"]) throws(SQSError) -> [String: String] {
        let body: JSONValue = .object([("QueueUrl", .string(queueURL)), ("AttributeNames", .array(names.map(JSONValue.string)))])
        let response = try call("GetQueueAttributes", body, timeout: .seconds(30))
        var attributes: [String: String] = [:]
        if case let .object(members)? = response["Attributes"] {
            for member in members { if case let .string(value) = member.value { attributes[member.key] = value } }
        }
        return attributes
    }

    /// One message to send with `sendMessages`.
    public struct OutgoingMessage: Sendable {
        public var id: String
        public var body: String
        public var attributes: [String: SQSMessage.MessageAttribute]
        public var groupId: String?
        public var deduplicationId: String?

        public init(id: String, body: String, attributes: [String: SQSMessage.MessageAttribute] = [:], groupId: String? = nil, deduplicationId: String? = nil) {
            self.id = id
            self.body = body
            self.attributes = attributes
            self.groupId = groupId
            self.deduplicationId = deduplicationId
        }
    }

    /// Sends up to 10 messages.
    public func sendMessages(_ messages: [OutgoingMessage]) throws(SQSError) -> BatchResult {
        let entries: [JSONValue] = messages.map { message in
            var members: [(key: String, value: JSONValue)] = [("Id", .string(message.id)), ("MessageBody", .string(message.body))]
            if !message.attributes.isEmpty {
                members.append(("MessageAttributes", .object(message.attributes.sorted { $0.key < $1.key }.map { ($0.key, $0.value.json) })))
            }
            if let group = message.groupId { members.append(("MessageGroupId", .string(group))) }
            if let dedup = message.deduplicationId { members.append(("MessageDeduplicationId", .string(dedup))) }
            return .object(members)
        }
        return Self.batchResult(try call("SendMessageBatch", .object([("QueueUrl", .string(queueURL)), ("Entries", .array(entries))]), timeout: .seconds(30)))
    }

    // MARK: The wire

    /// Sends one signed JSON 1.0 request; returns the parsed answer, or throws the AWS error it carries.
    public func call(_ action: String, _ body: JSONValue, timeout: Duration, shouldAbort: (@Sendable () -> Bool)? = nil) throws(SQSError) -> JSONValue {
        let bytes = Array(JSONWriter.string(body).utf8)
        guard let url = URL(string: endpoint.hasSuffix("/") ? endpoint : endpoint + "/") else {
            throw SQSError(code: "InvalidEndpoint", message: "not a URL: \(endpoint)", httpStatus: 0)
        }
        var sentAgain = false
        while true {
            let signedWith: AWSCredentials
            do {
                signedWith = try credentials.credentials()
            } catch {
                throw SQSError(code: "CredentialsUnavailable", message: error.description, httpStatus: 0)
            }
            if signer.credentials != signedWith { signer = AWSSigner(credentials: signedWith, name: "sqs", region: region) }
            let headers: AWSSigner.Headers
            do {
                headers = try signer.signHeaders(
                    method: "POST", url: url,
                    headers: [("Content-Type", "application/x-amz-json-1.0"), ("X-Amz-Target", "AmazonSQS.\(action)")],
                    body: .data(Data(bytes)), date: now().addingTimeInterval(credentials.clockOffset)
                )
            } catch {
                throw SQSError(code: "SigningFailed", message: "\(error)", httpStatus: 0)
            }
            requestCount += 1
            let response: HTTPResponse
            do {
                response = try http.send(
                    HTTPRequest(method: "POST", url: url.absoluteString, headers: headers.map { ($0.name, $0.value) }, body: bytes),
                    timeout: timeout, shouldAbort: shouldAbort
                )
            } catch {
                throw SQSError(code: error.isAborted ? "Aborted" : error.isTimeout ? "Timeout" : "Transport", message: error.message, httpStatus: 0)
            }
            if response.status != 200 {
                let error = Self.error(from: response)
                // Nothing was done by a request refused for its signature: sending it again is safe.
                if !sentAgain, error.isClockSkew, let serverDate = response.header("date").flatMap(Self.httpDate) {
                    credentials.noteServerClock(serverDate, localDate: now())
                    sentAgain = true
                    continue
                }
                if !sentAgain, error.mayBeStaleCredentials, credentials.refresh(after: signedWith) {
                    sentAgain = true
                    continue
                }
                throw error
            }
            if response.body.isEmpty { return .object([]) }
            do {
                return try parser.parse(response.body)
            } catch {
                throw SQSError(code: "InvalidResponse", message: "\(action) answer is not JSON: \(error)", httpStatus: response.status)
            }
        }
    }

    /// An HTTP `Date` header (RFC 9110's IMF-fixdate: `Mon, 07 Dec 2026 13:55:00 GMT`).
    static func httpDate(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: text)
    }

    /// AWS errors come as JSON (`__type`, `message`) from SQS, as XML (`<Code>`, `<Message>`) from some servers.
    static func error(from response: HTTPResponse) -> SQSError {
        let text = String(decoding: response.body, as: UTF8.self)
        if let json = try? JSONParser().parse(response.body) {
            var code = "HTTP\(response.status)"
            if case let .string(type)? = json["__type"] ?? json["code"] ?? json["Code"] {
                code = String(type.split(separator: "#").last ?? Substring(type))
            }
            var message = ""
            if case let .string(text)? = json["message"] ?? json["Message"] { message = text }
            return SQSError(code: code, message: message, httpStatus: response.status)
        }
        func element(_ name: String) -> String? {
            guard let start = text.range(of: "<\(name)>"), let end = text.range(of: "</\(name)>", range: start.upperBound..<text.endIndex) else { return nil }
            return String(text[start.upperBound..<end.lowerBound])
        }
        if let code = element("Code") {
            return SQSError(code: code, message: element("Message") ?? "", httpStatus: response.status)
        }
        if let queryError = response.header("x-amzn-query-error") {
            return SQSError(code: String(queryError.split(separator: ";").first ?? ""), message: String(text.prefix(200)), httpStatus: response.status)
        }
        return SQSError(code: "HTTP\(response.status)", message: String(text.prefix(200)), httpStatus: response.status)
    }

    static func batchResult(_ response: JSONValue) -> BatchResult {
        var result = BatchResult(successful: [], failed: [])
        if case let .array(entries)? = response["Successful"] {
            for entry in entries { if case let .string(id)? = entry["Id"] { result.successful.append(id) } }
        }
        if case let .array(entries)? = response["Failed"] {
            for entry in entries {
                guard case let .string(id)? = entry["Id"] else { continue }
                var code = "", message = ""
                if case let .string(text)? = entry["Code"] { code = text }
                if case let .string(text)? = entry["Message"] { message = text }
                let senderFault = entry["SenderFault"] == .bool(true)
                result.failed.append((id, code, message, senderFault))
            }
        }
        return result
    }
}

/// A queue's `RedrivePolicy` attribute: where SQS moves a message after `maxReceiveCount` receives.
public struct RedrivePolicy: Sendable, Equatable {
    /// `arn:aws:sqs:<region>:<account>:<name>`.
    public var deadLetterTargetArn: String
    public var maxReceiveCount: Int

    /// Reads the attribute's JSON text (`maxReceiveCount` as a number or a string); nil if it is not one.
    public init?(_ text: String) {
        guard let json = try? JSONParser().parse(Array(text.utf8)), case let .string(arn)? = json["deadLetterTargetArn"] else { return nil }
        switch json["maxReceiveCount"] {
        case let .number(literal)?: guard let count = Int(literal) else { return nil }; maxReceiveCount = count
        case let .string(literal)?: guard let count = Int(literal) else { return nil }; maxReceiveCount = count
        default: return nil
        }
        deadLetterTargetArn = arn
    }

    /// The dead-letter queue's name and owning account, from its ARN.
    public var deadLetterQueue: (name: String, account: String)? {
        let parts = deadLetterTargetArn.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "arn", parts[2] == "sqs" else { return nil }
        return (String(parts[5]), String(parts[4]))
    }
}

extension SQSClient {
    /// The URL of a queue by name (`GetQueueUrl`).
    public func queueURL(named name: String, ownerAccount: String? = nil) throws(SQSError) -> String {
        var members: [(key: String, value: JSONValue)] = [("QueueName", .string(name))]
        if let ownerAccount { members.append(("QueueOwnerAWSAccountId", .string(ownerAccount))) }
        let response = try call("GetQueueUrl", .object(members), timeout: .seconds(30))
        guard case let .string(url)? = response["QueueUrl"] else {
            throw SQSError(code: "MissingQueueUrl", message: "GetQueueUrl answered without a QueueUrl", httpStatus: 200)
        }
        return url
    }
}
