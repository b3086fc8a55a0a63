import ArgumentParser
import CRMConfig
import CRMSourceRabbitMQ
import CRMSourceSQS
import CRMSourceSupport
import Foundation
import Logging

/// `crm-ingest dlq list|replay --source NAME`: a source's dead-lettered messages, looked at and sent back.
struct DLQCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Lists a source's dead-lettered messages, or replays them to the source's queue.",
        discussion: """
            RabbitMQ: the source's dead_letter queue (or, with --queue, the queue bound to its dead-letter exchange). \
            SQS: the queue's redrive dead-letter queue, or the source's dead_letter_file when the queue has no redrive \
            policy. Listing consumes nothing: every message stays where it was. Replaying removes a message from the \
            dead letters only after the broker confirmed its copy in the source's queue; a sharded source's (shards: N) go \
            to its shard exchange with the routing key they were first published with, back to their contact's shard. \
            Blocking network calls run on the command's own thread.
            """,
        subcommands: [List.self, Replay.self]
    )

    struct Selection: ParsableArguments {
        @OptionGroup var options: ConfigOption

        @Option(help: "The source (its name in the configuration).")
        var source: String

        @Option(help: "RabbitMQ: the dead-letter queue, when the source dead-letters to an exchange (its own dead_letter: { exchange } or the queue's x-dead-letter-exchange).")
        var queue: String?
    }

    /// Either transport's dead letters.
    enum DeadLetters {
        case rabbitmq(RabbitMQDeadLetters)
        case sqs(SQSDeadLetters)

        init(_ selection: Selection) throws {
            let config = try ConfigLoading.load(selection.options.config)
            guard let source = config.sources.first(where: { $0.name == selection.source }) else {
                let names = config.sources.map(\.name).joined(separator: ", ")
                throw ValidationError("--source: no source \"\(selection.source)\" in the configuration (sources: \(names))")
            }
            switch source.transport {
            case let .rabbitmq(rabbitmq):
                self = .rabbitmq(try RabbitMQDeadLetters(source: source, config: rabbitmq, processor: config.processor(for: source), queue: selection.queue))
            case let .sqs(sqs):
                self = .sqs(try SQSDeadLetters(
                    sourceName: source.name, config: sqs, processor: config.processor(for: source), environment: ProcessInfo.processInfo.environment
                ))
            case .http:
                throw ValidationError("--source: \(source.name) is an http source; refused requests are answered with their error and kept nowhere")
            }
        }

        var whereItIs: String {
            switch self {
            case let .rabbitmq(dead): return "RabbitMQ queue \(dead.deadLetterQueue)"
            case let .sqs(dead):
                switch dead.location {
                case let .queue(url, maxReceiveCount): return "SQS queue \(url) (redrive after \(maxReceiveCount) receives)"
                case let .file(path): return "dead-letter file \(path)"
                }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Prints dead-lettered messages with their reason, delivery count and time.")

        @OptionGroup var selection: Selection

        @Option(help: "At most this many messages.")
        var limit: Int = 100

        @Flag(help: "One JSON object a line instead of a table.")
        var json = false

        func validate() throws {
            guard limit > 0 else { throw ValidationError("--limit: must be at least 1") }
        }

        func run() throws {
            let deadLetters: DeadLetters
            do { deadLetters = try DeadLetters(selection) } catch let error as ValidationError { throw error } catch {
                printError("dlq list: \(error)")
                throw ExitCode(1)
            }
            let entries: [DeadLetterEntry]
            do {
                switch deadLetters {
                case let .rabbitmq(dead): entries = try dead.list(limit: limit)
                case let .sqs(dead): entries = try dead.list(limit: limit)
                }
            } catch {
                printError("dlq list: \(error)")
                throw ExitCode(1)
            }
            if json {
                for entry in entries { print(DeadLetterPrinter.json(entry)) }
            } else {
                print("\(entries.count) dead letter\(entries.count == 1 ? "" : "s") of source \(selection.source) in \(deadLetters.whereItIs)\(entries.count == limit ? " (--limit reached)" : "")")
                if !entries.isEmpty { print(DeadLetterPrinter.table(entries)) }
            }
        }
    }

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sends dead-lettered messages back to the source's queue (after the mapping was fixed).",
            discussion: "Check first with `crm-ingest dlq list`: its NOW column says what the current mapping would do with each message."
        )

        @OptionGroup var selection: Selection

        @Option(help: "At most this many messages (default: all).")
        var limit: Int?

        @Option(name: .customLong("where"), help: "Only messages of this event type (e.g. USER_REGISTRATION).")
        var eventType: String?

        func validate() throws {
            if let limit, limit < 1 { throw ValidationError("--limit: must be at least 1") }
        }

        func run() throws {
            let deadLetters: DeadLetters
            do { deadLetters = try DeadLetters(selection) } catch let error as ValidationError { throw error } catch {
                printError("dlq replay: \(error)")
                throw ExitCode(1)
            }
            let bar = ProgressBar()
            let progress: (Int, Int) -> Void = { done, total in bar.update(done: done, of: total, unit: "messages") }
            let summary: DeadLetterReplaySummary
            do {
                switch deadLetters {
                case let .rabbitmq(dead): summary = try dead.replay(limit: limit, eventType: eventType, progress: progress)
                case let .sqs(dead): summary = try dead.replay(limit: limit, eventType: eventType, progress: progress)
                }
            } catch {
                bar.finish()
                printError("dlq replay: \(error)")
                throw ExitCode(1)
            }
            bar.finish()
            var line = "replayed \(summary.replayed) message\(summary.replayed == 1 ? "" : "s") of source \(selection.source) from \(deadLetters.whereItIs)"
            if summary.leftOtherType > 0 { line += "; left \(summary.leftOtherType) of other types" }
            if summary.failed > 0 { line += "; \(summary.failed) failed and stay dead-lettered: \(summary.failure ?? "unknown error")" }
            else if let failure = summary.failure { line += "; stopped early: \(failure)" }
            print(line)
            if summary.failed > 0 || summary.failure != nil { throw ExitCode(1) }
        }
    }
}

