import CRMCore
import CRMSourceSQS
import CRMStorePostgres
import CRMTestSupport
import Foundation
import SQSClient
import Testing

/// Several daemons on one SQS queue with one PostgreSQL database (issue 9): two sources, each with a store of its
/// own (two pools, as two processes have), drain one standard queue together.
extension SQSSourceTests {
    @Test func twoDaemonsOnOneQueueAndOneDatabaseApplyEveryMessageOnce() async throws {
        let server = try MotoTestServer.shared()
        let postgres = try PostgresTestServer.shared()
        let database = try postgres.createDatabase()
        let queue = try Self.createQueue(server, "shared-\(UUID().uuidString.prefix(6))")
        let contacts = 100, steps = 6, total = contacts * steps
        var messages: [SQSClient.OutgoingMessage] = []
        for step in 0..<steps {
            for contact in 0..<contacts { messages.append(.init(id: "m\(messages.count % 10)", body: Self.event(contact: contact, step: step))) }
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-sqs-scale-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try Self.send(server, queue, Array(messages.prefix(300)))
        let rest = Array(messages.dropFirst(300))
        let settings = config(server, queue, folder: folder)
        let totals = try await postgres.withStore(database: database) { first in
            try await postgres.withStore(database: database) { second in
                async let a = Self.run(settings, store: first, whileRunning: { try Self.send(server, queue, rest) },
                                       progress: { try await first.count("ledger") }) { try await first.count("ledger") >= total }
                async let b = Self.run(settings, store: second, progress: { try await second.count("ledger") }) {
                    try await second.count("ledger") >= total
                }
                return try await [a, b]
            }
        }
        // Both daemons took part, and nothing was applied twice: deposits carry no transaction id, so a second
        // application would be a second row.
        #expect(totals.allSatisfy { $0.received > 0 }, "\(totals.map(\.received))")
        #expect(try postgres.psql("SELECT count(*) FROM ledger", database: database) == String(total))
        #expect(try postgres.psql("SELECT count(*) FROM purchases", database: database) == String(contacts * (steps / 2)))
        #expect(try postgres.psql("SELECT count(*) FROM contacts", database: database) == String(contacts))
    }
}
