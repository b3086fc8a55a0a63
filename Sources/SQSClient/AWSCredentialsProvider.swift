#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AWSSigV4
import CRMCore
import CurlHTTP
import Foundation
import Logging

/// Credentials, and when they stop working.
public struct ExpiringCredentials: Sendable, Equatable {
    public var credentials: AWSCredentials
    /// nil: no known end (an IAM user's keys, or a credentials file that does not say).
    public var expiration: Date?

    public init(_ credentials: AWSCredentials, expiration: Date? = nil) {
        self.credentials = credentials
        self.expiration = expiration
    }
}

/// Why no credentials could be had, in words an operator can act on.
public struct AWSCredentialsError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}

/// Where a source's AWS credentials come from: chosen once, in the order the AWS tools look.
public enum AWSCredentialsSource: Sendable, Equatable, CustomStringConvertible {
    /// The source's `credentials` in the configuration file.
    case configuration(AWSCredentials)
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    case environment(AWSCredentials)
    /// A profile of the shared credentials file, read again when a tool rewrites it (`aws configure`, a vault agent).
    case sharedFile(path: String, profile: String)
    /// The container credentials endpoint of ECS tasks and EKS Pod Identity; the authorization token, when there
    /// is one, is the token file's text (read at every fetch: the agent rotates it) or the token itself.
    case container(url: String, authorizationToken: String?, authorizationTokenFile: String?)
    /// The EC2 instance metadata service (IMDSv2): the credentials of the instance profile's role.
    case instanceMetadata(endpoint: String)
    /// A web identity token (EKS IRSA: `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`) exchanged for the role's
    /// temporary credentials with STS `AssumeRoleWithWebIdentity` at `endpoint`. The token file is read at every
    /// fetch: the kubelet rewrites it before the token expires.
    case webIdentity(roleArn: String, tokenFile: String, sessionName: String, endpoint: String)

    public var description: String {
        switch self {
        case .configuration: "the configuration file"
        case .environment: "the environment (AWS_ACCESS_KEY_ID)"
        case let .sharedFile(path, profile): "profile [\(profile)] of \(path)"
        case let .container(url, _, _): "the container credentials endpoint \(url)"
        case let .instanceMetadata(endpoint): "the EC2 instance metadata service at \(endpoint)"
        case let .webIdentity(roleArn, tokenFile, _, endpoint): "web identity (role \(roleArn), token \(tokenFile), STS \(endpoint))"
        }
    }

    /// Whether fetching again can give other credentials.
    var canChange: Bool {
        switch self {
        case .configuration, .environment: false
        case .sharedFile, .container, .instanceMetadata, .webIdentity: true
        }
    }
}

/// The credentials of one source, kept fresh: temporary credentials are fetched again five minutes before they
/// expire, a rewritten credentials file is read again, and credentials SQS refuses are fetched again once
/// (`refresh(after:)`) before the refusal counts. Also keeps the difference between SQS's clock and ours, learnt
/// from a request refused as signed at the wrong time (expirations are SQS's time too).
///
/// Shared by the threads of one source. One thread fetches at a time, without holding the lock: the others go on
/// with the current credentials while they have not expired, and wait for the fetch only when there are none.
/// A fetch may block (a few seconds at most), so these are called from the source's threads, never from Swift's
/// cooperative pool. Failed fetches are retried after `minimumRefetchInterval`, more slowly after each failure
/// (at most a minute apart).
public final class AWSCredentialsProvider: @unchecked Sendable {
    public let source: AWSCredentialsSource
    /// How long before their expiration credentials are fetched again.
    public static let refreshAhead: TimeInterval = 300
    /// The least time between two fetches that were not due (a refused request, a failed fetch).
    let minimumRefetchInterval: TimeInterval
    /// How often a credentials file's modification time is looked at.
    let fileCheckInterval: TimeInterval
    /// Throws `AWSCredentialsError` (a typed-throws closure stored in a property crashes Swift 6.3's IR generation).
    private let fetcher: @Sendable () throws -> ExpiringCredentials
    private let now: @Sendable () -> Date
    private let logger: Logger
    /// Guards `state`; signalled when a fetch ends.
    private let condition = NSCondition()
    private var state = State()

    private struct State {
        var current: ExpiringCredentials?
        var lastFetch: Date?
        /// The last fetch's error while it is the latest news (cleared by a success).
        var lastError: AWSCredentialsError?
        var failures = 0
        var fetching = false
        var fileStamp: FileStamp?
        var lastFileCheck: Date?
        var clockOffset: TimeInterval = 0
    }

