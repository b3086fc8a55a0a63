import CRMCore
import Foundation
import Logging
import PostgresNIO

/// Applies planned events inside an open PostgreSQL transaction, each event atomic. The PostgreSQL twin of the
/// SQLite store's writer: the same operations with the same meaning (the shared store suite runs against both).
///
/// Events are made atomic as in SQLite (`EventIsolation`): first without savepoints; when the database refuses an
/// event's data, the transaction is rolled back and run again with a savepoint per event, so that event alone fails.
///
/// Concurrency between daemons: the transaction first takes a transaction-scoped advisory lock for every contact of
/// the batch (`lockKeys`), in sorted order, so two daemons never interleave their writes to one contact (no lost
/// update in read-modify-write operations such as `mergeContact`) and never deadlock on each other. The ledger's
/// primary key does the rest: a message delivered to two daemons inserts its key once. Contacts found by a value
/// while the transaction runs (an anonymization or block by email, a profile import's match) are locked when found
/// (`lockFound`), and looked up again after the wait: another daemon may have written or erased them meanwhile.
/// Those locks come out of order, so two daemons can deadlock on them; PostgreSQL then fails one transaction
/// (40P01), which runs again (`PostgresCRMStore.apply`).
struct PostgresOperationWriter {
    let connection: PostgresConnection
    let logger: Logger
    let now: Timestamp
    let keyedHash: KeyedHash
    let isolation: EventIsolation
    /// Whether any tombstone exists: read once per transaction (after the locks), so a store that never anonymized
    /// skips the per-event lookup.
    private var tombstonesExist: Bool
    private var nowMicros: Int64 { now.microsecondsSinceEpoch }
    /// The advisory locks the transaction took up front (`lockKeys`), and those it holds now (`lockFound` adds).
    private let batchLocks: Set<Int64>
    private let heldLocks: HeldLocks

    final class HeldLocks {
        var keys: Set<Int64>
        init(_ keys: Set<Int64>) { self.keys = keys }
    }

    init(
        connection: PostgresConnection, logger: Logger, now: Timestamp, keyedHash: KeyedHash, isolation: EventIsolation, locks: [Int64]
    ) async throws {
        self.connection = connection
        self.logger = logger
        self.now = now
        self.keyedHash = keyedHash
        self.isolation = isolation
        batchLocks = Set(locks)
        heldLocks = HeldLocks(batchLocks)
        tombstonesExist = try await connection.first("SELECT EXISTS (SELECT 1 FROM tombstones)", as: Bool.self, logger: logger) ?? true
    }

    // MARK: Locks

    /// The advisory-lock keys a batch needs, sorted: its contacts, and the match of each profile import (two daemons
    /// importing the same new email must not both create a profile).
    static func lockKeys(_ events: [PlannedEvent]) -> [Int64] {
        var keys = Set<Int64>()
        for event in events {
            keys.insert(lockKey("contact\u{0}" + event.contactId))
            if let profile = event.profileImport { keys.insert(lockKey("import\u{0}\(profile.list)\u{0}\(profile.match.description.lowercased())")) }
        }
        return keys.sorted()
    }

