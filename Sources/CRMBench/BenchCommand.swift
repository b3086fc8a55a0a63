import AMQPClient
import ArgumentParser
import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// `crm-ingest-bench`: the workloads and same-run baselines `make bench` measures the daemon against
/// (`scripts/bench/bench.py` drives it). Each subcommand prints one JSON line of figures.
@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crm-ingest-bench",
        abstract: "Workloads and baselines for make bench.",
        subcommands: [
            Publish.self, NoOpConsume.self, Lines.self, SQLiteBulkInsert.self, LatencyPublish.self, LatencyWatch.self, LatencyReport.self,
        ]
    )
}

/// A mix of all twelve default-format types over `contacts` contacts, round-robin, so each contact's events arrive
/// in sequence and interleaved with the others' as a real stream is.
struct EventMix {
    let contacts: Int

    static let transactionTypes = [
        "DEPOSIT_REQUESTED", "DEPOSIT_APPROVED", "DEPOSIT_REJECTED", "DEPOSIT_CANCELLED",
        "WITHDRAWAL_REQUESTED", "WITHDRAWAL_APPROVED", "WITHDRAWAL_REJECTED", "WITHDRAWAL_CANCELLED",
    ]

    /// Event `index` of the stream: contact `index % contacts`, its step `index / contacts`.
    func event(_ index: Int) -> String {
        let contact = index % contacts
        let step = index / contacts
        let id = "bench-\(contact)"
        if step == 0 {
            return #"{"type":"USER_REGISTRATION","contactId":"\#(id)","properties":{"firstName":"N\#(contact)","email":"c\#(contact)@example.com","country":"SE"}}"#
        }
        switch step % 12 {
        case 1, 5: return #"{"type":"USER_UPDATE","contactId":"\#(id)","properties":{"language":"sv","lastName":"L\#(step)"}}"#
        case 2: return #"{"type":"USER_CONSENT_UPDATE","contactId":"\#(id)","channel":"EMAIL","consented":\#(step % 24 == 2)}"#
        case 3: return #"{"type":"USER_BLOCKED","contactId":"\#(id)"}"#
        default:
            let type = Self.transactionTypes[step % Self.transactionTypes.count]
            return #"{"type":"\#(type)","contactId":"\#(id)","timestamp":"2026-01-02T03:04:05Z","amount":\#(step).25,"currency":"EUR","transactionId":"t\#(contact)-\#(step)","vendor":"bench","paymentType":"card"}"#
        }
    }
}

/// The broker and queue a workload uses.
struct BrokerOptions: ParsableArguments {
    @Option var url = "amqp://guest:guest@127.0.0.1:5672/"
    @Option var queue = "crm.bench"
}

func endpoint(_ url: String) throws -> AMQPEndpoint {
    switch AMQPEndpoint.parse(url) {
    case let .success(endpoint): return endpoint
    case let .failure(error): throw ValidationError("--url: \(error)")
    }
}

/// CPU seconds (user + system) this process used so far.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

func printJSON(_ fields: [(String, Any)]) {
    let parts = fields.map { key, value -> String in
        switch value {
        case let text as String: return "\"\(key)\":\"\(text)\""
        case let number as Double: return "\"\(key)\":\(String(format: "%.4f", number))"
        default: return "\"\(key)\":\(value)"
        }
    }
    print("{" + parts.joined(separator: ",") + "}")
    fflush(nil)
}

extension BenchCommand {
    /// Declares the queue afresh and publishes the mix as persistent messages with ids, in confirm windows.
    struct Publish: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Publish N default-format events to a fresh durable queue.")
        @OptionGroup var broker: BrokerOptions
        @Option var events = 200_000
        @Option var contacts = 20_000
        @Flag(help: "Keep what the queue holds (default: delete and declare it).") var append = false