    /// Credentials that never change (tests, tools given a key).
    public static func fixed(_ credentials: AWSCredentials) -> AWSCredentialsProvider {
        AWSCredentialsProvider(source: .configuration(credentials), logger: Logger(label: "crm-ingest.aws-credentials"))
    }

    /// - Parameters:
    ///   - fetch: how to get the credentials; nil: from `source`.
    ///   - now: the clock (tests move it).
    public init(
        source: AWSCredentialsSource, logger: Logger, minimumRefetchInterval: TimeInterval = 5, fileCheckInterval: TimeInterval = 10,
        fetch: (@Sendable () throws -> ExpiringCredentials)? = nil, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.source = source
        self.logger = logger
        self.minimumRefetchInterval = minimumRefetchInterval
        self.fileCheckInterval = fileCheckInterval
        self.now = now
        fetcher = fetch ?? { try Self.fetch(from: source) }
    }

    /// The access key id in use, for logs (no fetch).
    public var currentAccessKeyId: String? { condition.withLock { state.current?.credentials.accessKeyId } }

    /// The credentials to sign with now: fetched the first time, and again when they are about to expire or their
    /// file changed. While a due fetch runs or after it failed, credentials not yet expired are still used.
    public func credentials() throws(AWSCredentialsError) -> AWSCredentials {
        condition.lock()
        defer { condition.unlock() }
        while true {
            let now = serverNow()
            let usable = state.current.flatMap { $0.expiration.map { $0 > now } ?? true ? $0 : nil }
            if let usable, !isDue(usable, now: now) { return usable.credentials }
            if state.fetching {
                if let usable { return usable.credentials }
                condition.wait()
                continue
            }
            if usable == nil, let error = state.lastError, !retryAllowed(now) { throw error }
            switch fetchUnlocked(now: now) {
            case let .success(fresh):
                if let usable, usable.credentials != fresh.credentials { logger.info("AWS credentials renewed", metadata: metadata(fresh)) }
                return fresh.credentials
            case let .failure(error):
                guard let usable else { throw error }
                logger.warning("cannot renew AWS credentials, still using the current ones: \(error)", metadata: metadata(usable))
                return usable.credentials
            }
        }
    }

    /// Called when SQS refused `refused` as unknown, expired or wrongly signed: fetches again (at most once per
    /// `minimumRefetchInterval`). True when there are other credentials to try.
    public func refresh(after refused: AWSCredentials) -> Bool {
        guard source.canChange else { return false }
        condition.lock()
        defer { condition.unlock() }
        while state.fetching { condition.wait() }
        if let current = state.current, current.credentials != refused { return true }
        let now = serverNow()
        if let last = state.lastFetch, now.timeIntervalSince(last) < minimumRefetchInterval { return false }
        switch fetchUnlocked(now: now) {
        case let .success(fresh):
            guard fresh.credentials != refused else { return false }
            logger.info("AWS credentials renewed after SQS refused the previous ones", metadata: metadata(fresh))
            return true
        case let .failure(error):
            logger.warning("SQS refused our AWS credentials and fetching them again failed: \(error)", metadata: ["credentials_from": "\(source)"])
            return false
        }
    }

    /// SQS's clock minus ours, in seconds: added to the signing time.
    public var clockOffset: TimeInterval { condition.withLock { state.clockOffset } }

    /// Notes SQS's clock, read from the `Date` of an answer that refused a request as signed at the wrong time.
    public func noteServerClock(_ serverDate: Date, localDate: Date) {
        let offset = serverDate.timeIntervalSince(localDate)
        condition.withLock { state.clockOffset = offset }
        logger.warning("this machine's clock is off by \(Int(offset.rounded())) s from SQS's: signing with SQS's time (fix the clock: NTP)",
                       metadata: ["credentials_from": "\(source)"])
    }

    // MARK: Under the lock

    /// Our clock, corrected by what SQS told us of its own.
    private func serverNow() -> Date { now().addingTimeInterval(state.clockOffset) }

