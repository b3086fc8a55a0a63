import Foundation

/// Where and how to connect: parsed from an `amqp://` or `amqps://` URL.
public struct AMQPEndpoint: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var virtualHost: String
    public var user: String
    public var password: String
    /// Present for `amqps://`.
    public var tls: TLS?

    public struct TLS: Sendable, Hashable {
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?
        public var verifyPeer: Bool
        public var verifyHostname: Bool

        public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, verifyPeer: Bool = true, verifyHostname: Bool = true) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
            self.verifyPeer = verifyPeer
            self.verifyHostname = verifyHostname
        }
    }

    public init(host: String, port: Int, virtualHost: String = "/", user: String = "guest", password: String = "guest", tls: TLS? = nil) {
        self.host = host
        self.port = port
        self.virtualHost = virtualHost
        self.user = user
        self.password = password
        self.tls = tls
    }

    /// Parses `amqp://user:password@host:port/vhost` (RabbitMQ's URI spec: the vhost is percent-decoded, an empty path
    /// is `/`, user and password default to guest). The error is a reason, ready to follow a field name.
    public static func parse(_ text: String) -> Result<AMQPEndpoint, URLError> {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            return .failure(URLError("not a URL: \(masked(text))"))
        }
        guard scheme == "amqp" || scheme == "amqps" else {
            return .failure(URLError("scheme must be amqp or amqps, got \(scheme)"))
        }
        guard let host = components.host, !host.isEmpty else { return .failure(URLError("no host in \(masked(text))")) }
        let port = components.port ?? (scheme == "amqps" ? 5671 : 5672)
        guard (1...65535).contains(port) else { return .failure(URLError("port \(port) is out of range")) }
        var virtualHost = "/"
        let path = components.percentEncodedPath
        if path.count > 1 {
            let raw = String(path.dropFirst())
            guard !raw.contains("/") else { return .failure(URLError("the virtual host must be one path segment (write / as %2F)")) }
            virtualHost = raw.removingPercentEncoding ?? raw
        }
        return .success(AMQPEndpoint(
            host: host, port: port, virtualHost: virtualHost,
            user: components.user?.removingPercentEncoding ?? components.user ?? "guest",
            password: components.password?.removingPercentEncoding ?? components.password ?? "guest",
            tls: scheme == "amqps" ? TLS() : nil
        ))
    }

    /// The URL with the password replaced by `***`: safe for logs.
    public var maskedURL: String {
        let vhost = virtualHost == "/" ? "" : (virtualHost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? virtualHost)
        return "\(tls == nil ? "amqp" : "amqps")://\(user):***@\(host):\(port)/\(vhost)"
    }

    /// A URL string with its password hidden, for messages about URLs that did not parse.
    public static func masked(_ text: String) -> String {
        guard let at = text.lastIndex(of: "@"), let schemeEnd = text.range(of: "://"),
              let colon = text[schemeEnd.upperBound..<at].firstIndex(of: ":") else { return text }
        return String(text[..<text.index(after: colon)]) + "***" + String(text[at...])
    }

    public struct URLError: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}
