import AWSSigV4
import CRMCore
import CurlHTTP
import SQSClient
import Foundation

/// A real local SQS for the tests: moto_server with authentication enforced, the one `make test` started
/// (CRM_TEST_MOTO_DIR) or one this process starts on first use with scripts/moto-server.sh.
public final class MotoTestServer: @unchecked Sendable {
    // Immutable after init.
    public let directory: String
    public let url: String
    public let credentials: AWSCredentials
    public let region: String
    /// The moto_server process (to freeze it with SIGSTOP in a fault test).
    public let pid: Int32
    public static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let script = repositoryRoot.appendingPathComponent("scripts/moto-server.sh").path

    private static let lock = NSLock()
    nonisolated(unsafe) private static var instance: Result<MotoTestServer, any Error>?
    nonisolated(unsafe) private static var ownedDirectory: String?

    public static func shared() throws -> MotoTestServer {
        try lock.withLock {
            if instance == nil { instance = Result { try MotoTestServer() } }
            return try instance!.get()
        }
    }

    struct ServerError: Error, CustomStringConvertible {
        var description: String
    }

    private convenience init() throws {
        if let dir = ProcessInfo.processInfo.environment["CRM_TEST_MOTO_DIR"] {
            try self.init(directory: dir)
        } else {
            let directory = try Self.start()
            Self.ownedDirectory = directory
            atexit {
                guard let dir = MotoTestServer.ownedDirectory else { return }
                _ = system("bash '\(MotoTestServer.script)' stop '\(dir)' >/dev/null 2>&1; rm -rf '\(dir)' '\(dir).start.log'")
            }
            try self.init(directory: directory)
        }
    }

    /// Starts a moto_server with scripts/moto-server.sh; its state directory.
    private static func start() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("crm-moto-\(UUID().uuidString.prefix(8))").path
        // system(3), output to a file: the server runs on in the background.
        let status = system("bash '\(Self.script)' start '\(directory)' </dev/null >'\(directory).start.log' 2>&1")
        guard status == 0 else {
            throw ServerError(description: "moto start failed: " + ((try? String(contentsOfFile: directory + ".start.log", encoding: .utf8)) ?? ""))
        }
        return directory
    }

    /// A moto_server of the caller's own, for a test that freezes or stops it (the shared one serves other tests
    /// at the same time). The caller ends it with `stop()`.
    public static func startOwn() throws -> MotoTestServer {
        try MotoTestServer(directory: try start())
    }

    /// Stops a server from `startOwn()` and removes its state directory.
    public func stop() {
        _ = system("bash '\(Self.script)' stop '\(directory)' >/dev/null 2>&1; rm -rf '\(directory)' '\(directory).start.log'")
    }

    private init(directory: String) throws {
        self.directory = directory
        var env: [String: String] = [:]
        for line in try String(contentsOfFile: directory + "/env", encoding: .utf8).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            env[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        guard let url = env["MOTO_URL"], let key = env["AWS_ACCESS_KEY_ID"], let secret = env["AWS_SECRET_ACCESS_KEY"],
              let pid = env["MOTO_PID"].flatMap(Int32.init) else {
            throw ServerError(description: "incomplete env in \(directory)")
        }
        self.url = url
        self.pid = pid
        credentials = AWSCredentials(accessKeyId: key, secretAccessKey: secret)
        region = env["AWS_REGION"] ?? "us-east-1"
    }
}

extension MotoTestServer {
    /// Creates a queue (with its attributes, e.g. a RedrivePolicy) and returns its URL.
    public func createQueue(_ name: String, attributes: [String: String] = [:]) throws -> String {
        let admin = SQSClient(queueURL: "", region: region, credentials: credentials, endpoint: url)
        var body: [(key: String, value: JSONValue)] = [("QueueName", .string(name))]
        if !attributes.isEmpty {
            body.append(("Attributes", .object(attributes.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) })))
        }
        guard case let .string(queueURL)? = try admin.call("CreateQueue", .object(body), timeout: .seconds(10))["QueueUrl"] else {
            throw SQSError(code: "NoQueueUrl", message: "CreateQueue answered without a QueueUrl", httpStatus: 200)
        }
        return queueURL
    }
}

