/// What every message must keep, whatever its source and format (`limits:` in the configuration). Crossing one is
/// a clear error naming the setting (`… (limits.max_depth)`): the message goes to the dead-letter path, the daemon
/// and the events around it go on. The defaults hold any event the seed formats describe with a wide margin.
public struct InputLimits: Sendable, Equatable {
    /// Largest message body in bytes: a RabbitMQ or SQS body, a line of `crm-ingest ingest`. HTTP request bodies
    /// are bounded by `http.max_body` instead, before they are read.
    public var maxMessageBytes: Int
    /// Deepest nesting of JSON arrays and objects.
    public var maxDepth: Int
    /// Most members in one JSON object (duplicate keys are refused anyway).
    public var maxObjectMembers: Int
    /// Most properties one event carries once flattened (`address.city`, `tags.0`): the attributes it may write.
    public var maxProperties: Int
    /// Longest JSON string, in bytes of UTF-8.
    public var maxStringBytes: Int

    /// The configuration section these come from, named in errors.
    public static let settingSection = "limits"

    public init(
        maxMessageBytes: Int = 1 << 20, maxDepth: Int = 32, maxObjectMembers: Int = 1_000, maxProperties: Int = 500,
        maxStringBytes: Int = 64 << 10
    ) {
        self.maxMessageBytes = maxMessageBytes
        self.maxDepth = maxDepth
        self.maxObjectMembers = maxObjectMembers
        self.maxProperties = maxProperties
        self.maxStringBytes = maxStringBytes
    }

    /// The JSON reader's limits for a message body.
    public var json: JSONLimits {
        JSONLimits(
            maxBytes: maxMessageBytes, maxDepth: maxDepth, maxObjectMembers: maxObjectMembers, maxStringBytes: maxStringBytes,
            settingSection: Self.settingSection, refusesNUL: true
        )
    }

    /// The same, for a body whose size another setting bounds (an HTTP request: `http.max_body`).
    public func json(maxBytes: Int) -> JSONLimits {
        var limits = json
        limits.maxBytes = maxBytes
        return limits
    }

    /// The default format's decoder under these limits.
    public var decoder: DefaultFormatDecoder {
        var fields = DefaultFormatDecoder.Limits()
        fields.maxProperties = maxProperties
        return DefaultFormatDecoder(parser: JSONParser(limits: json), limits: fields)
    }

    /// The error for an event with more than `maxProperties` properties; `field` names them (`TYPE.properties`).
    /// `field` is only built for the error: it is a string interpolation at most call sites, run for every event.
    public func tooManyProperties(_ count: Int, field: @autoclosure () -> String) -> EventError? {
        Self.tooManyProperties(count, limit: maxProperties, field: field())
    }

    /// The error for `count` properties where at most `limit` are allowed; nil when within it.
    public static func tooManyProperties(_ count: Int, limit: Int, field: @autoclosure () -> String) -> EventError? {
        guard count > limit else { return nil }
        return EventError(.invalidField, field: field(), reason: "more than \(limit) properties (\(settingSection).max_properties), got \(count)")
    }
}
