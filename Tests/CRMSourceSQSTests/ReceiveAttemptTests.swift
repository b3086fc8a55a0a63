import AWSSigV4
import CRMConfig
import CRMCore
import CRMSourceSQS
import CRMSourceSupport
import CRMStoreSQLite
import CRMTestSupport
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// FIFO receives retried after a failure carry the failed one's `ReceiveRequestAttemptId`. moto ignores the id, so
/// SQS is played by a local stub that answers the first receive with a 500 (as if the answer had been lost after
/// SQS took the messages).
@Suite("SQS source: FIFO receive attempts")
struct ReceiveAttemptTests {
    /// What the stub saw of each ReceiveMessage: its attempt id.
    final class StubSQS: Sendable {
        let receives = Mutex<[String?]>([])
        let failFirst: Bool

        init(failFirst: Bool) { self.failFirst = failFirst }

        func respond(_ request: LocalHTTPStub.Request) -> LocalHTTPStub.Response {
            let body = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any] ?? [:]
            switch request.headers["x-amz-target"] {
            case "AmazonSQS.GetQueueAttributes":
                return .init(body: #"{"Attributes":{"VisibilityTimeout":"30","FifoQueue":"true"}}"#)
            case "AmazonSQS.ReceiveMessage":
                let count = receives.withLock { $0.append(body["ReceiveRequestAttemptId"] as? String); return $0.count }
                if count == 1, failFirst {
                    return .init(status: 500, body: #"{"__type":"com.amazon.coral.service#InternalFailure","message":"We encountered an internal error."}"#)
                }
                if count <= 2 {
                    return .init(body: #"{"Messages":[{"MessageId":"m-1","ReceiptHandle":"h-1","Body":"{\"type\":\"USER_REGISTRATION\",\"contactId\":\"fifo-1\"}","Attributes":{"MessageGroupId":"g1","ApproximateReceiveCount":"1"}}]}"#)
                }
                Thread.sleep(forTimeInterval: 0.2) // a short long poll that found nothing
                return .init(body: "{}")
            case "AmazonSQS.DeleteMessageBatch", "AmazonSQS.ChangeMessageVisibilityBatch":
                let ids = (body["Entries"] as? [[String: Any]] ?? []).compactMap { $0["Id"] as? String }
                return .init(body: #"{"Successful":[\#(ids.map { #"{"Id":"\#($0)"}"# }.joined(separator: ","))],"Failed":[]}"#)
            default:
                return .init(status: 400, body: #"{"__type":"InvalidAction","message":"not stubbed"}"#)
            }
        }
    }

    static func run(_ sqs: StubSQS, queueName: String) async throws -> (receives: [String?], contacts: Int) {
        let stub = try LocalHTTPStub { sqs.respond($0) }
        defer { stub.stop() }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-fifo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (store, _) = try SQSSourceTests.store()
        let config = SQSSourceConfig(
            queueURL: "\(stub.url)/123456789012/\(queueName)", region: "us-east-1", endpoint: stub.url,
            credentials: AWSCredentials(accessKeyId: "AKIATEST", secretAccessKey: "secret"), pollers: 1, waitTimeSeconds: 1,
            deadLetterFile: folder.appendingPathComponent("dead-letters.jsonl").path
        )
        let source = SQSSource(name: "fifo-test", config: config, processor: { EventProcessor(mapping: SQSSourceTests.mapping) }, store: store,
                               logger: Logger(label: "test.fifo"))
        let group = ServiceGroup(services: [source], logger: Logger(label: "test.fifo"))
        let task = Task { try await group.run() }
        let deadline = ContinuousClock.now + .seconds(20)
        while sqs.receives.withLock({ $0.count }) < 4, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        await group.triggerGracefulShutdown()
        try await task.value
        return (sqs.receives.withLock { $0 }, try await store.count("contacts"))
    }

    @Test func aFIFOReceiveRetriedAfterAFailureCarriesTheSameAttemptId() async throws {
        let (receives, contacts) = try await Self.run(StubSQS(failFirst: true), queueName: "orders.fifo")
        #expect(contacts == 1)
        try #require(receives.count >= 4)
        #expect(receives.allSatisfy { $0 != nil })
        // The failed receive's id, sent again; then a new id for each new receive.
        #expect(receives[0] == receives[1])
        #expect(receives[2] != receives[1] && receives[3] != receives[2])
    }

    @Test func aStandardQueueSendsNoAttemptId() async throws {
        let (receives, contacts) = try await Self.run(StubSQS(failFirst: false), queueName: "orders")
        #expect(contacts == 1)
        #expect(receives.count >= 4 && receives.allSatisfy { $0 == nil })
    }
}
