import AWSSigV4
import CRMCore
import CRMTestSupport
import Foundation
import SQSClient
import Testing

/// The SQS client against moto_server with SigV4 verification on.
@Suite("SQS client", .serialized)
struct SQSClientTests {
    /// Creates a queue and returns its URL.
    static func createQueue(_ server: MotoTestServer, _ name: String, attributes: [String: String] = [:]) throws -> String {
        try server.createQueue(name, attributes: attributes)
    }

    static func client(_ server: MotoTestServer, _ queueURL: String, secret: String? = nil) -> SQSClient {
        var credentials = server.credentials
        if let secret { credentials.secretAccessKey = secret }
        return SQSClient(queueURL: queueURL, region: server.region, credentials: credentials, endpoint: server.url)
    }

    @Test func aWrongSecretIsRefusedWithSignatureDoesNotMatch() throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "wrong-secret-\(UUID().uuidString.prefix(6))")
        let client = Self.client(server, queue, secret: "not-the-secret")
        do {
            _ = try client.receiveMessages(waitSeconds: 0)
            Issue.record("a wrongly signed request was accepted")
        } catch {
            #expect(error.code == "SignatureDoesNotMatch")
            #expect(error.httpStatus == 403)
            #expect(error.isAuthentication)
            #expect(!error.isTransient)
        }
    }

    @Test func sendReceiveDeleteInBatches() throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "basic-\(UUID().uuidString.prefix(6))")
        let client = Self.client(server, queue)
        for batch in 0..<3 {
            let result = try client.sendMessages((0..<10).map { index in
                .init(id: "m\(index)", body: #"{"n":\#(batch * 10 + index),"name":"é \"quoted\""}"#,
                      attributes: ["resource_type": .init(dataType: "String", stringValue: "person"), "n": .init(dataType: "Number", stringValue: "\(index)")])
            })
            #expect(result.successful.count == 10 && result.failed.isEmpty)
        }
        var received: [SQSMessage] = []
        while received.count < 30 {
            let messages = try client.receiveMessages(maxMessages: 10, waitSeconds: 1)
            if messages.isEmpty { break }
            received += messages
            let deleted = try client.deleteMessages(messages.enumerated().map { ("d\($0.offset)", $0.element.receiptHandle) })
            #expect(deleted.successful.count == messages.count)
        }
        #expect(received.count == 30)
        #expect(Set(received.map(\.messageId)).count == 30)
        let first = try #require(received.first)
        #expect(first.body.contains(#"\"quoted\""#) && first.body.contains("é"))
        #expect(first.messageAttributes["resource_type"] == .init(dataType: "String", stringValue: "person"))
        #expect(first.receiveCount == 1)
        #expect(first.attributes["SentTimestamp"] != nil)
        #expect(try client.queueAttributes(["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"] == "0")
        #expect(client.requestCount >= 7)
    }

    @Test func partialBatchFailuresAreReportedPerEntry() throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "partial-\(UUID().uuidString.prefix(6))")
        let client = Self.client(server, queue)
        _ = try client.sendMessages([.init(id: "a", body: "x")])
        let message = try #require(try client.receiveMessages(waitSeconds: 1).first)
        let result = try client.deleteMessages([("ok", message.receiptHandle), ("bad", "bogus-handle")])
        #expect(result.successful == ["ok"])
        #expect(result.failed.map(\.id) == ["bad"])
        #expect(result.failed.first?.code == "ReceiptHandleIsInvalid")
    }

    @Test func visibilityCanBeExtendedAndReadFromTheQueue() throws {
        let server = try MotoTestServer.shared()
        let queue = try Self.createQueue(server, "visibility-\(UUID().uuidString.prefix(6))", attributes: ["VisibilityTimeout": "2"])
        let client = Self.client(server, queue)
        #expect(try client.queueAttributes(["VisibilityTimeout"])["VisibilityTimeout"] == "2")
        _ = try client.sendMessages([.init(id: "a", body: "x")])
        let message = try #require(try client.receiveMessages(waitSeconds: 1).first)
        let extended = try client.changeVisibility([("e", message.receiptHandle, 30)])
        #expect(extended.successful == ["e"])
        Thread.sleep(forTimeInterval: 3)
        // Past the queue's 2 s, but extended to 30 s: nobody else gets it.
        #expect(try client.receiveMessages(waitSeconds: 1).isEmpty)
    }

    @Test func aMissingQueueIsAClearError() throws {
        let server = try MotoTestServer.shared()
        let client = Self.client(server, server.url + "/123456789012/no-such-queue")
        #expect(throws: SQSError(code: "QueueDoesNotExist", message: "The specified queue does not exist.", httpStatus: 400)) {
            try client.receiveMessages(waitSeconds: 0)
        }
    }

    @Test func nothingListeningIsATransientTransportError() throws {
        let client = SQSClient(queueURL: "http://127.0.0.1:1/q", region: "us-east-1",
                               credentials: AWSCredentials(accessKeyId: "AK", secretAccessKey: "S"), endpoint: "http://127.0.0.1:1")
        do {
            _ = try client.receiveMessages(waitSeconds: 0)
            Issue.record("no error")
        } catch {
            #expect(error.httpStatus == 0 && error.isTransient)
        }
    }
}