    /// Fetches with the lock released (held on entry and on return), as the only fetch under way.
    private func fetchUnlocked(now: Date) -> Result<ExpiringCredentials, AWSCredentialsError> {
        state.fetching = true
        state.lastFetch = now
        condition.unlock()
        let result: Result<ExpiringCredentials, AWSCredentialsError>
        do {
            result = .success(try fetcher())
        } catch let error as AWSCredentialsError {
            result = .failure(error)
        } catch {
            result = .failure(AWSCredentialsError("\(source): \(error)"))
        }
        let stamp: FileStamp? = if case let .sharedFile(path, _) = source { FileStamp(path: path) } else { nil }
        condition.lock()
        state.fetching = false
        condition.broadcast()
        switch result {
        case let .success(fresh):
            state.current = fresh
            state.lastError = nil
            state.failures = 0
            if let stamp {
                state.fileStamp = stamp
                state.lastFileCheck = now
            }
        case let .failure(error):
            state.lastError = error
            state.failures += 1
        }
        return result
    }

    /// Whether a fetch may run now: `minimumRefetchInterval` after the last one, longer after repeated failures.
    private func retryAllowed(_ now: Date) -> Bool {
        guard let last = state.lastFetch else { return true }
        let interval = min(minimumRefetchInterval * Double(max(1, state.failures)), 60)
        return now.timeIntervalSince(last) >= interval
    }

    private func isDue(_ current: ExpiringCredentials, now: Date) -> Bool {
        if let expiration = current.expiration, now >= expiration.addingTimeInterval(-Self.refreshAhead), retryAllowed(now) { return true }
        guard case let .sharedFile(path, _) = source else { return false }
        if let lastCheck = state.lastFileCheck, now.timeIntervalSince(lastCheck) < fileCheckInterval { return false }
        state.lastFileCheck = now
        return FileStamp(path: path) != state.fileStamp
    }

    private func metadata(_ credentials: ExpiringCredentials) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["credentials_from": "\(source)", "access_key": "\(LogRedaction.accessKey(credentials.credentials.accessKeyId))"]
        if let expiration = credentials.expiration { metadata["expires"] = "\(expiration.formatted(.iso8601))" }
        return metadata
    }
}

/// A file's modification time and size, to notice it was rewritten.
struct FileStamp: Equatable {
    var modified: Date?
    var size: Int?

    init(path: String) {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        modified = attributes?[.modificationDate] as? Date
        size = (attributes?[.size] as? NSNumber)?.intValue
    }
}

// MARK: Finding the source

