import CRMCore
import Foundation
import Yams

extension ConfigReader {
    /// `http: { listen: 127.0.0.1:8080, max_body: 1MiB, read_timeout: 30s }`
    mutating func readHTTPServer(_ node: Node?) -> HTTPServerConfig? {
        guard let fields = members(node, at: "http", allowed: ["listen", "max_body", "read_timeout"]) else { return nil }
        var config = HTTPServerConfig()
        if let listen = string(fields["listen"], at: "http.listen") {
            if let (host, port) = Self.hostAndPort(listen) {
                config.host = host
                config.port = port
            } else {
                problem("http.listen", "expected host:port such as 127.0.0.1:8080, got \"\(listen)\"")
            }
        }
        if let text = string(fields["max_body"], at: "http.max_body") {
            if let bytes = ByteSizeText.bytes(text), bytes >= 1_024, bytes <= 64 << 20 {
                config.maxBodyBytes = bytes
            } else {
                problem("http.max_body", "expected a size from 1KiB to 64MiB such as 1MiB, got \"\(text)\"")
            }
        }
        if let text = string(fields["read_timeout"], at: "http.read_timeout") {
            if let seconds = DurationText.seconds(text), seconds >= 1, seconds <= 600 {
                config.readTimeout = .seconds(seconds)
            } else {
                problem("http.read_timeout", "expected a duration from 1s to 10m such as 30s, got \"\(text)\"")
            }
        }
        return config
    }

    static func hostAndPort(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else { return nil }
        return (host, port)
    }

