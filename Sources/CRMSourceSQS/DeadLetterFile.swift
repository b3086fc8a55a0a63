import CRMCore
import Foundation
import SQSClient

/// The dead-letter records an SQS source keeps in `dead_letter_file`, one JSON object a line:
///
/// - a queue without redrive policy: the refused message whole (`body`), then deleted from the queue;
/// - a queue with a redrive policy: the reason only (`redrive: true`), written when the last receive SQS allows is
///   refused, so `crm-ingest dlq list` can say why the message sits in the redrive dead-letter queue.
public struct DeadLetterFile: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    public struct Record: Sendable, Equatable {
        public var source: String
        public var messageId: String
        public var reason: String
        /// The message body; nil for a reason record of a redrive queue.
        public var body: String?
        /// Unix seconds; nil in records written before it was kept.
        public var at: Int64?
        public var receiveCount: Int?
        /// The message's attributes, sent again with the body by `dlq replay` (empty in records written before
        /// they were kept, and in reason records).
        public var attributes: [String: SQSMessage.MessageAttribute]

        public init(
            source: String, messageId: String, reason: String, body: String?, at: Int64?, receiveCount: Int? = nil,
            attributes: [String: SQSMessage.MessageAttribute] = [:]
        ) {
            self.source = source
            self.messageId = messageId
            self.reason = reason
            self.body = body
            self.at = at
            self.receiveCount = receiveCount
            self.attributes = attributes
        }

        func line() -> [UInt8] {
            var out: [UInt8] = Array("{\"source\":".utf8)
            JSONWriter.writeString(source, into: &out)
            out.append(contentsOf: ",\"messageId\":".utf8)
            JSONWriter.writeString(messageId, into: &out)
            out.append(contentsOf: ",\"reason\":".utf8)
            JSONWriter.writeString(reason, into: &out)
            if let at { out.append(contentsOf: ",\"at\":\(at)".utf8) }
            if let receiveCount { out.append(contentsOf: ",\"receiveCount\":\(receiveCount)".utf8) }
            if !attributes.isEmpty {
                out.append(contentsOf: ",\"attributes\":".utf8)
                out.append(contentsOf: JSONWriter.string(.object(attributes.sorted { $0.key < $1.key }.map { ($0.key, $0.value.json) })).utf8)
            }
            if let body {
                out.append(contentsOf: ",\"body\":".utf8)
                JSONWriter.writeString(body, into: &out)
            } else {
                out.append(contentsOf: ",\"redrive\":true".utf8)
            }
            out.append(contentsOf: "}\n".utf8)
            return out
        }

        init?(_ json: JSONValue) {
            guard case let .string(source)? = json["source"], case let .string(messageId)? = json["messageId"],
                  case let .string(reason)? = json["reason"] else { return nil }
            self.source = source
            self.messageId = messageId
            self.reason = reason
            if case let .string(body)? = json["body"] { self.body = body } else { body = nil }
            if case let .number(literal)? = json["at"] { at = Int64(literal) } else { at = nil }
            if case let .number(literal)? = json["receiveCount"] { receiveCount = Int(literal) } else { receiveCount = nil }
            var attributes: [String: SQSMessage.MessageAttribute] = [:]
            if case let .object(members)? = json["attributes"] {
                for member in members { attributes[member.key] = SQSMessage.MessageAttribute(json: member.value) }
            }
            self.attributes = attributes
        }
    }

    public struct FileError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Runs `body` holding the file's lock (`flock` on `<path>.lock`), which the daemon's appends and the command
    /// line's rewrites both take, so neither loses the other's records.
    func locked<T>(_ body: () throws(FileError) -> T) throws(FileError) -> T {
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty { try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        let lockPath = path + ".lock"
        let lockExisted = FileManager.default.fileExists(atPath: lockPath)
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard lock >= 0 else { throw FileError(description: "cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        // Made by the command line (often as root): owned like the records, so the daemon's user can still lock.
        if !lockExisted { keepOwnership(of: lockPath) }
        defer { close(lock) }
        guard flock(lock, LOCK_EX) == 0 else { throw FileError(description: "cannot lock \(path).lock: \(String(cString: strerror(errno)))") }
        return try body()
    }

    /// Appends a record (the folder is created if missing).
    public func append(_ record: Record) throws(FileError) {
        try locked { () throws(FileError) in try appendUnlocked(record) }
    }

    private func appendUnlocked(_ record: Record) throws(FileError) {
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else { throw FileError(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let line = record.line()
        let written = line.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == line.count else { throw FileError(description: "cannot write \(path): \(String(cString: strerror(errno)))") }
    }

    /// Every record, in the order written; a missing file has none. Lines that are not records are skipped.
    public func records() throws(FileError) -> [Record] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        guard let data = FileManager.default.contents(atPath: path) else { throw FileError(description: "cannot read \(path)") }
        let parser = JSONParser(limits: JSONLimits(maxBytes: 64 << 20, maxStringBytes: 64 << 20))
        return data.split(separator: UInt8(ascii: "\n")).compactMap { line in
            (try? parser.parse(Array(line))).flatMap(Record.init)
        }
    }

    /// Removes records, under the lock: `remove` sees every record as it is then and says which go.
    public func remove(where remove: (Record) -> Bool) throws(FileError) {
        try locked { () throws(FileError) in
            let all = try records()
            let kept = all.filter { !remove($0) }
            if kept.count != all.count { try rewrite(keeping: kept) }
        }
    }

    /// Gives `other` the records file's owner, group and mode, so a rewrite by another user (root running the
    /// command line) leaves files the daemon's user can still write.
    private func keepOwnership(of other: String) {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return }
        var kept: [FileAttributeKey: Any] = [:]
        for key in [FileAttributeKey.ownerAccountID, .groupOwnerAccountID, .posixPermissions] { kept[key] = attributes[key] }
        try? FileManager.default.setAttributes(kept, ofItemAtPath: other)
    }

    /// Writes `kept` as the whole file, through a temporary file and a rename (a crash leaves the old or the new).
    private func rewrite(keeping kept: [Record]) throws(FileError) {
        let temporary = path + ".tmp"
        var bytes: [UInt8] = []
        for record in kept { bytes.append(contentsOf: record.line()) }
        guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes), attributes: [.posixPermissions: 0o640]) else {
            throw FileError(description: "cannot write \(temporary)")
        }
        keepOwnership(of: temporary)
        guard rename(temporary, path) == 0 else { throw FileError(description: "cannot replace \(path): \(String(cString: strerror(errno)))") }
    }
}