extension AWSCredentialsProvider {
    /// Finds where credentials come from, the way the AWS tools do: the configuration's; the environment's
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`); a profile of the shared credentials file
    /// (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`; `profile`, `AWS_PROFILE` or `default`); the
    /// container endpoint (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `_FULL_URI`, with
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or `_TOKEN`); then the EC2 instance metadata service, unless
    /// `AWS_EC2_METADATA_DISABLED=true` (`AWS_EC2_METADATA_SERVICE_ENDPOINT` moves it). A web identity
    /// (`AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN`) comes right after the environment, as in the AWS SDKs,
    /// unless a profile is named; its STS endpoint is `region`'s unless `AWS_ENDPOINT_URL_STS` says otherwise. Then
    /// fetches them once, so that a source that gives none is reported here.
    public static func resolve(
        given: AWSCredentials?, profile: String?, region: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger = Logger(label: "crm-ingest.aws-credentials")
    ) throws(AWSCredentialsError) -> AWSCredentialsProvider {
        var tried: [String] = []
        let source = try findSource(given: given, profile: profile, region: region, environment: environment, tried: &tried)
        let provider = AWSCredentialsProvider(source: source, logger: logger)
        do {
            _ = try provider.credentials()
        } catch {
            // The instance metadata service is the last resort: on a machine that is not EC2, say what else was looked at.
            guard case .instanceMetadata = source else { throw error }
            throw AWSCredentialsError("no AWS credentials: tried \(tried.joined(separator: ", ")), then \(error)")
        }
        return provider
    }

    /// The first place that has credentials (or says it will), without fetching them.
    public static func findSource(
        given: AWSCredentials?, profile: String?, region: String? = nil, environment: [String: String]
    ) throws(AWSCredentialsError) -> AWSCredentialsSource {
        var tried: [String] = []
        return try findSource(given: given, profile: profile, region: region, environment: environment, tried: &tried)
    }

    /// `findSource`, noting in `tried` the places that had nothing.
    static func findSource(
        given: AWSCredentials?, profile: String?, region: String?, environment: [String: String], tried: inout [String]
    ) throws(AWSCredentialsError) -> AWSCredentialsSource {
        if let given { return .configuration(given) }
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        if let key = value("AWS_ACCESS_KEY_ID"), let secret = value("AWS_SECRET_ACCESS_KEY") {
            return .environment(AWSCredentials(accessKeyId: key, secretAccessKey: secret, sessionToken: value("AWS_SESSION_TOKEN")))
        }
        // Next in the AWS SDKs' order, unless a profile is named (`profile:` or AWS_PROFILE: the operator chose
        // that identity, as botocore and aws-sdk-go-v2 take it). AWS_ROLE_ARN alone is ignored, as the SDKs do; a
        // token file without a role is a half-done set-up, and falling through would use another identity (the
        // node's instance role) without a word.
        let namedProfile = profile ?? value("AWS_PROFILE")
        if namedProfile == nil, let tokenFile = value("AWS_WEB_IDENTITY_TOKEN_FILE") {
            guard let roleArn = value("AWS_ROLE_ARN") else {
                throw AWSCredentialsError("AWS_WEB_IDENTITY_TOKEN_FILE is set without AWS_ROLE_ARN: a web identity (EKS IRSA) needs both")
            }
            let sessionName = value("AWS_ROLE_SESSION_NAME") ?? "crm-ingest-\(Int64(Date().timeIntervalSince1970 * 1000))"
            guard isRoleSessionName(sessionName) else {
                throw AWSCredentialsError("AWS_ROLE_SESSION_NAME must be 2 to 64 letters, digits or +=,.@_- (STS's rule): \(sessionName)")
            }
            return .webIdentity(roleArn: roleArn, tokenFile: tokenFile, sessionName: sessionName, endpoint: try stsEndpoint(region: region, environment: environment))
        }
        tried = ["the configuration", "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"]
        let home = value("HOME") ?? NSHomeDirectory()
        let path = value("AWS_SHARED_CREDENTIALS_FILE") ?? "\(home)/.aws/credentials"
        let name = namedProfile ?? "default"
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            if sharedFileProfile(text, name: name) != nil { return .sharedFile(path: path, profile: name) }
            if namedProfile != nil {
                throw AWSCredentialsError("no profile [\(name)] in \(path)")
            }
            tried.append("profile [default] of \(path) (no such profile)")
        } else {
            if namedProfile != nil { throw AWSCredentialsError("profile [\(name)] was asked for, but there is no file \(path)") }
            tried.append("\(path) (no such file)")
        }
        if let relative = value("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            return .container(url: "http://169.254.170.2" + (relative.hasPrefix("/") ? relative : "/" + relative),
                              authorizationToken: value("AWS_CONTAINER_AUTHORIZATION_TOKEN"), authorizationTokenFile: value("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"))
        }
        if let full = value("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            // Credentials in clear text only from this machine or the container agents' link-local addresses.
            try requireHTTPSUnlessLocal(full, named: "AWS_CONTAINER_CREDENTIALS_FULL_URI")
            return .container(url: full, authorizationToken: value("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
                              authorizationTokenFile: value("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"))
        }
        tried.append("the container endpoint (no AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI)")
        if value("AWS_EC2_METADATA_DISABLED")?.lowercased() != "true" {
            let endpoint = value("AWS_EC2_METADATA_SERVICE_ENDPOINT") ?? "http://169.254.169.254"
            return .instanceMetadata(endpoint: endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint)
        }
        tried.append("the EC2 instance metadata (AWS_EC2_METADATA_DISABLED)")
        throw AWSCredentialsError("no AWS credentials: tried \(tried.joined(separator: ", "))")
    }

    /// `url` (the value of the variable `name`) is https, or http on a loopback or container-agent address
    /// (`isLocalCredentialsHost`): what it carries, credentials or a token, must not cross a network in clear text.
    static func requireHTTPSUnlessLocal(_ url: String, named name: String) throws(AWSCredentialsError) {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), let host = parsed.host?.lowercased(), !host.isEmpty else {
            throw AWSCredentialsError("\(name) is not a URL: \(url)")
        }
        guard scheme == "https" || (scheme == "http" && isLocalCredentialsHost(host)) else {
            throw AWSCredentialsError("\(name) must be https, or http on a loopback or container-agent address: \(url)")
        }
    }

    /// STS's rule for a role session name: 2 to 64 of `[A-Za-z0-9+=,.@_-]`.
    static func isRoleSessionName(_ name: String) -> Bool {
        (2...64).contains(name.utf8.count) && name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
            default: "+=,.@_-".utf8.contains(byte)
            }
        }
    }

    /// Where `AssumeRoleWithWebIdentity` goes: `AWS_ENDPOINT_URL_STS`, else the regional endpoint of `region`
    /// (`AWS_REGION`, `AWS_DEFAULT_REGION` when nil) in its partition, else the global `sts.amazonaws.com`. Not the
    /// general `AWS_ENDPOINT_URL`, which the SQS requests do not follow either, and which shared images often set for
    /// another service: the token would go there. The token is a bearer secret: plain http only to a loopback address.
    static func stsEndpoint(region: String?, environment: [String: String]) throws(AWSCredentialsError) -> String {
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        if let given = value("AWS_ENDPOINT_URL_STS") {
            try requireHTTPSUnlessLocal(given, named: "AWS_ENDPOINT_URL_STS")
            return given.hasSuffix("/") ? String(given.dropLast()) : given
        }
        guard let region = region ?? value("AWS_REGION") ?? value("AWS_DEFAULT_REGION") else { return "https://sts.amazonaws.com" }
        return AWSEndpoints.url(service: "sts", region: region)
    }

    /// A loopback address (127.0.0.0/8, ::1, `localhost`) or a container agent's (169.254.170.2, 169.254.170.23,
    /// fd00:ec2::23), as a literal: a name such as `127.example.org` could resolve anywhere.
    static func isLocalCredentialsHost(_ host: String) -> Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if ["localhost", "169.254.170.2", "169.254.170.23"].contains(bare) { return true }
        var ipv4 = in_addr()
        if inet_pton(AF_INET, bare, &ipv4) == 1 { return UInt32(bigEndian: ipv4.s_addr) >> 24 == 127 }
        var ipv6 = in6_addr()
        guard inet_pton(AF_INET6, bare, &ipv6) == 1 else { return false }
        let bytes = withUnsafeBytes(of: ipv6) { Array($0) }
        let loopback = bytes == Array(repeating: 0, count: 15) + [1]
        let agent = bytes == [0xFD, 0x00, 0x0E, 0xC2] + Array(repeating: 0, count: 11) + [0x23]
        return loopback || agent
    }

    /// The keys of one `[profile]` section of an INI-style credentials file.
    static func sharedFileProfile(_ text: String, name: String) -> [String: String]? {
        var current: String?
        var found: [String: String]?
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                current = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                if current == name { found = found ?? [:] }
                continue
            }
            guard current == name, let equals = line.firstIndex(of: "=") else { continue }
            found?[line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()] = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        }
        return found
    }
}