        func run() throws {
            let publisher = try AMQPPublisher(endpoint: endpoint(broker.url), connectionName: "crm-ingest-bench publisher")
            defer { publisher.close() }
            if !append {
                try? publisher.connection.openChannel(3)
                try? publisher.connection.deleteQueue(broker.queue, channel: 3)
                try publisher.declareQueueIfMissing(broker.queue)
            }
            let mix = EventMix(contacts: contacts)
            let started = Date()
            let messages = (0..<events).lazy.map { index in
                AMQPPublisher.Message(body: Array(mix.event(index).utf8), routingKey: broker.queue,
                                      properties: AMQPProperties(contentType: "application/json", messageId: "b-\(index)", deliveryMode: 2))
            }
            try publisher.publishAll(messages, window: 2_000)
            printJSON([("published", events), ("seconds", Date().timeIntervalSince(started))])
        }
    }

    /// The delivery limit: consumes with the daemon's prefetch, acks in batches (multiple), does nothing else.
    struct NoOpConsume: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "noop", abstract: "Drain a queue doing nothing: the broker's delivery limit.")
        @OptionGroup var broker: BrokerOptions
        @Option var count = 200_000
        @Option var prefetch = 500
        @Option(help: "Ack (multiple) after this many deliveries.") var ackEvery = 250
        @Option(help: "Write each delivery's message id and arrival (microseconds since 1970) to this file: the broker's share of the latency.") var record: String?

        func run() throws {
            let connection = try AMQPConnection(endpoint: endpoint(broker.url), connectionName: "crm-ingest-bench no-op")
            defer { connection.close() }
            try connection.openChannel(1)
            try connection.setPrefetch(UInt16(prefetch), channel: 1)
            _ = try connection.consume(queue: broker.queue, channel: 1)
            var received = 0
            var unacked = 0
            var lastTag: UInt64 = 0
            var started: Date?
            var arrivals: [String] = []
            let cpuStart = cpuSeconds()
            while received < count {
                guard let event = try connection.nextEvent(timeout: .seconds(30)) else { throw ValidationError("no delivery for 30 s after \(received)") }
                guard case let .delivery(delivery) = event else { continue }
                if started == nil { started = Date() }
                received += 1
                unacked += 1
                lastTag = delivery.deliveryTag
                if record != nil { arrivals.append("\(delivery.properties.messageId ?? "-") \(Int64(Date().timeIntervalSince1970 * 1_000_000))") }
                if unacked >= ackEvery || !connection.hasBufferedInput {
                    try connection.ack(lastTag, multiple: true, channel: 1)
                    unacked = 0
                }
            }
            if unacked > 0 { try connection.ack(lastTag, multiple: true, channel: 1) }
            if let record { try (arrivals.joined(separator: "\n") + "\n").write(toFile: record, atomically: true, encoding: .utf8) }
            let seconds = Date().timeIntervalSince(started ?? Date())
            printJSON([("events", received), ("seconds", seconds), ("events_per_s", Double(received) / seconds),
                       ("cpu_seconds", cpuSeconds() - cpuStart)])
        }
    }

    /// The same mix as JSON lines, for `crm-ingest ingest`.
    struct Lines: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write N default-format events as JSON lines.")
        @Option var events = 1_000_000
        @Option var contacts = 20_000
        @Option var output: String

        func run() throws {
            let mix = EventMix(contacts: contacts)
            FileManager.default.createFile(atPath: output, contents: nil)
            guard let handle = FileHandle(forWritingAtPath: output) else { throw ValidationError("cannot write \(output)") }
            defer { try? handle.close() }
            var buffer = ""
            for index in 0..<events {
                buffer += mix.event(index)
                buffer += "\n"
                if buffer.utf8.count > 1 << 20 {
                    handle.write(Data(buffer.utf8))
                    buffer = ""
                }
            }
            handle.write(Data(buffer.utf8))
        }
    }

    /// The storage limit: the same lines inserted as rows (contact, type, body) in one transaction with one
    /// prepared statement, with the daemon's durability settings (WAL, synchronous FULL).
    struct SQLiteBulkInsert: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "sqlite-bulk", abstract: "Bulk-insert JSON lines into a plain SQLite table.")
        @Option var input: String
        @Option var database: String

        func run() throws {
            try? FileManager.default.removeItem(atPath: database)
            var configuration = Configuration()
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL")
            }
            let queue = try DatabaseQueue(path: database, configuration: configuration)
            guard let data = FileManager.default.contents(atPath: input) else { throw ValidationError("cannot read \(input)") }
            let started = Date()
            var rows = 0
            try queue.write { db in
                try db.execute(sql: "CREATE TABLE events (id INTEGER PRIMARY KEY, contact_id TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL)")
                let statement = try db.makeStatement(sql: "INSERT INTO events (contact_id, type, body) VALUES (?, ?, ?)")
                for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
                    let text = String(decoding: line, as: UTF8.self)
                    // The two fields a store keys rows by, found without a JSON parser: the storage limit, not the decoder's.
                    try statement.execute(arguments: [Self.field(text, "contactId"), Self.field(text, "type"), text])
                    rows += 1
                }
            }
            let seconds = Date().timeIntervalSince(started)
            printJSON([("rows", rows), ("seconds", seconds), ("rows_per_s", Double(rows) / seconds)])
        }

        static func field(_ text: String, _ name: String) -> String {
            guard let start = text.range(of: "\"\(name)\":\"") else { return "" }
            let rest = text[start.upperBound...]
            return String(rest[..<(rest.firstIndex(of: "\"") ?? rest.endIndex)])
        }
    }

    /// Publishes one registration per interval for `seconds`, each for a new contact, and writes the publish times
    /// (microseconds since 1970) to a file for `latency-report`.
    struct LatencyPublish: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "latency-publish", abstract: "Publish at a fixed rate, recording publish times.")
        @OptionGroup var broker: BrokerOptions
        @Option var rate = 1_000
        @Option var seconds = 60
        @Option var times: String

        func run() throws {
            let publisher = try AMQPPublisher(endpoint: endpoint(broker.url), connectionName: "crm-ingest-bench latency")
            defer { publisher.close() }
            let total = rate * seconds
            var sent: [String] = []
            sent.reserveCapacity(total)
            let start = ContinuousClock.now
            for index in 0..<total {
                let due = start + .microseconds(Int64(index) * 1_000_000 / Int64(rate))
                let wait = due - ContinuousClock.now
                if wait > .zero { Thread.sleep(forTimeInterval: Double(wait.components.attoseconds) / 1e18 + Double(wait.components.seconds)) }
                let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
                let id = LatencyWatch.contactId(index)
                let body = #"{"type":"USER_REGISTRATION","contactId":"\#(id)","properties":{"firstName":"L"}}"#
                try publisher.publish(.init(body: Array(body.utf8), routingKey: broker.queue,
                                            properties: AMQPProperties(messageId: id, deliveryMode: 2)))
                sent.append("\(id) \(now)")
                if index % 200 == 199 { try publisher.waitForConfirms() }
            }
            try publisher.waitForConfirms()
            try (sent.joined(separator: "\n") + "\n").write(toFile: times, atomically: true, encoding: .utf8)
            printJSON([("published", total), ("rate", rate), ("cpu_seconds", cpuSeconds())])
        }
    }

    /// Watches the daemon's SQLite file, as a second reader would, for the contacts `latency-publish` creates, and
    /// writes when each became visible (microseconds since 1970): the instant its transaction had committed, found
    /// by a poll every `interval-ms` (a query when `PRAGMA data_version` changed), so about that much late, plus the
    /// time the poll waits for a CPU on a busy machine.
    struct LatencyWatch: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "latency-watch", abstract: "Record when each published contact is committed.")
        @Option var database: String
        @Option var count: Int
        @Option var output: String
        @Option(name: .customLong("interval-ms")) var intervalMilliseconds = 1
        @Option var timeout = 300

        /// Zero-padded, so the ids sort in publish order and a range query finds the new ones.
        static func contactId(_ index: Int) -> String {
            let digits = String(index)
            return "lat-" + String(repeating: "0", count: max(0, 9 - digits.count)) + digits
        }

        func run() throws {
            var configuration = Configuration()
            configuration.readonly = true
            let database = try DatabaseQueue(path: self.database, configuration: configuration)
            var visibleAt = [Int64](repeating: 0, count: count)
            var firstUnseen = 0
            var seen = 0
            let deadline = ContinuousClock.now + .seconds(timeout)
            // The watcher shares the machine's CPUs with the daemon and the broker, so a poll costs as little as it
            // can: `PRAGMA data_version` tells whether anything committed since the last query (the query runs only
            // then), and both statements are prepared once. Each statement is a read transaction of its own.
            var lastVersion: Int?
            while seen < count, ContinuousClock.now < deadline {
                let lower = Self.contactId(firstUnseen)
                let ids: [String] = try database.inDatabase { db in
                    let version = try Int.fetchOne(db.cachedStatement(sql: "PRAGMA data_version"))
                    guard version != lastVersion else { return [] }
                    // A commit landing between the two statements is seen by the query and changes the version
                    // again, so the next poll queries once more: nothing is missed.
                    lastVersion = version
                    return try String.fetchAll(
                        db.cachedStatement(sql: "SELECT contact_id FROM contacts WHERE list_id = 1 AND contact_id >= ? AND contact_id < 'lat-~'"),
                        arguments: [lower]
                    )
                }
                let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
                for id in ids {
                    guard let index = Int(id.dropFirst(4)), index < count, visibleAt[index] == 0 else { continue }
                    visibleAt[index] = now
                    seen += 1
                }
                while firstUnseen < count, visibleAt[firstUnseen] != 0 { firstUnseen += 1 }
                Thread.sleep(forTimeInterval: Double(intervalMilliseconds) / 1_000)
            }
            let lines = visibleAt.enumerated().filter { $0.element != 0 }.map { "\(Self.contactId($0.offset)) \($0.element)" }
            try (lines.joined(separator: "\n") + "\n").write(toFile: output, atomically: true, encoding: .utf8)
            printJSON([("visible", seen), ("expected", count), ("cpu_seconds", cpuSeconds())])
        }
    }

    /// Publish-to-commit latency: for each contact of `latency-publish`, when `latency-watch` saw it committed minus
    /// its publish time. `--database` reads the store's `created_at` instead: the clock reading the daemon handed to
    /// the store with the event's batch, before its transaction ran and committed (a lower bound).
    struct LatencyReport: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "latency-report", abstract: "p50/p99/max from publish to store.")
        @Option var times: String
        @Option(help: "A file written by latency-watch: latency to the commit.") var visible: String?
        @Option(help: "The daemon's SQLite file: latency to the store's created_at (before the commit).") var database: String?
        @Option(help: "A file written by noop --record: latency to a do-nothing consumer.") var arrivals: String?

        func run() throws {
            var created: [String: Int64] = [:]
            if let visible {
                guard let text = try? String(contentsOfFile: visible, encoding: .utf8) else { throw ValidationError("cannot read \(visible)") }
                for line in text.split(separator: "\n") {
                    let parts = line.split(separator: " ")
                    if parts.count == 2, let at = Int64(parts[1]) { created[String(parts[0])] = at }
                }
            } else if let database {
                created = try DatabaseQueue(path: database).read { db in
                    try Dictionary(uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT contact_id, created_at FROM contacts WHERE contact_id LIKE 'lat-%'")
                        .map { (row: Row) -> (String, Int64) in (row["contact_id"], row["created_at"]) })
                }
            } else if let arrivals, let text = try? String(contentsOfFile: arrivals, encoding: .utf8) {
                for line in text.split(separator: "\n") {
                    let parts = line.split(separator: " ")
                    if parts.count == 2, let at = Int64(parts[1]) { created[String(parts[0])] = at }
                }
            } else {
                throw ValidationError("give --visible, --database or --arrivals")
            }
            guard let text = try? String(contentsOfFile: times, encoding: .utf8) else { throw ValidationError("cannot read \(times)") }
            var latencies: [Double] = []
            var missing = 0
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ")
                guard parts.count == 2, let sent = Int64(parts[1]) else { continue }
                guard let at = created[String(parts[0])] else { missing += 1; continue }
                latencies.append(Double(at - sent) / 1000)
            }
            latencies.sort()
            func percentile(_ p: Double) -> Double { latencies.isEmpty ? .nan : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
            printJSON([("events", latencies.count), ("missing", missing), ("p50_ms", percentile(0.5)), ("p99_ms", percentile(0.99)),
                       ("max_ms", latencies.last ?? .nan)])
        }
    }
}
