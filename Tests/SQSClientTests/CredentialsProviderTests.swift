import AWSSigV4
import CRMTestSupport
import Foundation
import Logging
import SQSClient
import Synchronization
import Testing

@Suite("AWS credentials: where they come from")
struct CredentialsSourceTests {
    static let noInstanceMetadata = ["AWS_EC2_METADATA_DISABLED": "true", "HOME": "/nonexistent"]

    @Test func givenCredentialsComeFirst() throws {
        let given = AWSCredentials(accessKeyId: "GIVEN", secretAccessKey: "s")
        let source = try AWSCredentialsProvider.findSource(given: given, profile: nil, environment: ["AWS_ACCESS_KEY_ID": "ENV", "AWS_SECRET_ACCESS_KEY": "e"])
        #expect(source == .configuration(given))
    }

    @Test func thenTheEnvironment() throws {
        let source = try AWSCredentialsProvider.findSource(given: nil, profile: nil, environment: [
            "AWS_ACCESS_KEY_ID": "ENV", "AWS_SECRET_ACCESS_KEY": "e", "AWS_SESSION_TOKEN": "tok",
        ])
        #expect(source == .environment(AWSCredentials(accessKeyId: "ENV", secretAccessKey: "e", sessionToken: "tok")))
    }

    @Test func thenTheSharedFileWithItsProfile() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/credentials"
        try """
            # comment
            [default]
            aws_access_key_id = DEFAULTKEY
            aws_secret_access_key = defaultsecret

            [crm]
            aws_access_key_id=CRMKEY
            aws_secret_access_key=crmsecret
            aws_session_token = crmtoken
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let environment = Self.noInstanceMetadata.merging(["AWS_SHARED_CREDENTIALS_FILE": file]) { $1 }
        #expect(try AWSCredentialsProvider.resolve(given: nil, profile: nil, environment: environment).credentials().accessKeyId == "DEFAULTKEY")
        #expect(try AWSCredentialsProvider.resolve(given: nil, profile: nil, environment: environment.merging(["AWS_PROFILE": "crm"]) { $1 }).credentials()
            == AWSCredentials(accessKeyId: "CRMKEY", secretAccessKey: "crmsecret", sessionToken: "crmtoken"))
        #expect(try AWSCredentialsProvider.findSource(given: nil, profile: "crm", environment: environment) == .sharedFile(path: file, profile: "crm"))
        // A profile asked for by name must be there; the default one may be missing (then the next places are tried).
        #expect(throws: AWSCredentialsError.self) { try AWSCredentialsProvider.findSource(given: nil, profile: "nope", environment: environment) }
        try "[other]\naws_access_key_id = X\naws_secret_access_key = y\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try AWSCredentialsProvider.findSource(given: nil, profile: nil, environment: environment.merging(["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc"]) { $1 })
            == .container(url: "http://169.254.170.2/v2/credentials/abc", authorizationToken: nil, authorizationTokenFile: nil))
    }

    @Test func nothingAnywhereIsAClearError() throws {
        do {
            _ = try AWSCredentialsProvider.findSource(given: nil, profile: nil, environment: Self.noInstanceMetadata)
            Issue.record("found credentials")
        } catch {
            #expect(error.description.contains("no AWS credentials"))
            #expect(error.description.contains("AWS_EC2_METADATA_DISABLED"))
        }
        // Without AWS_EC2_METADATA_DISABLED the instance metadata service is the last place looked at.
        #expect(try AWSCredentialsProvider.findSource(given: nil, profile: nil, environment: ["HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9/"])
            == .instanceMetadata(endpoint: "http://127.0.0.1:9"))
    }

    @Test func theContainerEndpointWithItsTokenFile() throws {
        let stub = try LocalHTTPStub { request in
            guard request.path == "/creds", request.headers["authorization"] == "rotating-token" else { return .init(status: 401, body: "no") }
            return .init(body: #"{"AccessKeyId":"ASIACONTAINER","SecretAccessKey":"s3cret","Token":"session","Expiration":"2030-01-02T03:04:05Z"}"#)
        }
        defer { stub.stop() }
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try "rotating-token\n".write(toFile: folder + "/token", atomically: true, encoding: .utf8)
        let provider = try AWSCredentialsProvider.resolve(given: nil, profile: nil, environment: Self.noInstanceMetadata.merging([
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": stub.url + "/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": folder + "/token",
        ]) { $1 })
        #expect(try provider.credentials() == AWSCredentials(accessKeyId: "ASIACONTAINER", secretAccessKey: "s3cret", sessionToken: "session"))
        #expect(stub.requests.count == 1)
        // A wrong token is an error that says who answered what.
        try "old-token".write(toFile: folder + "/token", atomically: true, encoding: .utf8)
        let refusal = #expect(throws: AWSCredentialsError.self) {
            try AWSCredentialsProvider.fetch(from: provider.source)
        }
        #expect(refusal?.description.contains("HTTP 401") == true)
    }

    @Test(arguments: [
        ("http://example.com/creds", false), ("https://example.com/creds", true),
        ("http://127.0.0.1:51679/creds", true), ("http://127.1.2.3/creds", true), ("http://localhost:8080/creds", true),
        ("http://[::1]:8080/creds", true), ("http://169.254.170.23/v1/credentials", true), ("http://[fd00:ec2::23]/v1/credentials", true),
        // Names that only look local could resolve anywhere.
        ("http://127.attacker.example/creds", false), ("http://127.0.0.1.nip.io/creds", false), ("http://169.254.170.2.example.org/", false),
    ])
    func aFullURIInClearTextMustStayOnThisMachine(url: String, accepted: Bool) {
        let found = Result { () throws(AWSCredentialsError) in
            try AWSCredentialsProvider.findSource(given: nil, profile: nil, environment: Self.noInstanceMetadata.merging(["AWS_CONTAINER_CREDENTIALS_FULL_URI": url]) { $1 })
        }
        if accepted {
            #expect(throws: Never.self) { try found.get() }
        } else {
            #expect(throws: AWSCredentialsError.self) { try found.get() }
        }
    }

    static let webIdentity = [
        "HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9",
        "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token", "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/crm",
    ]

    @Test func aWebIdentityComesAfterTheEnvironmentAndGoesToTheSourcesRegion() throws {
        let found = try AWSCredentialsProvider.findSource(given: nil, profile: nil, region: "eu-west-1", environment: Self.webIdentity.merging([
            "AWS_ROLE_SESSION_NAME": "crm-pod-1", "AWS_REGION": "us-east-2",
        ]) { $1 })
        #expect(found == .webIdentity(
            roleArn: "arn:aws:iam::123456789012:role/crm", tokenFile: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
            sessionName: "crm-pod-1", endpoint: "https://sts.eu-west-1.amazonaws.com"
        ))
        // Keys in the environment win, as in the AWS SDKs.
        let keys = ["AWS_ACCESS_KEY_ID": "ENV", "AWS_SECRET_ACCESS_KEY": "e"]
        #expect(try AWSCredentialsProvider.findSource(given: nil, profile: nil, environment: Self.webIdentity.merging(keys) { $1 })
            == .environment(AWSCredentials(accessKeyId: "ENV", secretAccessKey: "e")))
        // Without a region of the source's: AWS_REGION, then the global endpoint; AWS_ENDPOINT_URL_STS moves it.
        func endpoint(_ region: String?, _ extra: [String: String]) throws -> String? {
            guard case let .webIdentity(_, _, name, endpoint) = try AWSCredentialsProvider.findSource(
                given: nil, profile: nil, region: region, environment: Self.webIdentity.merging(extra) { $1 }
            ) else { return nil }
            #expect(name.hasPrefix("crm-ingest-"))
            return endpoint
        }
        #expect(try endpoint(nil, ["AWS_REGION": "us-east-2"]) == "https://sts.us-east-2.amazonaws.com")
        #expect(try endpoint(nil, [:]) == "https://sts.amazonaws.com")
        #expect(try endpoint("cn-north-1", [:]) == "https://sts.cn-north-1.amazonaws.com.cn")
        #expect(try endpoint("us-iso-east-1", [:]) == "https://sts.us-iso-east-1.c2s.ic.gov")
        #expect(try endpoint("eu-west-1", ["AWS_ENDPOINT_URL_STS": "http://127.0.0.1:4566/"]) == "http://127.0.0.1:4566")
        // The general AWS_ENDPOINT_URL is often meant for another service: the token does not go there.
        #expect(try endpoint("eu-west-1", ["AWS_ENDPOINT_URL": "https://s3.example.internal"]) == "https://sts.eu-west-1.amazonaws.com")
        // A named profile is the operator's choice of identity (botocore, aws-sdk-go-v2): the token is not used.
        for named in [(profile: "crm", environment: [String: String]()), (profile: nil, environment: ["AWS_PROFILE": "crm"])] {
            let refusal = #expect(throws: AWSCredentialsError.self) {
                try AWSCredentialsProvider.findSource(given: nil, profile: named.profile, environment: Self.webIdentity.merging(named.environment) { $1 })
            }
            #expect(refusal?.description.contains("profile [crm] was asked for") == true)
        }
        // AWS_ROLE_ARN alone is ignored, as the SDKs do.
        #expect(try AWSCredentialsProvider.findSource(given: nil, profile: nil, environment: Self.webIdentity.merging(["AWS_WEB_IDENTITY_TOKEN_FILE": ""]) { $1 })
            == .instanceMetadata(endpoint: "http://127.0.0.1:9"))
        #expect(AWSEndpoints.url(service: "sqs", region: "cn-northwest-1") == "https://sqs.cn-northwest-1.amazonaws.com.cn")
    }

    @Test(arguments: [
        (["AWS_ROLE_ARN": ""], "AWS_WEB_IDENTITY_TOKEN_FILE is set without AWS_ROLE_ARN"),
        (["AWS_ROLE_SESSION_NAME": "crm pod"], "AWS_ROLE_SESSION_NAME must be 2 to 64"),
        // The token is a bearer secret: no plain http to another machine.
        (["AWS_ENDPOINT_URL_STS": "http://sts.example.org"], "AWS_ENDPOINT_URL_STS must be https"),
    ])
    func aHalfDoneWebIdentityIsAnErrorNotAnotherIdentity(change: [String: String], error: String) {
        let refusal = #expect(throws: AWSCredentialsError.self) {
            try AWSCredentialsProvider.findSource(given: nil, profile: nil, environment: Self.webIdentity.merging(change) { $1 })
        }
        #expect(refusal?.description.contains(error) == true, "\(refusal?.description ?? "")")
    }

    @Test func aWebIdentityTokenIsExchangedAtSTSAndReadAgainAtEveryFetch() throws {
        let stub = try LocalHTTPStub { request in
            let form = Dictionary(String(decoding: request.body, as: UTF8.self).split(separator: "&").map {
                let pair = $0.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? "" }
                return (pair[0], pair.count > 1 ? pair[1] : "")
            }) { $1 }
            guard request.method == "POST", request.path == "/", request.headers["authorization"] == nil,
                request.headers["content-type"]?.hasPrefix("application/x-www-form-urlencoded") == true,
                form["Action"] == "AssumeRoleWithWebIdentity", form["Version"] == "2011-06-15",
                form["RoleArn"] == "arn:aws:iam::123456789012:role/crm", form["RoleSessionName"] == "crm-pod-1"
            else { return .init(status: 400, body: "unexpected request") }
            // An endpoint that is not STS, echoing the request (token included), with an error and with a success.
            if form["WebIdentityToken"] == "echo-400" { return .init(status: 400, body: String(decoding: request.body, as: UTF8.self)) }
            if form["WebIdentityToken"] == "echo-200" { return .init(body: String(decoding: request.body, as: UTF8.self)) }
            guard let token = form["WebIdentityToken"], token.hasPrefix("eyJ") else {
                return .init(status: 400, body: """
                    <ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>\
                    <Message>Token is not a JWT &amp; cannot be read</Message></Error><RequestId>r1</RequestId></ErrorResponse>
                    """)
            }
            return .init(body: """
                <AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
                  <AssumeRoleWithWebIdentityResult>
                    <SubjectFromWebIdentityToken>system:serviceaccount:crm:ingest</SubjectFromWebIdentityToken>
                    <Credentials>
                      <SessionToken>session/\(token.suffix(3))+&amp;=</SessionToken>
                      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG</SecretAccessKey>
                      <Expiration>2030-01-02T03:04:05.842194Z</Expiration>
                      <AccessKeyId>ASIAWEBIDENTITY</AccessKeyId>
                    </Credentials>
                  </AssumeRoleWithWebIdentityResult>
                </AssumeRoleWithWebIdentityResponse>
                """)
        }
        defer { stub.stop() }
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let tokenFile = folder + "/token"
        try "eyJ.first.one\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let provider = try AWSCredentialsProvider.resolve(given: nil, profile: nil, environment: Self.webIdentity.merging([
            "AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile, "AWS_ROLE_SESSION_NAME": "crm-pod-1", "AWS_ENDPOINT_URL_STS": stub.url,
        ]) { $1 })
        #expect(try provider.credentials() == AWSCredentials(accessKeyId: "ASIAWEBIDENTITY", secretAccessKey: "wJalrXUtnFEMI/K7MDENG", sessionToken: "session/one+&="))
        #expect(try AWSCredentialsProvider.fetch(from: provider.source).expiration == Date(timeIntervalSince1970: 1_893_553_445))
        // The kubelet rewrites the token: the next fetch sends the new one.
        try "eyJ.second.two".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        #expect(try AWSCredentialsProvider.fetch(from: provider.source).credentials.sessionToken == "session/two+&=")
        #expect(stub.requests.count == 3)
        // STS's refusal is told by its code and message.
        try "not-a-jwt".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let refusal = #expect(throws: AWSCredentialsError.self) { try AWSCredentialsProvider.fetch(from: provider.source) }
        #expect(refusal?.description.contains("HTTP 400: InvalidIdentityToken: Token is not a JWT & cannot be read") == true, "\(refusal?.description ?? "")")
        #expect(refusal?.description.contains("not-a-jwt") == false)
        // Whatever another endpoint answers is not repeated: it may hold the token.
        for echo in ["echo-400", "echo-200"] {
            try echo.write(toFile: tokenFile, atomically: true, encoding: .utf8)
            let error = #expect(throws: AWSCredentialsError.self) { try AWSCredentialsProvider.fetch(from: provider.source) }
            #expect(error?.description.contains("echo") == false, "\(error?.description ?? "")")
            #expect(error?.description.contains(echo == "echo-400" ? "that is not an STS error" : "has no <Credentials>") == true, "\(error?.description ?? "")")
        }
        try "".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let empty = #expect(throws: AWSCredentialsError.self) { try AWSCredentialsProvider.fetch(from: provider.source) }
        #expect(empty?.description.contains("the token file \(tokenFile) is empty") == true)
        #expect(stub.requests.count == 6)
    }

    @Test func anUnreachableInstanceMetadataServiceSaysWhatElseWasTried() throws {
        // Nothing listens on the discard port: the connection is refused at once.
        let refusal = #expect(throws: AWSCredentialsError.self) {
            try AWSCredentialsProvider.resolve(given: nil, profile: nil, environment: ["HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9"])
        }
        let text = refusal?.description ?? ""
        #expect(text.hasPrefix("no AWS credentials: tried the configuration, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"))
        #expect(text.contains("/nonexistent/.aws/credentials (no such file)") && text.contains("then the EC2 instance metadata service at http://127.0.0.1:9"))
    }

    @Test func theInstanceMetadataServiceWithASessionToken() throws {
        let stub = try LocalHTTPStub { request in
            switch (request.method, request.path) {
            case ("PUT", "/latest/api/token"):
                return request.headers["x-aws-ec2-metadata-token-ttl-seconds"] == nil ? .init(status: 400) : .init(body: "imds-token")
            case (_, _) where request.headers["x-aws-ec2-metadata-token"] != "imds-token":
                return .init(status: 401)
            case ("GET", "/latest/meta-data/iam/security-credentials/"):
                return .init(body: "crm-ingest-role\n")
            case ("GET", "/latest/meta-data/iam/security-credentials/crm-ingest-role"):
                return .init(body: #"{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAINSTANCE","SecretAccessKey":"i","Token":"t","Expiration":"2030-01-01T00:00:00Z"}"#)
            default:
                return .init(status: 404)
            }
        }
        defer { stub.stop() }
        let provider = try AWSCredentialsProvider.resolve(given: nil, profile: nil, environment: ["HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": stub.url])
        #expect(try provider.credentials() == AWSCredentials(accessKeyId: "ASIAINSTANCE", secretAccessKey: "i", sessionToken: "t"))
        #expect(stub.requests.map(\.method) == ["PUT", "GET", "GET"])
    }

    @Test func anInstanceWithoutARoleSaysSo() throws {
        let stub = try LocalHTTPStub { request in request.method == "PUT" ? .init(body: "tok") : .init(status: 200, body: "") }
        defer { stub.stop() }
        do {
            _ = try AWSCredentialsProvider.resolve(given: nil, profile: nil, environment: ["HOME": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": stub.url])
            Issue.record("found credentials")
        } catch {
            #expect(error.description.contains("no IAM role"))
        }
    }

    @Test func secretsNeverPrint() {
        let credentials = AWSCredentials(accessKeyId: "AKID", secretAccessKey: "very-secret", sessionToken: "token-secret")
        #expect(!"\(credentials)".contains("very-secret") && !"\(credentials)".contains("token-secret"))
        #expect(!String(reflecting: credentials).contains("very-secret"))
    }
}

/// The provider's renewals, on a clock the tests move.
@Suite("AWS credentials: renewal")
struct CredentialsRenewalTests {
    final class Clock: Sendable {
        let time = Mutex(Date(timeIntervalSince1970: 2_000_000_000))
        var now: Date { time.withLock { $0 } }
        func advance(_ seconds: TimeInterval) { time.withLock { $0 += seconds } }
    }

    /// A fetch that hands out `KEY1`, `KEY2`, ... (each valid for an hour from the clock's time), or fails while `failing`.
    final class Issuer: Sendable {
        let clock: Clock
        let state = Mutex((fetches: 0, failing: false))
        init(clock: Clock) { self.clock = clock }
        var fetches: Int { state.withLock { $0.fetches } }
        func fail(_ failing: Bool) { state.withLock { $0.failing = failing } }
        func fetch() throws -> ExpiringCredentials {
            let (count, failing) = state.withLock { state in
                if !state.failing { state.fetches += 1 }
                return (state.fetches, state.failing)
            }
            if failing { throw AWSCredentialsError("endpoint down") }
            return ExpiringCredentials(AWSCredentials(accessKeyId: "KEY\(count)", secretAccessKey: "s", sessionToken: "t"), expiration: clock.now + 3600)
        }
    }

    static func provider(_ clock: Clock, _ issuer: Issuer) -> AWSCredentialsProvider {
        AWSCredentialsProvider(source: .container(url: "http://unused", authorizationToken: nil, authorizationTokenFile: nil),
                               logger: Logger(label: "test"), fetch: { try issuer.fetch() }, now: { clock.now })
    }

    @Test func temporaryCredentialsAreRenewedFiveMinutesBeforeTheyExpire() throws {
        let clock = Clock(), issuer = Issuer(clock: clock)
        let provider = Self.provider(clock, issuer)
        #expect(try provider.credentials().accessKeyId == "KEY1")
        clock.advance(3600 - 301)
        #expect(try provider.credentials().accessKeyId == "KEY1")
        #expect(issuer.fetches == 1)
        clock.advance(2)
        #expect(try provider.credentials().accessKeyId == "KEY2")
        #expect(try provider.credentials().accessKeyId == "KEY2")
        #expect(issuer.fetches == 2)
    }

    @Test func aFailedRenewalKeepsCredentialsThatStillWork() throws {
        let clock = Clock(), issuer = Issuer(clock: clock)
        let provider = Self.provider(clock, issuer)
        _ = try provider.credentials()
        issuer.fail(true)
        clock.advance(3600 - 200)
        #expect(try provider.credentials().accessKeyId == "KEY1")
        clock.advance(201)
        #expect(throws: AWSCredentialsError.self) { try provider.credentials() }
        // Two failures in a row: the next fetch waits twice the interval; until then, the failure stands.
        issuer.fail(false)
        clock.advance(5)
        #expect(throws: AWSCredentialsError.self) { try provider.credentials() }
        clock.advance(5)
        #expect(try provider.credentials().accessKeyId == "KEY2")
    }

    /// While one thread fetches (slowly), the others go on with the current credentials instead of queueing on the
    /// lock; they wait only when there are none.
    @Test func aSlowRenewalHoldsUpOnlyTheThreadThatFetches() throws {
        let clock = Clock()
        let fetches = Mutex(0)
        let provider = AWSCredentialsProvider(
            source: .container(url: "http://unused", authorizationToken: nil, authorizationTokenFile: nil), logger: Logger(label: "test"),
            fetch: {
                let count = fetches.withLock { $0 += 1; return $0 }
                if count > 1 { Thread.sleep(forTimeInterval: 1) }
                return ExpiringCredentials(AWSCredentials(accessKeyId: "KEY\(count)", secretAccessKey: "s"), expiration: clock.now + 3600)
            },
            now: { clock.now }
        )
        #expect(try provider.credentials().accessKeyId == "KEY1")
        clock.advance(3600 - 60) // due for renewal, still valid
        let results = Mutex<[(String, Duration)]>([])
        onThreads(8) {
            let started = ContinuousClock.now
            let key = (try? provider.credentials().accessKeyId) ?? "error"
            results.withLock { $0.append((key, ContinuousClock.now - started)) }
        }
        let seen = results.withLock { $0 }
        #expect(fetches.withLock { $0 } == 2, "one renewal for eight threads")
        #expect(seen.filter { $0.0 == "KEY2" }.count == 1)
        #expect(seen.filter { $0.0 == "KEY1" && $0.1 < .milliseconds(500) }.count == 7)
        #expect(try provider.credentials().accessKeyId == "KEY2")
    }

    /// Without credentials to go on with, threads wait for the one fetch, and share its failure.
    @Test func withoutCredentialsThreadsShareOneFetch() throws {
        let fetches = Mutex(0)
        let provider = AWSCredentialsProvider(
            source: .container(url: "http://unused", authorizationToken: nil, authorizationTokenFile: nil), logger: Logger(label: "test"),
            fetch: {
                fetches.withLock { $0 += 1 }
                Thread.sleep(forTimeInterval: 0.3)
                throw AWSCredentialsError("endpoint down")
            }
        )
        let failures = Mutex(0)
        onThreads(6) {
            if (try? provider.credentials()) == nil { failures.withLock { $0 += 1 } }
        }
        #expect(failures.withLock { $0 } == 6)
        #expect(fetches.withLock { $0 } == 1)
    }

    @Test func refusedCredentialsAreFetchedAgainAtMostEveryFewSeconds() throws {
        let clock = Clock(), issuer = Issuer(clock: clock)
        let provider = Self.provider(clock, issuer)
        let first = try provider.credentials()
        clock.advance(10)
        #expect(provider.refresh(after: first))
        #expect(try provider.credentials().accessKeyId == "KEY2")
        // Another thread refused with the old ones: the new ones are already there, nothing is fetched.
        #expect(provider.refresh(after: first))
        #expect(issuer.fetches == 2)
        // Refused again at once: no fetch within the interval.
        #expect(!provider.refresh(after: try provider.credentials()))
        #expect(issuer.fetches == 2)
        clock.advance(5)
        #expect(provider.refresh(after: try provider.credentials()))
        #expect(issuer.fetches == 3)
    }

    @Test func credentialsThatCannotChangeAreNeverFetchedAgain() throws {
        let fixed = AWSCredentialsProvider.fixed(AWSCredentials(accessKeyId: "K", secretAccessKey: "s"))
        #expect(!fixed.refresh(after: try fixed.credentials()))
    }

    @Test func aRewrittenCredentialsFileIsReadAgain() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/credentials"
        try "[default]\naws_access_key_id = FIRST\naws_secret_access_key = a\n".write(toFile: file, atomically: true, encoding: .utf8)
        let clock = Clock()
        let provider = AWSCredentialsProvider(source: .sharedFile(path: file, profile: "default"), logger: Logger(label: "test"), now: { clock.now })
        #expect(try provider.credentials().accessKeyId == "FIRST")
        clock.advance(11)
        #expect(try provider.credentials().accessKeyId == "FIRST")
        try "[default]\naws_access_key_id = SECONDKEY\naws_secret_access_key = bb\naws_session_token = t\n".write(toFile: file, atomically: true, encoding: .utf8)
        clock.advance(5)
        #expect(try provider.credentials().accessKeyId == "FIRST", "looked at no more than every 10 s")
        clock.advance(6)
        #expect(try provider.credentials() == AWSCredentials(accessKeyId: "SECONDKEY", secretAccessKey: "bb", sessionToken: "t"))
    }
}

/// Runs `body` on `count` threads of its own at once (not a pool, which may run them one after another on a
/// 2-core machine), and waits for all of them.
func onThreads(_ count: Int, _ body: @escaping @Sendable () -> Void) {
    let done = DispatchSemaphore(value: 0)
    let start = DispatchSemaphore(value: 0)
    for _ in 0..<count {
        Thread {
            start.wait()
            body()
            done.signal()
        }.start()
    }
    for _ in 0..<count { start.signal() }
    for _ in 0..<count { done.wait() }
}

func temporaryFolder() throws -> String {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-aws-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    return folder
}