    /// A stable 64-bit key (FNV-1a): every daemon computes the same key for the same contact.
    static func lockKey(_ text: String) -> Int64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01B3
        }
        return Int64(bitPattern: hash)
    }

    /// Locks the contacts `ids` that the transaction does not hold yet; whether it took any (then the caller looks
    /// its contacts up again: while it waited, the daemon that held one may have changed or erased it).
    func lockFound(_ ids: [String]) async throws -> Bool {
        let keys = Set(ids.map { Self.lockKey("contact\u{0}" + $0) }).subtracting(heldLocks.keys)
        guard !keys.isEmpty else { return false }
        try await Self.takeLocks(keys.sorted(), connection, logger: logger)
        heldLocks.keys.formUnion(keys)
        return true
    }

    /// `find`'s contacts, locked: found, locked, and found again until the lookup finds nothing new.
    func findLocked(_ find: () async throws -> [String]) async throws -> [String] {
        var ids = try await find()
        while try await lockFound(ids) { ids = try await find() }
        return ids
    }

    /// Gives the transaction its id now (`txid_current()`), writes its commit witness (`witness`, a token of the
    /// transaction's own: the row exists once the transaction committed), removes up to 8 witnesses older than
    /// `expiredBefore` that no other transaction holds, and takes the locks on `keys` in their order, in one round
    /// trip; the id, for the logs of a transaction whose connection is lost.
    static func identifyAndLock(
        _ keys: [Int64], witness: Data, expiredBefore: Data, _ connection: PostgresConnection, logger: Logger
    ) async throws -> TransactionIdentity {
        let rows = try await connection.rows("""
            WITH witness AS (INSERT INTO commit_witnesses (token) VALUES (\(witness)) RETURNING 1),
                expired AS (
                    DELETE FROM commit_witnesses WHERE token IN (
                        SELECT token FROM commit_witnesses WHERE token < \(expiredBefore) ORDER BY token LIMIT 8 FOR UPDATE SKIP LOCKED
                    ) RETURNING 1
                )
            SELECT txid_current(),
                (SELECT count(*) FROM (SELECT pg_advisory_xact_lock(key) FROM unnest(\(keys)::bigint[]) AS k (key)) AS locked),
                (SELECT count(*) FROM witness), (SELECT count(*) FROM expired)
            """, logger: logger)
        guard let row = rows.first else { throw StoreError(.unavailable, "PostgreSQL: txid_current() returned no row") }
        let (id, _, _, _) = try row.decode((Int64, Int64, Int64, Int64).self)
        return TransactionIdentity(id: id)
    }

    static func takeLocks(_ keys: [Int64], _ connection: PostgresConnection, logger: Logger) async throws {
        guard !keys.isEmpty else { return }
        // unnest returns the keys in array order, and the locks are taken row by row in that order.
        _ = try await connection.rows("SELECT pg_advisory_xact_lock(key) FROM unnest(\(keys)::bigint[]) AS k (key)", logger: logger)
    }

    // MARK: Events

    /// Applies one event atomically. A refused event rolls back its savepoint alone, or, without savepoints, throws
    /// `EventNeedsSavepoint`; any other failure throws, and the caller's transaction rolls back whole.
    mutating func applyAtomically(_ event: PlannedEvent) async throws -> EventOutcome {
        let key = keyedHash.ledgerKey(event.key.value)
        let checkedByInsert = event.key.check == .always
        if !checkedByInsert, try await isDuplicate(key, event.key.check) {
            if case .slidingWindow = event.key.check {
                try await connection.run(PostgresStatements.LedgerUpsert(key: key, processedAt: nowMicros), logger: logger)
            }
            if let profile = event.profileImport { return .imported(try await duplicateResult(profile)) }
            return .duplicate
        }
        var notes: [String] = []
        var imported: ProfileImportResult?
        var erased = false
        try await beginEvent()
        do {
            if checkedByInsert {
                let inserted = try await connection.run(PostgresStatements.LedgerInsertIfAbsent(key: key, processedAt: nowMicros), logger: logger)
                if inserted == 0 {
                    let outcome: EventOutcome
                    if let profile = event.profileImport { outcome = .imported(try await duplicateResult(profile)) } else { outcome = .duplicate }
                    try await endEvent()
                    return outcome
                }
            }
            if let record = event.linkedRecord, try await isUnchanged(record) {
                if !checkedByInsert { try await recordInLedger(key) }
                try await endEvent()
                return .unchanged
            }
            if try await isTombstoned(event.contactId) {
                let note = "contact \(event.contactId) was anonymized: nothing applied"
                if event.profileImport != nil { imported = ProfileImportResult(profileId: nil, failure: .anonymized(note)) }
                notes.append(note)
            } else {
                for operation in event.operations {
                    if case let .importProfile(profile) = operation {
                        imported = try await importProfile(profile)
                        if profile.then.contains(where: { if case .anonymize = $0 { true } else { false } }) { erased = true }
                        continue
                    }
                    if let note = try await apply(operation) { notes.append(note) }
                    if case .anonymize = operation { erased = true }
                }
            }
            if !checkedByInsert { try await recordInLedger(key) }
            try await endEvent()
        } catch {
            guard let refusal = Self.eventSpecificMessage(error) else {
                throw error
            }
            guard isolation == .savepointPerEvent else { throw EventNeedsSavepoint() }
            try await abandonEvent()
            return .failed(StoreError(.rejected, "\(event.type.rawValue) for \(event.contactId): \(refusal)"))
        }
        if erased { tombstonesExist = true }
        if let imported { return .imported(imported) }
        return .applied(notes: notes)
    }

    private func beginEvent() async throws {
        if isolation == .savepointPerEvent { try await connection.run("SAVEPOINT event", logger: logger) }
    }

    private func endEvent() async throws {
        if isolation == .savepointPerEvent { try await connection.run("RELEASE SAVEPOINT event", logger: logger) }
    }

    private func abandonEvent() async throws {
        try await connection.run("ROLLBACK TO SAVEPOINT event", logger: logger)
        try await connection.run("RELEASE SAVEPOINT event", logger: logger)
        // Locks taken after a savepoint go when it is rolled back to.
        heldLocks.keys = batchLocks
    }

    /// Thrown in `.sharedTransaction` mode when the database refused an event: the transaction must be rolled back
    /// and its events applied again with a savepoint each.
    struct EventNeedsSavepoint: Error {}

    /// The server's message when an error concerns this event's data alone (SQLSTATE class 22, data exception, e.g.
    /// a NUL character in a text; class 23, a constraint; class 54, a program limit, e.g. a value too large for an
    /// index entry); nil for anything else, which fails the whole batch.
    static func eventSpecificMessage(_ error: any Error) -> String? {
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return nil }
        guard state.hasPrefix("22") || state.hasPrefix("23") || state.hasPrefix("54") else { return nil }
        return error.serverInfo?[.message] ?? state
    }

    // MARK: Ledger

    func isDuplicate(_ key: Data, _ check: IdempotencyKey.Check) async throws -> Bool {
        let since: Int64
        switch check {
        case .recordOnly: return false
        case .always: since = Int64.min
        case let .since(instant), let .slidingWindow(instant): since = instant.microsecondsSinceEpoch
        }
        guard let processedAt = try await connection.first(PostgresStatements.LedgerProcessedAt(key: key), logger: logger) else { return false }
        return processedAt >= since
    }

    func recordInLedger(_ key: Data) async throws {
        try await connection.run(PostgresStatements.LedgerUpsert(key: key, processedAt: nowMicros), logger: logger)
    }

    func isUnchanged(_ record: LinkedRecord) async throws -> Bool {
        try await connection.first(
            "SELECT payload FROM linked_records WHERE kind = \(record.kind) AND record_id = \(record.id)", as: String.self, logger: logger
        ) == record.json
    }

    func isTombstoned(_ contactId: String) async throws -> Bool {
        guard tombstonesExist else { return false }
        return try await connection.first(
            "SELECT 1 FROM tombstones WHERE contact_hash = \(keyedHash.hash(contactId))", as: Int32.self, logger: logger
        ) != nil
    }

    // MARK: Profile imports

    /// The contact a profile import matches, if any. Of several, the oldest.
    func matchProfile(_ profile: ProfileImport) async throws -> String? {
        let list = Int64(profile.list)
        switch profile.match {
        case let .profileId(id):
            return try await exists(list: profile.list, contactId: id) ? id : nil
        case .email, .phone:
            let attribute = profile.matchAttribute!
            return try await connection.first("""
                SELECT a.contact_id FROM contact_attributes a JOIN contacts c USING (list_id, contact_id)
                WHERE a.list_id = \(list) AND a.name = \(attribute.name) AND lower(a.value) = lower(\(attribute.value.stringValue))
                ORDER BY c.created_at, c.contact_id LIMIT 1
                """, as: String.self, logger: logger)
        case let .field(name, value):
            return try await connection.first("""
                SELECT a.contact_id FROM contact_attributes a JOIN contacts c USING (list_id, contact_id)
                WHERE a.list_id = \(list) AND a.name = \(name) AND lower(a.value) = lower(\(value)) AND a.value = \(value)
                ORDER BY c.created_at, c.contact_id LIMIT 1
                """, as: String.self, logger: logger)
        }
    }

    /// Finds or creates the profile, writes its attributes, then applies the operations that follow to it.
    func importProfile(_ profile: ProfileImport) async throws -> ProfileImportResult {
        var contactId = try await findLocked { try await matchProfile(profile).map { [$0] } ?? [] }.first
        var created = false
        let list = Int64(profile.list)
        if contactId == nil {
            if case .profileId = profile.match {
                return ProfileImportResult(profileId: nil, failure: .noMatch("no profile with \(profile.match.description) in database \(profile.list)"))
            }
            if profile.updateOnly {
                return ProfileImportResult(profileId: nil, failure: .noMatch("no profile matches \(profile.match.description) in database \(profile.list), and update_only is set"))
            }
            try await connection.run("""
                INSERT INTO contacts (list_id, contact_id, email_subscribed, mobile_subscribed, created_at, updated_at)
                VALUES (\(list), \(profile.newContactId), \(profile.createWith.emailSubscribed), \(profile.createWith.mobileSubscribed),
                        \(nowMicros), \(nowMicros))
                ON CONFLICT (list_id, contact_id) DO NOTHING
                """, logger: logger)
            if let attribute = profile.matchAttribute { try await writeAttributes(list: profile.list, contactId: profile.newContactId, [attribute]) }
            contactId = profile.newContactId
            created = true
        }
        let id = contactId!
        try await writeAttributes(list: profile.list, contactId: id, profile.attributes)
        try await connection.run(PostgresStatements.ContactTouch(now: nowMicros, list: list, contactId: id), logger: logger)
        var notes: [String] = []
        for operation in profile.then {
            if let note = try await apply(operation.replacingContactId(profile.newContactId, with: id)) { notes.append(note) }
        }
        return ProfileImportResult(profileId: id, created: created, notes: notes)
    }

    /// A request applied before: the profile it matches now, nothing written.
    func duplicateResult(_ profile: ProfileImport) async throws -> ProfileImportResult {
        if let id = try await matchProfile(profile) { return ProfileImportResult(profileId: id, duplicate: true) }
        return ProfileImportResult(profileId: nil, duplicate: true, failure: .noMatch("no profile matches \(profile.match.description) in database \(profile.list)"))
    }

    // MARK: Operations

    /// Applies one operation; returns a note when it had nothing to act on.
    func apply(_ operation: StoreOperation) async throws -> String? {
        switch operation {
        case let .upsertContact(list, contactId, attributes, consent, createWith):
            if let defaults = createWith {
                try await connection.run(
                    PostgresStatements.ContactUpsert(list: Int64(list), contactId: contactId, defaults: defaults, now: nowMicros), logger: logger
                )
            } else {
                let changed = try await connection.run(
                    PostgresStatements.ContactTouch(now: nowMicros, list: Int64(list), contactId: contactId), logger: logger
                )
                if changed == 0 { return "update_contact: no contact \(contactId) in list \(list)" }
            }
            try await writeAttributes(list: list, contactId: contactId, attributes)
            if let consent {
                try await connection.run("""
                    INSERT INTO contact_consents (list_id, contact_id, channel, consented, updated_at)
                    VALUES (\(Int64(list)), \(contactId), \(consent.channel.rawValue), \(consent.consented), \(nowMicros))
                    ON CONFLICT (list_id, contact_id, channel) DO UPDATE SET consented = excluded.consented, updated_at = excluded.updated_at
                    """, logger: logger)
            }
            return nil

        case let .setAttribute(list, contactId, attribute):
            // One statement: it writes nothing when the contact does not exist.
            let written = try await connection.run(
                PostgresStatements.AttributesUpsert(list: list, contactId: contactId, attributes: [attribute]), logger: logger
            )
            if written == 0 { return "set_property: no contact \(contactId) in list \(list)" }
            return nil

        case let .addPurchase(list, contactId, row):
            // One statement on the common path; which of the two reasons left it unwritten is asked only then.
            let inserted = try await connection.run(PostgresStatements.PurchaseInsert(list: Int64(list), contactId: contactId, row: row), logger: logger)
            if inserted == 0 {
                guard try await exists(list: list, contactId: contactId) else { return "create_purchase_row: no contact \(contactId) in list \(list)" }
                return "create_purchase_row: transaction \(row.transactionId ?? "") is already recorded as \(row.status.rawValue)"
            }
            return nil

        case let .enterJourney(journey, contactId, at):
            let entered = try await connection.run(
                PostgresStatements.JourneyEnter(contactId: contactId, journey: Int64(journey), at: at.microsecondsSinceEpoch, now: nowMicros),
                logger: logger
            )
            guard entered == 0 else { return nil }
            // Nothing inserted: enrolled already (no note), blocked now in one of its lists (`temp_block_contact`), or
            // no contact.
            if try await connection.first(
                "SELECT EXISTS (SELECT 1 FROM journey_enrollments WHERE contact_id = \(contactId) AND journey_id = \(Int64(journey)))",
                as: Bool.self, logger: logger
            ) == true { return nil }
            let until = try await connection.first(
                "SELECT max(blocked_until) FROM contacts WHERE contact_id = \(contactId)", as: Int64?.self, logger: logger
            ) ?? nil
            if let until, until > nowMicros {
                return "enter_journey: contact \(contactId) is blocked until \(Timestamp(microsecondsSinceEpoch: until).rfc3339): not entered in journey \(journey)"
            }
            if try await !connection.exists(PostgresStatements.AnyContactExists(contactId: contactId), logger: logger) {
                return "enter_journey: no contact \(contactId)"
            }
            return nil

        case let .anonymize(list, selector):
            var ids = try await resolve(list: list, selector)
            // An erasure by id holds even where the contact is not (yet): its tombstone keeps a registration that
            // arrives later (reordered, replayed) from bringing the person back, and any other list is erased too.
            if ids.isEmpty, case let .contactId(id) = selector { ids = [id] }
            guard !ids.isEmpty else { return "anonymize_contact: no contact \(describe(selector)) in list \(list)" }
            for id in ids { try await anonymize(id) }
            return nil

        case let .block(list, selector, until):
            let ids = try await resolve(list: list, selector)
            guard !ids.isEmpty else { return "temp_block_contact: no contact \(describe(selector)) in list \(list)" }
            for id in ids {
                try await connection.run("""
                    UPDATE contacts SET blocked_until = greatest(coalesce(blocked_until, 0), \(until.microsecondsSinceEpoch)), updated_at = \(nowMicros)
                    WHERE list_id = \(Int64(list)) AND contact_id = \(id)
                    """, logger: logger)
            }
            return nil

        case let .mergeContact(list, contactId, attributes, asOf, defaults):
            try await connection.run(
                PostgresStatements.ContactUpsert(list: Int64(list), contactId: contactId, defaults: defaults, now: nowMicros), logger: logger
            )
            // The contact's row is locked by this transaction's advisory lock on its id: no other daemon writes
            // between this read and the write below.
            let newest = try await connection.first(
                "SELECT attributes_as_of FROM contacts WHERE list_id = \(Int64(list)) AND contact_id = \(contactId)", as: Int64?.self, logger: logger
            ) ?? nil
            if let newest, newest > asOf.microsecondsSinceEpoch { return nil } // a newer record already wrote its values
            try await writeAttributes(list: list, contactId: contactId, attributes)
            try await connection.run(
                "UPDATE contacts SET attributes_as_of = \(asOf.microsecondsSinceEpoch) WHERE list_id = \(Int64(list)) AND contact_id = \(contactId)",
                logger: logger
            )
            return nil

        case let .setEmailSubscription(list, contactId, subscribed, reason, asOf):
            // A change older than the one held is left out (`email_subscription_as_of`); ties go to the later arrival.
            let asOf = asOf?.microsecondsSinceEpoch
            let changed = try await connection.run("""
                UPDATE contacts SET email_subscribed = \(subscribed), email_unsubscribe_reason = \(subscribed ? nil : reason), updated_at = \(nowMicros),
                    email_subscription_as_of = coalesce(\(asOf)::bigint, email_subscription_as_of)
                WHERE list_id = \(Int64(list)) AND contact_id = \(contactId)
                    AND (\(asOf)::bigint IS NULL OR email_subscription_as_of IS NULL OR email_subscription_as_of <= \(asOf)::bigint)
                """, logger: logger)
            if changed == 0, try await !exists(list: list, contactId: contactId) { return "email subscription: no contact \(contactId) in list \(list)" }
            return nil

        case let .addActionRow(list, contactId, row):
            guard try await exists(list: list, contactId: contactId) else { return "action history: no contact \(contactId) in list \(list)" }
            try await connection.run("""
                INSERT INTO contact_actions (list_id, contact_id, action_key, action_type, campaign, action_page, fields, occurred_at)
                VALUES (\(Int64(list)), \(contactId), \(row.key), \(row.actionType), \(row.campaign), \(row.actionPage), \(row.fieldsJSON),
                        \(row.occurredAt.microsecondsSinceEpoch))
                ON CONFLICT DO NOTHING
                """, logger: logger)
            return nil

        case let .upsertRecord(record):
            let stored = try await connection.first(
                "SELECT generated_at FROM linked_records WHERE kind = \(record.kind) AND record_id = \(record.id)", as: Int64.self, logger: logger
            )
            if let stored, stored > record.generatedAt.microsecondsSinceEpoch {
                return "\(record.kind) \(record.id): a newer version is already stored"
            }
            try await connection.run("""
                INSERT INTO linked_records (kind, record_id, contact_id, event_id, generated_at, payload)
                VALUES (\(record.kind), \(record.id), \(record.contactId), \(record.eventId), \(record.generatedAt.microsecondsSinceEpoch), \(record.json))
                ON CONFLICT (kind, record_id) DO UPDATE SET contact_id = excluded.contact_id, event_id = excluded.event_id,
                    generated_at = excluded.generated_at, payload = excluded.payload
                """, logger: logger)
            try await connection.run(
                "DELETE FROM record_categories WHERE kind = \(record.kind) AND record_id = \(record.id)", logger: logger
            )
            for category in record.categories {
                try await connection.run("""
                    INSERT INTO record_categories (kind, record_id, category_id, name) VALUES (\(record.kind), \(record.id), \(category.id), \(category.name))
                    ON CONFLICT (kind, record_id, category_id) DO UPDATE SET name = excluded.name
                    """, logger: logger)
            }
            return nil

        case let .importProfile(profile):
            let result = try await importProfile(profile)
            return result.failure.map { failure in
                switch failure { case let .noMatch(text), let .anonymized(text): return text }
            } ?? (result.notes.isEmpty ? nil : result.notes.joined(separator: "; "))

        case let .recordRequest(record):
            try await connection.run("""
                INSERT INTO incoming_requests (event_id, source, endpoint_id, event_type, contact_id, received_at, record)
                VALUES (\(record.eventId), \(record.source), \(record.endpointId), \(record.eventType.rawValue), \(record.contactId),
                        \(record.receivedAt.microsecondsSinceEpoch), \(record.json))
                """, logger: logger)
            return nil
        }
    }

    func writeAttributes(list: Int, contactId: String, _ attributes: [AttributeValue]) async throws {
        guard !attributes.isEmpty else { return }
        try await connection.run(PostgresStatements.AttributesUpsert(list: list, contactId: contactId, attributes: attributes), logger: logger)
    }

    func exists(list: Int, contactId: String) async throws -> Bool {
        try await connection.exists(PostgresStatements.ContactExists(list: Int64(list), contactId: contactId), logger: logger)
    }

    func resolve(list: Int, _ selector: ContactSelector) async throws -> [String] {
        switch selector {
        case let .contactId(id):
            return try await exists(list: list, contactId: id) ? [id] : []
        case let .email(address):
            return try await findLocked {
                let rows = try await connection.rows("""
                    SELECT DISTINCT contact_id FROM contact_attributes
                    WHERE list_id = \(Int64(list)) AND name = 'email' AND lower(value) = lower(\(address.trimmingCharacters(in: .whitespaces)))
                    """, logger: logger)
                return try rows.map { try $0.decode(String.self) }
            }
        }
    }

    func describe(_ selector: ContactSelector) -> String {
        switch selector {
        case let .contactId(id): return id
        case .email: return "with that email"
        }
    }

    /// Erases every personal value of the contact in every list, keeps purchase amounts under an anonymous key,
    /// and leaves a tombstone (a keyed hash of the id, never the id).
    func anonymize(_ contactId: String) async throws {
        let hash = keyedHash.hash(contactId)
        let anonymousId = keyedHash.anonymousContactId(contactId)
        try await connection.run(
            "INSERT INTO tombstones (contact_hash, anonymized_at) VALUES (\(hash), \(nowMicros)) ON CONFLICT DO NOTHING", logger: logger
        )
        try await connection.run("DELETE FROM contact_attributes WHERE contact_id = \(contactId)", logger: logger)
        try await connection.run("DELETE FROM contact_consents WHERE contact_id = \(contactId)", logger: logger)
        try await connection.run("DELETE FROM journey_enrollments WHERE contact_id = \(contactId)", logger: logger)
        try await connection.run(
            "UPDATE purchases SET contact_id = \(anonymousId), transaction_id = NULL WHERE contact_id = \(contactId)", logger: logger
        )
        try await connection.run("DELETE FROM contacts WHERE contact_id = \(contactId)", logger: logger)
        try await connection.run("DELETE FROM incoming_requests WHERE contact_id = \(contactId)", logger: logger)
        try await connection.run("DELETE FROM contact_actions WHERE contact_id = \(contactId)", logger: logger)
        try await connection.run("""
            DELETE FROM record_categories WHERE (kind, record_id) IN (SELECT kind, record_id FROM linked_records WHERE contact_id = \(contactId))
            """, logger: logger)
        try await connection.run("DELETE FROM linked_records WHERE contact_id = \(contactId)", logger: logger)
    }
}

/// How the writer keeps each event atomic inside a transaction holding many.
enum EventIsolation: Sendable {
    /// A savepoint around every event: a refused event rolls back alone.
    case savepointPerEvent
    /// No savepoints: a refused event throws `EventNeedsSavepoint`, and the transaction is redone with savepoints.
    case sharedTransaction
}
