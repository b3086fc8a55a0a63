import CRMCore
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One JSON object a line on standard error, for journald, Docker and log shippers:
/// `{"time":"2026-12-01T04:39:21.123Z","level":"warning","logger":"crm-ingest","message":"…","source":"app-events",…}`.
///
/// `time` is RFC 3339 in UTC with milliseconds; `level` is swift-log's level name; the metadata (merged from the
/// logger, its provider and the call) follows as top-level fields: `source`, `event_id`, `contact_id`, `reason`, …
/// A metadata key that collides with a fixed field is written with a `meta_` prefix; swift-log's own `source` (the
/// module) is `module`.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let output: JSONLogOutput

    public init(label: String, level: Logger.Level, output: JSONLogOutput = .standardError, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        logLevel = level
        self.output = output
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let given = event.metadata { merged.merge(given) { _, new in new } }
        var line = JSONLineWriter()
        line.field("time", JSONLogHandler.timestamp())
        line.field("level", event.level.rawValue)
        line.field("logger", label)
        line.field("message", "\(event.message)")
        for key in merged.keys.sorted() {
            let name = Self.fixedFields.contains(key) ? "meta_" + key : key
            line.key(name)
            line.value(merged[key]!)
        }
        line.field("module", event.source)
        output.write(line.finish())
    }

    static let fixedFields: Set<String> = ["time", "level", "logger", "message", "module"]

    /// Now as RFC 3339 in UTC with milliseconds, without Foundation's formatters.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return rfc3339(seconds: now.tv_sec, milliseconds: now.tv_nsec / 1_000_000)
    }

    static func rfc3339(seconds: Int, milliseconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(millis)Z"
    }
}

/// Where JSON log lines go: one `write` per line, serialized, so lines from different threads never interleave.
public final class JSONLogOutput: Sendable {
    private let descriptor: Int32
    private let lock = Mutex(())

    public init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    public static let standardError = JSONLogOutput(descriptor: 2)

    func write(_ bytes: [UInt8]) {
        lock.withLock { _ in
            var offset = 0
            bytes.withUnsafeBytes { raw in
                while offset < raw.count {
                    let written = Glibc.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return
                    }
                    offset += written
                }
            }
        }
    }
}

/// Builds one JSON object as bytes.
struct JSONLineWriter {
    private var bytes: [UInt8] = [UInt8(ascii: "{")]
    private var first = true

    mutating func key(_ name: String) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        string(name)
        bytes.append(UInt8(ascii: ":"))
    }

    /// Text already in JSON form (a number, `null`).
    mutating func raw(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    mutating func field(_ name: String, _ text: String) {
        key(name)
        string(text)
    }

    mutating func value(_ value: Logger.Metadata.Value) {
        switch value {
        case let .string(text): string(text)
        case let .stringConvertible(convertible): string(convertible.description)
        case let .array(items):
            bytes.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                self.value(item)
            }
            bytes.append(UInt8(ascii: "]"))
        case let .dictionary(members):
            bytes.append(UInt8(ascii: "{"))
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                string(key)
                bytes.append(UInt8(ascii: ":"))
                self.value(members[key]!)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    mutating func string(_ text: String) {
        JSONWriter.writeString(text, into: &bytes)
    }

    consuming func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }
}