extension MotoTestServer {
    /// A new IAM user allowed to use SQS and SNS (IAM `CreateUser`, `PutUserPolicy`), for a test that rotates
    /// its keys: AWS allows two access keys per user.
    public func createUser(_ name: String) throws {
        _ = try iam("Action=CreateUser&UserName=\(name)&Version=2010-05-08")
        _ = try iam("Action=PutUserPolicy&UserName=\(name)&PolicyName=sqs-sns&PolicyDocument=\(Self.sqsAndSNSPolicy)&Version=2010-05-08")
    }

    /// A new IAM role allowed to use SQS and SNS (IAM `CreateRole`, `PutRolePolicy`); its ARN.
    public func createRole(_ name: String) throws -> String {
        let trust = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"oidc"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#
        let answer = try iam("Action=CreateRole&RoleName=\(name)&AssumeRolePolicyDocument=\(AWSQueryForm.encode(trust))&Version=2010-05-08")
        guard let arn = Self.element("Arn", in: answer) else { throw ServerError(description: "CreateRole answered without an ARN: \(answer.prefix(300))") }
        _ = try iam("Action=PutRolePolicy&RoleName=\(name)&PolicyName=sqs-sns&PolicyDocument=\(Self.sqsAndSNSPolicy)&Version=2010-05-08")
        return arn
    }

    /// STS `AssumeRoleWithWebIdentity` as AWS answers it, the XML text. moto checks a signature even on this call,
    /// which AWS takes unsigned (the token proves who calls): a test's stand-in STS passes the daemon's unsigned
    /// request on through here, signed with the server's key.
    public func assumeRoleWithWebIdentity(form: [UInt8]) throws -> (status: Int, body: String) {
        try call("sts", form: form)
    }

    /// `{"Statement": allow sqs:* and sns:*}`, encoded for a query-API form.
    private static var sqsAndSNSPolicy: String {
        AWSQueryForm.encode(#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["sqs:*","sns:*"],"Resource":"*"}]}"#)
    }

    /// A new access key of `user` (IAM `CreateAccessKey`), as a rotation would make one.
    public func createAccessKey(user: String) throws -> AWSCredentials {
        let answer = try iam("Action=CreateAccessKey&UserName=\(user)&Version=2010-05-08")
        guard let key = Self.element("AccessKeyId", in: answer), let secret = Self.element("SecretAccessKey", in: answer) else {
            throw ServerError(description: "CreateAccessKey answered without a key: \(answer.prefix(300))")
        }
        return AWSCredentials(accessKeyId: key, secretAccessKey: secret)
    }

    /// Deletes an access key of `user` (IAM `DeleteAccessKey`): requests signed with it are refused from now on.
    public func deleteAccessKey(_ accessKeyId: String, user: String) throws {
        _ = try iam("Action=DeleteAccessKey&UserName=\(user)&AccessKeyId=\(accessKeyId)&Version=2010-05-08")
    }

    /// One IAM query-API call signed with the server's key; the answer's XML text.
    private func iam(_ form: String) throws -> String {
        let (status, text) = try call("iam", form: Array(form.utf8))
        guard status == 200 else { throw ServerError(description: "IAM answered HTTP \(status): \(text.prefix(300))") }
        return text
    }

    /// One query-API call of `service` signed with the server's key: the status and the answer's text.
    private func call(_ service: String, form body: [UInt8]) throws -> (status: Int, body: String) {
        let endpoint = URL(string: url + "/")!
        let signer = AWSSigner(credentials: credentials, name: service, region: region)
        let headers = try signer.signHeaders(
            method: "POST", url: endpoint, headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
            body: .data(Data(body)), date: Date()
        )
        let response = try CurlHTTPClient().send(
            HTTPRequest(method: "POST", url: endpoint.absoluteString, headers: headers.map { ($0.name, $0.value) }, body: body), timeout: .seconds(10)
        )
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    private static func element(_ name: String, in text: String) -> String? {
        guard let start = text.range(of: "<\(name)>"), let end = text.range(of: "</\(name)>", range: start.upperBound..<text.endIndex) else { return nil }
        return String(text[start.upperBound..<end.lowerBound])
    }
}