// MARK: Fetching

extension AWSCredentialsProvider {
    /// Gets the credentials `source` holds now (blocking: files and HTTP).
    public static func fetch(from source: AWSCredentialsSource) throws(AWSCredentialsError) -> ExpiringCredentials {
        switch source {
        case let .configuration(credentials), let .environment(credentials):
            return ExpiringCredentials(credentials)
        case let .sharedFile(path, profile):
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw AWSCredentialsError("cannot read \(path)") }
            guard let section = sharedFileProfile(text, name: profile), let key = section["aws_access_key_id"], let secret = section["aws_secret_access_key"] else {
                throw AWSCredentialsError("no aws_access_key_id and aws_secret_access_key for profile [\(profile)] in \(path)")
            }
            return ExpiringCredentials(AWSCredentials(accessKeyId: key, secretAccessKey: secret, sessionToken: section["aws_session_token"]))
        case let .container(url, token, tokenFile):
            var headers: [(name: String, value: String)] = [("Accept", "application/json")]
            if let tokenFile {
                guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                    throw AWSCredentialsError("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \(tokenFile)")
                }
                headers.append(("Authorization", text.trimmingCharacters(in: .whitespacesAndNewlines)))
            } else if let token {
                headers.append(("Authorization", token))
            }
            let response = try send(HTTPRequest(method: "GET", url: url, headers: headers), what: source)
            return try credentialsDocument(response.body, from: source)
        case let .instanceMetadata(endpoint):
            let tokenResponse = try send(
                HTTPRequest(method: "PUT", url: "\(endpoint)/latest/api/token", headers: [("X-aws-ec2-metadata-token-ttl-seconds", "21600")]), what: source
            )
            let token = String(decoding: tokenResponse.body, as: UTF8.self)
            let headers: [(name: String, value: String)] = [("X-aws-ec2-metadata-token", token)]
            let base = "\(endpoint)/latest/meta-data/iam/security-credentials/"
            let roles = String(decoding: try send(HTTPRequest(method: "GET", url: base, headers: headers), what: source).body, as: UTF8.self)
            guard let role = roles.split(whereSeparator: \.isNewline).first.map({ $0.trimmingCharacters(in: .whitespaces) }), !role.isEmpty else {
                throw AWSCredentialsError("\(source): the instance has no IAM role (attach an instance profile)")
            }
            let response = try send(HTTPRequest(method: "GET", url: base + role, headers: headers), what: source)
            return try credentialsDocument(response.body, from: source)
        case let .webIdentity(roleArn, tokenFile, sessionName, endpoint):
            guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                throw AWSCredentialsError("\(source): cannot read the token file AWS_WEB_IDENTITY_TOKEN_FILE \(tokenFile)")
            }
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw AWSCredentialsError("\(source): the token file \(tokenFile) is empty") }
            // Not signed: the token is what proves the caller's identity.
            let form = AWSQueryForm.encode([
                ("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", roleArn), ("RoleSessionName", sessionName),
                ("WebIdentityToken", token),
            ])
            let request = HTTPRequest(
                method: "POST", url: endpoint + "/",
                headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Accept", "text/xml")], body: Array(form.utf8)
            )
            // A public endpoint, maybe through a proxy: more time than the link-local ones get.
            let response = try send(request, what: source, connectTimeout: .seconds(5), timeout: .seconds(15), describeRefusal: STSAnswer.refusal)
            return try STSAnswer.credentials(response.body, from: source)
        }
    }

    /// Sends `request`; an answer other than 200 is an error, described by `describeRefusal` when there is one
    /// (it must not repeat what it does not know to be harmless: an endpoint may echo the request), else by its
    /// status and first 200 bytes.
    private static func send(
        _ request: HTTPRequest, what source: AWSCredentialsSource, connectTimeout: Duration = .seconds(1), timeout: Duration = .seconds(5),
        describeRefusal: ((HTTPResponse) -> String)? = nil
    ) throws(AWSCredentialsError) -> HTTPResponse {
        let response: HTTPResponse
        do {
            // The link-local and loopback endpoints are reached directly: a proxy from http_proxy could not reach
            // them, and must not see their tokens and answers.
            let host = URL(string: request.url)?.host?.lowercased() ?? ""
            let direct = host.hasPrefix("169.254.") || isLocalCredentialsHost(host)
            response = try CurlHTTPClient(connectTimeout: connectTimeout, bypassProxy: direct).send(request, timeout: timeout)
        } catch {
            throw AWSCredentialsError("\(source): \(error.message)")
        }
        guard response.status == 200 else {
            if let describeRefusal {
                throw AWSCredentialsError("\(source): \(request.method) \(request.url) answered HTTP \(response.status): \(describeRefusal(response))")
            }
            let text = String(decoding: response.body.prefix(200), as: UTF8.self)
            throw AWSCredentialsError("\(source): \(request.method) \(request.url) answered HTTP \(response.status)\(text.isEmpty ? "" : ": \(text)")")
        }
        return response
    }

    /// The JSON document the container endpoint and the instance metadata service answer:
    /// `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration` (ISO 8601), and from IMDS `Code` (`Success`).
    static func credentialsDocument(_ body: [UInt8], from source: AWSCredentialsSource) throws(AWSCredentialsError) -> ExpiringCredentials {
        guard let json = try? JSONParser().parse(body) else { throw AWSCredentialsError("\(source): the answer is not JSON") }
        if case let .string(code)? = json["Code"], code != "Success" {
            var message = ""
            if case let .string(text)? = json["Message"] { message = ": \(text)" }
            throw AWSCredentialsError("\(source): \(code)\(message)")
        }
        guard case let .string(key)? = json["AccessKeyId"], case let .string(secret)? = json["SecretAccessKey"], !key.isEmpty, !secret.isEmpty else {
            throw AWSCredentialsError("\(source): the answer has no AccessKeyId and SecretAccessKey")
        }
        var token: String?
        if case let .string(text)? = json["Token"], !text.isEmpty { token = text }
        var expiration: Date?
        if case let .string(text)? = json["Expiration"] {
            guard let date = try? Date(text, strategy: .iso8601) else { throw AWSCredentialsError("\(source): Expiration is not an ISO 8601 time: \(text)") }
            expiration = date
        }
        return ExpiringCredentials(AWSCredentials(accessKeyId: key, secretAccessKey: secret, sessionToken: token), expiration: expiration)
    }
}
