import AWSSigV4
import CRMCore
import SNSSupport
import Yams

extension ConfigReader {
    mutating func readSQS(_ node: Node, at path: String) -> SQSSourceConfig? {
        guard let fields = members(node, at: path, allowed: [
            "queue_url", "region", "endpoint", "credentials", "profile", "pollers", "wait_time", "visibility_timeout",
            "on_failure", "sns", "filter_policy", "filter_policy_scope", "lanes", "max_in_flight", "dead_letter_file", "dead_letter_retention",
        ]) else { return nil }
        let before = problems.count
        let queueURL = requiredString(fields["queue_url"], at: "\(path).queue_url") ?? ""
        if !queueURL.isEmpty, !(queueURL.hasPrefix("https://") || queueURL.hasPrefix("http://")) {
            problem("\(path).queue_url", "expected an https:// queue URL, got \"\(queueURL)\"")
        }
        let region = requiredString(fields["region"], at: "\(path).region") ?? ""
        var config = SQSSourceConfig(queueURL: queueURL, region: region)
        if let endpoint = string(fields["endpoint"], at: "\(path).endpoint") {
            if endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://") {
                config.endpoint = endpoint
            } else {
                problem("\(path).endpoint", "expected an http:// or https:// URL, got \"\(endpoint)\"")
            }
        }
        if let credentialsNode = fields["credentials"],
           let credentials = members(credentialsNode, at: "\(path).credentials", allowed: ["access_key_id", "secret_access_key", "session_token"]) {
            let key = requiredString(credentials["access_key_id"], at: "\(path).credentials.access_key_id")
            let secret = requiredString(credentials["secret_access_key"], at: "\(path).credentials.secret_access_key")
            let token = string(credentials["session_token"], at: "\(path).credentials.session_token")
            if let key, let secret { config.credentials = AWSCredentials(accessKeyId: key, secretAccessKey: secret, sessionToken: token) }
        }
        config.profile = string(fields["profile"], at: "\(path).profile")
        if let pollers = int(fields["pollers"], at: "\(path).pollers", required: false) {
            if pollers > 32 { problem("\(path).pollers", "at most 32, got \(pollers)") } else { config.pollers = pollers }
        }
        if let wait = duration(fields["wait_time"], at: "\(path).wait_time") {
            if wait > 20 { problem("\(path).wait_time", "SQS long polls wait at most 20s, got \(wait)s") } else { config.waitTimeSeconds = Int(wait) }
        }
        if let visibility = string(fields["visibility_timeout"], at: "\(path).visibility_timeout"), visibility != "queue" {
            if let seconds = DurationText.seconds(visibility), seconds >= 1, seconds <= 43_200 {
                config.visibilityTimeoutSeconds = Int(seconds)
            } else {
                problem("\(path).visibility_timeout", "expected queue or a duration from 1s to 12h, got \"\(visibility)\"")
            }
        }
        if let text = string(fields["on_failure"], at: "\(path).on_failure") {
            if let value = SQSSourceConfig.OnFailure(rawValue: text) { config.onFailure = value } else {
                problem("\(path).on_failure", "expected keep or release, got \"\(text)\"")
            }
        }
        if let text = string(fields["sns"], at: "\(path).sns") {
            if let value = SQSSourceConfig.SNSMode(rawValue: text) { config.sns = value } else {
                problem("\(path).sns", "expected auto or off, got \"\(text)\"")
            }
        }
        var scope = SNSFilterPolicy.Scope.messageAttributes
        if let text = string(fields["filter_policy_scope"], at: "\(path).filter_policy_scope") {
            switch text {
            case "message_attributes", "MessageAttributes": scope = .messageAttributes
            case "message_body", "MessageBody": scope = .messageBody
            default: problem("\(path).filter_policy_scope", "expected message_attributes or message_body, got \"\(text)\"")
            }
        }
        if let policyNode = fields["filter_policy"] {
            let document = jsonValue(policyNode, at: "\(path).filter_policy")
            do {
                config.filterPolicy = try SNSFilterPolicy(parsing: document, scope: scope)
            } catch {
                problem("\(path).filter_policy" + (error.path.isEmpty ? "" : ".\(error.path)"), error.reason)
            }
        }
        if let lanes = int(fields["lanes"], at: "\(path).lanes", required: false) { config.lanes = lanes }
        if let limit = int(fields["max_in_flight"], at: "\(path).max_in_flight", required: false) {
            // SQS's own limit of in-flight messages per standard queue is 120,000.
            if limit > 120_000 { problem("\(path).max_in_flight", "at most 120000, got \(limit)") } else { config.maxInFlight = limit }
        }
        if let file = string(fields["dead_letter_file"], at: "\(path).dead_letter_file") { config.deadLetterFile = file }
        if let seconds = duration(fields["dead_letter_retention"], at: "\(path).dead_letter_retention") {
            config.deadLetterRetentionSeconds = seconds
        }
        return problems.count == before ? config : nil
    }

    /// A data value's boolean: only `true` and `false` (any case), as JSON and YAML 1.2 have it. The YAML 1.1 words
    /// Yams also reads as booleans (`yes`, `no`, `on`, `off`, `y`, `n`) are refused: `country: [NO, SE]` would
    /// otherwise filter on `false` instead of Norway. Returns nil for anything that is not a boolean.
    mutating func dataBool(_ node: Node, text: String, at path: String) -> Bool? {
        guard let flag = node.bool else { return nil }
        if ["true", "false"].contains(text.lowercased()) { return flag }
        problem(path, "\"\(text)\" is a YAML 1.1 boolean; write true or false, or quote it (\"\(text)\") for the text")
        return nil
    }

    /// A YAML tree as JSON (filter policies are JSON documents written in YAML).
    mutating func jsonValue(_ node: Node, at path: String) -> JSONValue {
        switch node {
        case let .mapping(mapping):
            return .object(mapping.map { key, value in (key.scalar?.string ?? "", jsonValue(value, at: "\(path).\(key.scalar?.string ?? "")")) })
        case let .sequence(items):
            return .array(items.enumerated().map { jsonValue($1, at: "\(path)[\($0)]") })
        case let .scalar(scalar):
            let text = expand(scalar.string, at: path)
            guard scalar.style == .plain else { return .string(text) }
            if node.null != nil { return .null }
            if let flag = dataBool(node, text: text, at: path) { return .bool(flag) }
            if node.int != nil || node.float != nil, case let .number(literal)? = try? JSONParser().parse(text) { return .number(literal) }
            return .string(text)
        case .alias:
            problem(path, "aliases are not supported here")
            return .null
        }
    }
}