/// How dead letters are printed.
enum DeadLetterPrinter {
    static func time(_ seconds: Int64?) -> String {
        guard let seconds else { return "-" }
        return String(JSONLogHandler.rfc3339(seconds: Int(seconds), milliseconds: 0).dropLast(5)) + "Z"
    }

    static func table(_ entries: [DeadLetterEntry]) -> String {
        let rows = [["MESSAGE ID", "TYPE", "DELIVERIES", "DEAD-LETTERED", "REASON", "NOW"]] + entries.map { entry in
            [entry.messageId ?? "-", entry.eventType ?? "-", entry.deliveries.map(String.init) ?? "-", time(entry.deadLetteredAt), entry.reason, entry.now]
        }
        let widths = (0..<5).map { column in min(60, rows.map { $0[column].count }.max() ?? 0) }
        return rows.map { row in
            row.enumerated().map { column, text in
                guard column < 5 else { return text }
                let cut = text.count > widths[column] ? String(text.prefix(widths[column] - 1)) + "…" : text
                return cut.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func json(_ entry: DeadLetterEntry) -> String {
        var members: [(String, JSONText)] = [
            ("messageId", entry.messageId.map(JSONText.string) ?? .null), ("type", entry.eventType.map(JSONText.string) ?? .null),
            ("reason", .string(entry.reason)), ("deliveries", entry.deliveries.map { .number("\($0)") } ?? .null),
            ("deadLetteredAt", entry.deadLetteredAt.map { .string(time($0)) } ?? .null), ("now", .string(entry.now)),
            ("bodyBytes", .number("\(entry.bodyBytes)")),
        ]
        members.sort { $0.0 < $1.0 }
        var line = JSONLineWriter()
        for (key, value) in members {
            line.key(key)
            switch value {
            case let .string(text): line.value(.string(text))
            case let .number(text): line.raw(text)
            case .null: line.raw("null")
            }
        }
        let bytes = line.finish()
        return String(decoding: bytes.dropLast(), as: UTF8.self)
    }

    enum JSONText {
        case string(String)
        case number(String)
        case null
    }
}
