import CRMCore

/// The daemon's HTTP server (`http:`): incoming integrations and the operational endpoints (`/healthz`, `/readyz`,
/// `/metrics`).
public struct HTTPServerConfig: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// Largest request body; a larger one answers 413.
    public var maxBodyBytes: Int
    /// A connection that sends nothing for this long is closed, and so is one whose request has not arrived whole
    /// within it: a stalled or slowly dripping client cannot hold a connection, its memory, or a graceful stop.
    public var readTimeout: Duration

    public init(host: String = "127.0.0.1", port: Int = 8080, maxBodyBytes: Int = 1 << 20, readTimeout: Duration = .seconds(30)) {
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.readTimeout = readTimeout
    }
}

/// An HTTP incoming integration (`sources[].http`), as Synerise's "incoming integration" describes it.
public struct HTTPSourceConfig: Sendable, Equatable {
    /// The `<endpoint>` of `/incoming/<endpoint>`; nil: generated once and kept in the store.
    public var endpoint: String?
    public var auth: HTTPAuth
    public var deduplication: RequestDeduplication?
    /// The field naming the contact; required when a mapping gives the source's event type actions.
    public var contactId: RequestField?
    public var eventType: IncomingEventType

    public init(
        endpoint: String? = nil, auth: HTTPAuth = .none, deduplication: RequestDeduplication? = nil,
        contactId: RequestField? = nil, eventType: IncomingEventType
    ) {
        self.endpoint = endpoint
        self.auth = auth
        self.deduplication = deduplication
        self.contactId = contactId
        self.eventType = eventType
    }
}

/// How an integration authenticates requests.
public enum HTTPAuth: Sendable, Equatable {
    /// Anyone who knows the URL may send (the seed's "without authentication").
    case none
    case jwt(JWTAuthConfig)
}

/// JWT authentication: the algorithm is fixed by configuration, never taken from the token.
public struct JWTAuthConfig: Sendable, Equatable {
    public enum Algorithm: String, Sendable, Equatable, CaseIterable {
        case hs256 = "HS256", hs384 = "HS384", hs512 = "HS512"
        case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"

        public var isHMAC: Bool { rawValue.hasPrefix("HS") }
    }

    public enum Key: Sendable, Equatable {
        /// The shared secret of an HS* algorithm.
        case secret([UInt8])
        /// The PEM public key of an RS* algorithm (read from `public_key_file`).
        case publicKeyPEM(String)
    }

    /// A key and the `kid` tokens signed with it carry (nil: none).
    public struct NamedKey: Sendable, Equatable {
        public var kid: String?
        public var key: Key

        public init(kid: String? = nil, key: Key) {
            self.kid = kid
            self.key = key
        }
    }

    /// Most keys an integration takes: a rotation needs two or three.
    public static let maxKeys = 8

    public var algorithm: Algorithm
    /// One key, or several while keys are rotated (`keys:`). A token whose header names a `kid` is checked with
    /// that key only, when the keys have ids; any other token with each key in turn.
    public var keys: [NamedKey]
    /// The first key.
    public var key: Key { keys[0].key }
    /// When set, the token's `aud` must contain it.
    public var audience: String?
    /// When set, the token's `iss` must equal it.
    public var issuer: String?
    /// Clock skew allowed on `exp` and `nbf`.
    public var leewaySeconds: Int64

    public init(algorithm: Algorithm, key: Key, audience: String? = nil, issuer: String? = nil, leewaySeconds: Int64 = 30) {
        self.init(algorithm: algorithm, keys: [NamedKey(key: key)], audience: audience, issuer: issuer, leewaySeconds: leewaySeconds)
    }

    /// - Parameter keys: at least one.
    public init(algorithm: Algorithm, keys: [NamedKey], audience: String? = nil, issuer: String? = nil, leewaySeconds: Int64 = 30) {
        precondition(!keys.isEmpty, "a JWT integration needs a key")
        self.algorithm = algorithm
        self.keys = keys
        self.audience = audience
        self.issuer = issuer
        self.leewaySeconds = leewaySeconds
    }
}