    /// `sources[].http`
    mutating func readHTTPSource(_ node: Node, at path: String) -> HTTPSourceConfig? {
        guard let fields = members(node, at: path, allowed: ["endpoint", "auth", "deduplication", "contact_id", "event_type"]) else {
            return nil
        }
        let before = problems.count
        var endpoint: String?
        if let text = string(fields["endpoint"], at: "\(path).endpoint") {
            if text.count >= 8, text.count <= 128, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) {
                endpoint = text
            } else {
                problem("\(path).endpoint", "use 8 to 128 letters, digits, '-' or '_', got \"\(text)\"")
            }
        }
        let auth = readHTTPAuth(fields["auth"], at: "\(path).auth")
        var eventType: IncomingEventType?
        switch fields["event_type"] {
        case nil:
            problem("\(path).event_type", "required: a fixed type such as CUSTOM_ORDER, or { from: body.type }")
        case let .mapping(mapping)?:
            let typeFields = members(.mapping(mapping), at: "\(path).event_type", allowed: ["from"]) ?? [:]
            if let field = requestField(typeFields["from"], at: "\(path).event_type.from", required: true) {
                eventType = .field(field)
                declaredHTTPEventTypes.append(.field(field))
            }
        case let other?:
            if let name = string(other, at: "\(path).event_type") {
                if Self.isEventTypeName(name) {
                    eventType = .fixed(EventType(rawValue: name))
                    declaredHTTPEventTypes.append(.fixed(EventType(rawValue: name)))
                } else {
                    problem("\(path).event_type", "use letters, digits and '_' (such as CUSTOM_ORDER), got \"\(name)\"")
                }
            }
        }
        let contactId = requestField(fields["contact_id"], at: "\(path).contact_id", required: false)
        var deduplication: RequestDeduplication?
        if let dedupNode = fields["deduplication"],
           let dedup = members(dedupNode, at: "\(path).deduplication", allowed: ["parameters", "header", "window"]) {
            var config = RequestDeduplication()
            switch dedup["parameters"] {
            case nil: break
            case let .sequence(items)?:
                for (index, item) in items.enumerated() {
                    if let field = requestField(item, at: "\(path).deduplication.parameters[\(index)]", required: true) {
                        config.parameters.append(field)
                    }
                }
                if items.isEmpty || items.count > 5 {
                    problem("\(path).deduplication.parameters", "name 1 to 5 parameters, got \(items.count)")
                }
            case let other?:
                problem("\(path).deduplication.parameters", "expected a list such as [body.order_number, headers.X-Request-ID], got \(describe(other))")
            }
            if let header = string(dedup["header"], at: "\(path).deduplication.header") {
                if header.isEmpty || header.contains(where: { $0 == " " || $0 == ":" }) {
                    problem("\(path).deduplication.header", "expected a header name such as X-Dedup-Hash, got \"\(header)\"")
                } else {
                    config.header = header
                }
            }
            if dedup["parameters"] == nil, dedup["header"] == nil {
                problem("\(path).deduplication", "name parameters, a header, or both")
            }
            if let window = duration(dedup["window"], at: "\(path).deduplication.window") {
                if window < 1 { problem("\(path).deduplication.window", "must be at least 1s") } else { config.windowSeconds = window }
            }
            deduplication = config
        }
        guard problems.count == before, let eventType else { return nil }
        return HTTPSourceConfig(endpoint: endpoint, auth: auth ?? .none, deduplication: deduplication, contactId: contactId, eventType: eventType)
    }

    static func isEventTypeName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 128 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }

    mutating func requestField(_ node: Node?, at path: String, required: Bool) -> RequestField? {
        guard let node else {
            if required { problem(path, "required") }
            return nil
        }
        guard let text = string(node, at: path) else { return nil }
        guard let field = RequestField(text) else {
            problem(path, "expected body.<flattened key> or headers.<name>, got \"\(text)\"")
            return nil
        }
        return field
    }

    /// `auth: none`, or `auth: { jwt: { algorithm, secret | public_key_file | keys, audience, issuer, leeway } }`;
    /// `keys:` is a list of `{ kid, secret | public_key_file }`, for rotating keys.
    mutating func readHTTPAuth(_ node: Node?, at path: String) -> HTTPAuth? {
        guard let node else {
            problem(path, "required: none (anyone who knows the URL may send) or { jwt: { … } }")
            return nil
        }
        if let text = node.scalar?.string {
            if text == "none" { return HTTPAuth.none }
            problem(path, "expected none or { jwt: { … } }, got \"\(text)\"")
            return nil
        }
        guard let auth = members(node, at: path, allowed: ["jwt"]), let jwtNode = auth["jwt"] else {
            if problems.last?.path != path { problem(path, "expected none or { jwt: { … } }") }
            return nil
        }
        let jwtPath = "\(path).jwt"
        guard let jwt = members(jwtNode, at: jwtPath, allowed: ["algorithm", "secret", "public_key_file", "keys", "audience", "issuer", "leeway"]) else {
            return nil
        }
        let before = problems.count
        let names = JWTAuthConfig.Algorithm.allCases.map(\.rawValue).joined(separator: ", ")
        guard let algorithmName = requiredString(jwt["algorithm"], at: "\(jwtPath).algorithm") else { return nil }
        guard let algorithm = JWTAuthConfig.Algorithm(rawValue: algorithmName) else {
            problem("\(jwtPath).algorithm", "expected one of \(names), got \"\(algorithmName)\"")
            return nil
        }
        var keys: [JWTAuthConfig.NamedKey] = []
        if let keysNode = jwt["keys"] {
            for field in ["secret", "public_key_file"] where jwt[field] != nil {
                problem("\(jwtPath).\(field)", "set either keys or \(field), not both (put this key in keys)")
            }
            guard case let .sequence(items) = keysNode, !items.isEmpty, items.count <= JWTAuthConfig.maxKeys else {
                problem("\(jwtPath).keys", "expected a list of 1 to \(JWTAuthConfig.maxKeys) keys ({ kid, \(algorithm.isHMAC ? "secret" : "public_key_file") })")
                return nil
            }
            let anyKid = items.contains { item in
                guard case let .mapping(mapping) = item else { return false }
                return mapping.contains { $0.key.string == "kid" }
            }
            var seen: Set<String> = []
            for (index, item) in items.enumerated() {
                let itemPath = "\(jwtPath).keys[\(index)]"
                guard let fields = members(item, at: itemPath, allowed: ["kid", "secret", "public_key_file"]) else { continue }
                let kid = string(fields["kid"], at: "\(itemPath).kid")
                if let kid {
                    if kid.isEmpty { problem("\(itemPath).kid", "must not be empty") }
                    if !seen.insert(kid).inserted { problem("\(itemPath).kid", "\"\(kid)\" is already the kid of another key") }
                } else if items.count > 1, anyKid {
                    problem("\(itemPath).kid", "required: the other keys have one, and a token's kid must name a single key")
                }
                if let key = readJWTKey(fields, algorithm: algorithm, at: itemPath) { keys.append(.init(kid: kid, key: key)) }
            }
        } else if let key = readJWTKey(jwt, algorithm: algorithm, at: jwtPath) {
            keys = [.init(key: key)]
        }
        guard problems.count == before, !keys.isEmpty else { return nil }
        var config = JWTAuthConfig(algorithm: algorithm, keys: keys)
        config.audience = string(jwt["audience"], at: "\(jwtPath).audience")
        config.issuer = string(jwt["issuer"], at: "\(jwtPath).issuer")
        if let leeway = duration(jwt["leeway"], at: "\(jwtPath).leeway") {
            if leeway > 600 { problem("\(jwtPath).leeway", "at most 10m, got \(leeway)s") } else { config.leewaySeconds = leeway }
        }
        guard problems.count == before else { return nil }
        return .jwt(config)
    }

    /// The `secret` (HS*) or `public_key_file` (RS*) of one key, at `path`.
    mutating func readJWTKey(_ fields: [String: Node], algorithm: JWTAuthConfig.Algorithm, at path: String) -> JWTAuthConfig.Key? {
        if algorithm.isHMAC {
            if fields["public_key_file"] != nil { problem("\(path).public_key_file", "\(algorithm.rawValue) uses a shared secret, not a public key") }
            guard let secret = requiredString(fields["secret"], at: "\(path).secret") else { return nil }
            guard secret.utf8.count >= 32 else {
                problem("\(path).secret", "\(algorithm.rawValue) needs a secret of at least 32 bytes, got \(secret.utf8.count)")
                return nil
            }
            return .secret(Array(secret.utf8))
        }
        if fields["secret"] != nil { problem("\(path).secret", "\(algorithm.rawValue) verifies with a public key: set public_key_file") }
        guard let file = requiredString(fields["public_key_file"], at: "\(path).public_key_file") else { return nil }
        let resolved = file.hasPrefix("/") ? file : (baseDirectory as NSString).appendingPathComponent(file)
        guard let pem = try? String(contentsOfFile: resolved, encoding: .utf8) else {
            problem("\(path).public_key_file", "cannot read \(resolved)")
            return nil
        }
        guard pem.contains("-----BEGIN PUBLIC KEY-----") || pem.contains("-----BEGIN RSA PUBLIC KEY-----") || pem.contains("-----BEGIN CERTIFICATE-----") else {
            problem("\(path).public_key_file", "\(resolved) holds no PEM public key (-----BEGIN PUBLIC KEY-----)")
            return nil
        }
        return .publicKeyPEM(pem)
    }
}

/// Sizes as operators write them: `512KiB`, `1MiB`, `1MB`, `1024`.
public enum ByteSizeText {
    public static func bytes(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Int)] = [("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30), ("kb", 1_000), ("mb", 1_000_000), ("gb", 1_000_000_000), ("b", 1)]
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            guard let number = Double(trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), number >= 0 else { return nil }
            let bytes = number * Double(factor)
            // Past 2^53 a Double is no longer exact, and past Int.max the conversion would trap: far beyond any size.
            guard bytes.isFinite, bytes < 9e15 else { return nil }
            return Int(bytes)
        }
        guard let bytes = Int(trimmed), bytes >= 0 else { return nil }
        return bytes
    }
}
