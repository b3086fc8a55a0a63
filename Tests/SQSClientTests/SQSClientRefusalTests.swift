import AWSSigV4
import CRMCore
import CRMTestSupport
import Foundation
import Logging
import SQSClient
import Synchronization
import Testing

/// How the client answers SQS refusing a request for its credentials or its time. SQS is played by a local stub
/// here (moto checks neither expiry nor time); the rotation against moto is in the SQS source's tests.
@Suite("SQS client: refused credentials and clock skew")
struct SQSClientRefusalTests {
    static let attributesAnswer = #"{"Attributes":{"VisibilityTimeout":"45"}}"#

    static func accessKey(_ request: LocalHTTPStub.Request) -> String? {
        guard let authorization = request.headers["authorization"], let range = authorization.range(of: "Credential=") else { return nil }
        return authorization[range.upperBound...].split(separator: "/").first.map(String.init)
    }

    @Test func aRequestRefusedForExpiredCredentialsIsSentAgainWithRenewedOnes() throws {
        let stub = try LocalHTTPStub { request in
            Self.accessKey(request) == "ASIANEW"
                ? .init(body: Self.attributesAnswer)
                : .init(status: 400, body: #"{"__type":"com.amazon.coral.service#ExpiredTokenException","message":"The security token included in the request is expired"}"#)
        }
        defer { stub.stop() }
        let fetches = Mutex(0)
        let provider = AWSCredentialsProvider(
            source: .container(url: "http://unused", authorizationToken: nil, authorizationTokenFile: nil), logger: Logger(label: "test"),
            minimumRefetchInterval: 0,
            fetch: {
                let count = fetches.withLock { $0 += 1; return $0 }
                return ExpiringCredentials(AWSCredentials(accessKeyId: count == 1 ? "ASIAOLD" : "ASIANEW", secretAccessKey: "s", sessionToken: "t"))
            }
        )
        let client = SQSClient(queueURL: stub.url + "/q", region: "us-east-1", credentials: provider, endpoint: stub.url)
        #expect(try client.queueAttributes()["VisibilityTimeout"] == "45")
        #expect(stub.requests.map(Self.accessKey) == ["ASIAOLD", "ASIANEW"])
        #expect(stub.requests.last?.headers["x-amz-security-token"] == "t")
        // Later requests sign with the new ones at once.
        #expect(try client.queueAttributes()["VisibilityTimeout"] == "45")
        #expect(stub.requests.count == 3 && fetches.withLock { $0 } == 2)
    }

    @Test func credentialsThatCannotChangeAreRefusedOnce() throws {
        let stub = try LocalHTTPStub { _ in
            .init(status: 400, body: #"{"__type":"com.amazon.coral.service#ExpiredTokenException","message":"expired"}"#)
        }
        defer { stub.stop() }
        let client = SQSClient(queueURL: stub.url + "/q", region: "us-east-1", credentials: AWSCredentials(accessKeyId: "AKIA", secretAccessKey: "s"), endpoint: stub.url)
        do {
            _ = try client.queueAttributes()
            Issue.record("accepted")
        } catch {
            #expect(error.code == "ExpiredTokenException" && error.isAuthentication && !error.isTransient)
        }
        #expect(stub.requests.count == 1)
    }

    @Test func aRequestRefusedAsSignedAtTheWrongTimeIsSignedAgainAtSQSTime() throws {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let amzFormatter = DateFormatter()
        amzFormatter.locale = Locale(identifier: "en_US_POSIX")
        amzFormatter.timeZone = TimeZone(identifier: "GMT")
        amzFormatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let sendDate = Mutex(true)
        let stub = try LocalHTTPStub { request in
            // As SQS does: a signature more than 5 minutes away from the server's time is refused.
            let signed = request.headers["x-amz-date"].flatMap { amzFormatter.date(from: $0) } ?? .distantPast
            let now = Date()
            if abs(signed.timeIntervalSince(now)) > 300 {
                return .init(status: 400, headers: sendDate.withLock { $0 } ? [("Date", formatter.string(from: now))] : [],
                             body: #"{"__type":"com.amazon.coral.service#InvalidSignatureException","message":"Signature expired: 20261207T120000Z is now earlier than 20261207T125500Z (20261207T130000Z - 5 min.)"}"#)
            }
            return .init(body: Self.attributesAnswer)
        }
        defer { stub.stop() }
        let provider = AWSCredentialsProvider.fixed(AWSCredentials(accessKeyId: "AKIA", secretAccessKey: "s"))
        // This machine's clock is an hour behind.
        let client = SQSClient(queueURL: stub.url + "/q", region: "us-east-1", credentials: provider, endpoint: stub.url, now: { Date() - 3600 })
        #expect(try client.queueAttributes()["VisibilityTimeout"] == "45")
        #expect(stub.requests.count == 2)
        #expect(abs(provider.clockOffset - 3600) < 5)
        // The offset is kept: the next request is signed right the first time.
        #expect(try client.queueAttributes()["VisibilityTimeout"] == "45")
        #expect(stub.requests.count == 3)

        // Without the server's Date there is nothing to correct by: the refusal stands, as an authentication error.
        sendDate.withLock { $0 = false }
        let lost = SQSClient(queueURL: stub.url + "/q", region: "us-east-1", credentials: .fixed(AWSCredentials(accessKeyId: "AKIA", secretAccessKey: "s")),
                             endpoint: stub.url, now: { Date() - 3600 })
        do {
            _ = try lost.queueAttributes()
            Issue.record("accepted")
        } catch {
            #expect(error.isClockSkew && error.isAuthentication)
        }
        #expect(stub.requests.count == 4)
    }
}
