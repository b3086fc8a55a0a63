import Foundation
import Logging

/// Log lines kept in memory, so a test can see what a source said (and what it must never say).
public final class CapturedLogs: @unchecked Sendable {
    // `stored` is guarded by `lock`.
    private let lock = NSLock()
    private var stored: [String] = []

    public init() {}

    public var lines: [String] { lock.withLock { stored } }
    public func contains(_ text: String) -> Bool { lock.withLock { stored.contains { $0.contains(text) } } }
    public func count(_ text: String) -> Int { lock.withLock { stored.filter { $0.contains(text) }.count } }

    /// A logger whose lines (level, message, sorted metadata) land here.
    public var logger: Logger {
        Logger(label: "test.captured") { _ in Handler(sink: self) }
    }

    func append(_ line: String) { lock.withLock { stored.append(line) } }

    struct Handler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let fields = (event.metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
            sink.append("\(event.level) \(event.message) \(fields)")
        }
    }
}
