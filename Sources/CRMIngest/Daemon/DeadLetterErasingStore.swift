import CRMCore
import CRMSourceSQS
import CRMSourceSupport
import Logging

/// The daemon's store, with one duty added: once a batch that anonymized a contact has committed, the dead-letter
/// records the daemon keeps (the SQS sources' `dead_letter_file`s, which hold raw payloads) that name the contact
/// are removed too, before the sources settle the batch's messages. A record names the contact when its body holds
/// the event's contact id or, for `find_by: email`, the email address (as a JSON string, either case).
///
/// RabbitMQ dead letters live in the broker's queues, not in the daemon's files: see Docs/HARDENING.md.
struct DeadLetterErasingStore: StoreDecorator {
    let base: any CRMStore
    /// The dead-letter files of the configuration in force.
    let deadLetterFiles: @Sendable () -> [String]
    let logger: Logger

    func settled(_ events: [PlannedEvent], _ result: Result<[EventOutcome], any Error>) async {
        guard case let .success(outcomes) = result else { return }
        var names: Set<String> = []
        for (event, outcome) in zip(events, outcomes) {
            guard case .applied = outcome else { continue }
            for operation in event.operations {
                guard case let .anonymize(_, selector) = operation else { continue }
                switch selector {
                case .contactId: names.insert(event.contactId)
                case let .email(address): names.insert(address.lowercased())
                }
                names.insert(event.contactId)
            }
        }
        let files = deadLetterFiles()
        guard !names.isEmpty, !files.isEmpty else { return }
        await Self.erase(names: names, in: files, logger: logger)
    }

    /// Removes the records whose body holds one of `names` as a JSON string (compared without case, so an email
    /// written with capitals is found).
    static func erase(names: Set<String>, in files: [String], logger: Logger) async {
        // As a JSON string of the body, and as one inside a JSON string (an SNS envelope's `Message`).
        let needles = names.filter { !$0.isEmpty }.flatMap { name -> [[UInt8]] in
            var quoted: [UInt8] = []
            JSONWriter.writeString(name.lowercased(), into: &quoted)
            var nested: [UInt8] = []
            JSONWriter.writeString(String(decoding: quoted, as: UTF8.self), into: &nested)
            return [quoted, Array(nested.dropFirst().dropLast())]
        }
        for path in files {
            do {
                // File I/O under an flock: on a thread of its own, not the cooperative pool.
                let removed = try await onOwnThread { () throws -> Int in
                    var removed = 0
                    try DeadLetterFile(path: path).remove { record in
                        guard let body = record.body else { return false }
                        let lowered = Array(body.lowercased().utf8)
                        guard needles.contains(where: { lowered.firstRange(of: $0) != nil }) else { return false }
                        removed += 1
                        return true
                    }
                    return removed
                }
                if removed > 0 { logger.info("erased dead-letter records of an anonymized contact", metadata: ["file": "\(path)", "records": "\(removed)"]) }
            } catch {
                logger.error("cannot erase the dead-letter records of an anonymized contact: \(error)", metadata: ["file": "\(path)"])
            }
        }
    }
}
