import CRMCore
import Crypto
import Foundation
import GRDB

/// Applies planned events inside an open write transaction with cached prepared statements, each event atomic.
///
/// Events are made atomic in one of two ways (`EventIsolation`): a savepoint each, or none at all, in which case
/// an event the database refuses aborts the whole transaction (`EventNeedsSavepoint`) and the caller runs the
/// batch again with savepoints. Refusals are rare and savepoints are not free (SQLite copies every page an event
/// touches into its undo journal), so the store tries without first.
struct SQLiteOperationWriter {
    let db: Database
    let now: Timestamp
    let keyedHash: KeyedHash
    let isolation: EventIsolation
    /// Set when an anonymization ran, so the store can checkpoint the WAL after commit.
    private(set) var erasedPersonalData = false
    /// The recent ledger keys as this transaction sees them, and the ones it recorded (`RecentLedger`).
    private(set) var ledger: LedgerTransaction
    /// Whether any tombstone exists: read once per batch, so a store that never anonymized skips the per-event
    /// lookup (and its hash).
    private var tombstonesExist: Bool

    /// The statements of the common path, run through SQLite's C API.
    private let hot: HotStatements

    init(db: Database, now: Timestamp, keyedHash: KeyedHash, ledger: LedgerTransaction, isolation: EventIsolation = .savepointPerEvent) throws {
        self.db = db
        self.ledger = ledger
        self.now = now
        self.keyedHash = keyedHash
        self.isolation = isolation
        tombstonesExist = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM tombstones)") ?? true
        hot = try HotStatements(db)
    }

    /// Prepared once per connection (GRDB caches them), looked up once per transaction.
    struct HotStatements {
        let savepoint, release, rollback: HotStatement
        let ledgerProcessedAt: HotStatement
        let contactExists, contactUpsert, contactTouch, attributeUpsert, purchaseInsert: HotStatement
        let consentUpsert, contactInAnyList, journeyEnter, journeyEnterKnownContact, journeyEnrolled, contactBlock, contactBlockAnyList, blockedUntil: HotStatement
        let requestInsert: HotStatement

        init(_ db: Database) throws {
            savepoint = try HotStatement(db, "SAVEPOINT event")
            release = try HotStatement(db, "RELEASE SAVEPOINT event")
            rollback = try HotStatement(db, "ROLLBACK TO SAVEPOINT event")
            // The ledger is two tables (`RecentLedger`): the recent keys are looked up in memory, the others here; a
            // key may be in both, and its latest time counts.
            ledgerProcessedAt = try HotStatement(db, "SELECT processed_at FROM ledger WHERE key = ?")
            contactExists = try HotStatement(db, "SELECT 1 FROM contacts WHERE list_id = ? AND contact_id = ?")
            contactUpsert = try HotStatement(db, """
                INSERT INTO contacts (list_id, contact_id, email_subscribed, mobile_subscribed, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (list_id, contact_id) DO UPDATE SET updated_at = excluded.updated_at
                """)
            contactTouch = try HotStatement(db, "UPDATE contacts SET updated_at = ? WHERE list_id = ? AND contact_id = ?")
            attributeUpsert = try HotStatement(db, SQLiteOperationWriter.attributeUpsertSQL)
            // The contact's existence is checked by the insert itself: one statement a purchase instead of two
            // (8 of the 12 default types are purchases). Nothing inserted is then told apart by a second look.
            purchaseInsert = try HotStatement(db, """
                INSERT OR IGNORE INTO purchases
                    (list_id, contact_id, kind, status, amount, currency, transaction_id, vendor, payment_type, occurred_at)
                SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10
                WHERE EXISTS (SELECT 1 FROM contacts WHERE list_id = ?1 AND contact_id = ?2)
                """)
            consentUpsert = try HotStatement(db, """
                INSERT INTO contact_consents (list_id, contact_id, channel, consented, updated_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (list_id, contact_id, channel) DO UPDATE SET consented = excluded.consented, updated_at = excluded.updated_at
                """)
            contactInAnyList = try HotStatement(db, SQLiteOperationWriter.contactInAnyListSQL)
            // Like the purchase insert, it checks the contact itself; only when nothing was inserted does a second
            // look tell a missing contact from one already enrolled. (The `WHERE` also keeps SQLite from reading
            // `ON CONFLICT` as part of the `SELECT`.)
            journeyEnter = try HotStatement(db, SQLiteOperationWriter.journeyEnterSQL)
            // When an operation before it in the same event created or found the contact (a registration), only
            // its block is checked.
            journeyEnterKnownContact = try HotStatement(db, SQLiteOperationWriter.journeyEnterKnownContactSQL)
            journeyEnrolled = try HotStatement(db, "SELECT 1 FROM journey_enrollments WHERE contact_id = ? AND journey_id = ?")
            contactBlock = try HotStatement(db, """
                UPDATE contacts SET blocked_until = max(coalesce(blocked_until, 0), ?), updated_at = ?
                WHERE list_id = ? AND contact_id = ?
                """)
            // The latest block of a contact over all its lists (v13), which journey entries look up by id alone.
            contactBlockAnyList = try HotStatement(db, """
                INSERT INTO contact_blocks (contact_id, blocked_until) VALUES (?1, ?2)
                ON CONFLICT (contact_id) DO UPDATE SET blocked_until = max(blocked_until, excluded.blocked_until)
                """)
            blockedUntil = try HotStatement(db, "SELECT blocked_until FROM contact_blocks WHERE contact_id = ?")
            requestInsert = try HotStatement(db, """
                INSERT INTO incoming_requests (event_id, source, endpoint_id, event_type, contact_id, received_at, record)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
        }
    }

    /// Applies one event atomically. A refused event (a constraint) rolls back its savepoint alone, or, without
    /// savepoints, throws `EventNeedsSavepoint`; a busy or broken database throws, and the caller's transaction
    /// rolls back whole. `key` is the event's ledger key (`KeyedHash.ledgerKey` of `event.key`).
    mutating func applyAtomically(_ event: PlannedEvent, ledgerKey key: LedgerKey) throws -> EventOutcome {
        if try isDuplicate(key, event.key.check) {
            if case .slidingWindow = event.key.check {
                // The window runs from the last request that carried the key.
                recordInLedger(key)
            }
            if let profile = event.profileImport { return .imported(try duplicateResult(profile)) }
            return .duplicate
        }
        var notes: [String] = []
        var imported: ProfileImportResult?
        var erased = false
        try beginEvent()
        do {
            if let record = event.linkedRecord, try isUnchanged(record) {
                recordInLedger(key)
                try endEvent()
                return .unchanged
            }
            if try isTombstoned(event.contactId) {
                let note = "contact \(event.contactId) was anonymized: nothing applied"
                if event.profileImport != nil { imported = ProfileImportResult(profileId: nil, failure: .anonymized(note)) }
                notes.append(note)
            } else {
                // The contact an operation of this event created (or found) so far: later ones need not look for it.
                var knownContact: String?
                for operation in event.operations {
                    if case let .importProfile(profile) = operation {
                        let result = try importProfile(profile)
                        imported = result
                        knownContact = Self.knownContact(after: operation, knownContact)
                        if profile.then.contains(where: { if case .anonymize = $0 { true } else { false } }) { erased = true }
                        continue
                    }
                    if let note = try apply(operation, knownContact: knownContact) { notes.append(note) }
                    knownContact = Self.knownContact(after: operation, knownContact)
                    if case .anonymize = operation { erased = true }
                }
            }
            recordInLedger(key)
            try endEvent()
        } catch {
            guard let databaseError = error as? DatabaseError, Self.isEventSpecific(databaseError) else {
                if isolation == .savepointPerEvent { try abandonEvent() }
                throw error
            }
            guard isolation == .savepointPerEvent else { throw EventNeedsSavepoint() }
            try abandonEvent()
            return .failed(StoreError(.rejected, "\(event.type.rawValue) for \(event.contactId): \(databaseError.message ?? "\(databaseError)")"))
        }
        if erased {
            erasedPersonalData = true
            tombstonesExist = true
        }
        if let imported { return .imported(imported) }
        return .applied(notes: notes)
    }

    private mutating func beginEvent() throws {
        ledger.beginEvent()
        if isolation == .savepointPerEvent { try hot.savepoint.execute() }
    }

    private mutating func endEvent() throws {
        if isolation == .savepointPerEvent { try hot.release.execute() }
        ledger.endEvent()
    }

    /// Undoes what the event wrote (savepoint mode only).
    private mutating func abandonEvent() throws {
        try hot.rollback.execute()
        try hot.release.execute()
        ledger.abandonEvent()
    }

    // MARK: Profile imports

    /// The contact a profile import matches, if any. Of several, the oldest.
    func matchProfile(_ profile: ProfileImport) throws -> String? {
        let statement: Statement
        let arguments: StatementArguments
        switch profile.match {
        case let .profileId(id):
            return try exists(list: profile.list, contactId: id) ? id : nil
        case .email, .phone:
            statement = try db.cachedStatement(sql: Self.profileByAttributeSQL)
            let attribute = profile.matchAttribute!
            arguments = [profile.list, attribute.name, attribute.value.stringValue]
        case let .field(name, value):
            statement = try db.cachedStatement(sql: Self.profileByExactAttributeSQL)
            arguments = [profile.list, name, value, value]
        }
        return try String.fetchOne(statement, arguments: arguments)
    }

    /// Finds or creates the profile, writes its attributes, then applies the operations that follow to it.
    func importProfile(_ profile: ProfileImport) throws -> ProfileImportResult {
        var contactId = try matchProfile(profile)
        var created = false
        if contactId == nil {
            if case .profileId = profile.match {
                return ProfileImportResult(profileId: nil, failure: .noMatch("no profile with \(profile.match.description) in database \(profile.list)"))
            }
            if profile.updateOnly {
                return ProfileImportResult(profileId: nil, failure: .noMatch("no profile matches \(profile.match.description) in database \(profile.list), and update_only is set"))
            }
            try db.cachedStatement(sql: """
                INSERT INTO contacts (list_id, contact_id, email_subscribed, mobile_subscribed, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (list_id, contact_id) DO NOTHING
                """).execute(arguments: [
                    profile.list, profile.newContactId, profile.createWith.emailSubscribed, profile.createWith.mobileSubscribed,
                    now.microsecondsSinceEpoch, now.microsecondsSinceEpoch,
                ])
            if let attribute = profile.matchAttribute { try writeAttribute(list: profile.list, contactId: profile.newContactId, attribute) }
            contactId = profile.newContactId
            created = true
        }
        let id = contactId!
        for attribute in profile.attributes { try writeAttribute(list: profile.list, contactId: id, attribute) }
        try db.cachedStatement(sql: "UPDATE contacts SET updated_at = ? WHERE list_id = ? AND contact_id = ?")
            .execute(arguments: [now.microsecondsSinceEpoch, profile.list, id])
        var notes: [String] = []
        var knownContact: String? = id
        for operation in profile.then {
            let operation = operation.replacingContactId(profile.newContactId, with: id)
            if let note = try apply(operation, knownContact: knownContact) { notes.append(note) }
            knownContact = Self.knownContact(after: operation, knownContact)
        }
        return ProfileImportResult(profileId: id, created: created, notes: notes)
    }

    /// A request applied before: the profile it matches now, nothing written.
    func duplicateResult(_ profile: ProfileImport) throws -> ProfileImportResult {
        if let id = try matchProfile(profile) { return ProfileImportResult(profileId: id, duplicate: true) }
        return ProfileImportResult(profileId: nil, duplicate: true, failure: .noMatch("no profile matches \(profile.match.description) in database \(profile.list)"))
    }

    /// Errors that concern this event's data alone; anything else fails the whole batch.
    /// Thrown in `.sharedTransaction` mode when the database refused an event: the transaction must be rolled
    /// back and its events applied again with a savepoint each.
    struct EventNeedsSavepoint: Error {}

    static func isEventSpecific(_ error: DatabaseError) -> Bool {
        switch error.resultCode {
        case .SQLITE_CONSTRAINT, .SQLITE_MISMATCH, .SQLITE_TOOBIG, .SQLITE_RANGE: return true
        default: return false
        }
    }

    // MARK: Ledger

    /// Whether the key was processed (since the check's time): first among the recent keys, in memory, then in
    /// `ledger`.
    func isDuplicate(_ key: LedgerKey, _ check: IdempotencyKey.Check) throws -> Bool {
        let since: Int64
        switch check {
        case .recordOnly: return false
        case .always: since = Int64.min
        case let .since(instant), let .slidingWindow(instant): since = instant.microsecondsSinceEpoch
        }
        if let recent = ledger.processedAt(key), recent >= since { return true }
        guard ledger.mayBeInLedger(key), let processedAt = try hot.ledgerProcessedAt.fetchInt64({ $0.bind(key) }) else { return false }
        return processedAt >= since
    }

    /// Records the key with `processed_at = now`; its row is appended to `ledger_recent` with the transaction's
    /// others, at its end.
    mutating func recordInLedger(_ key: LedgerKey) {
        ledger.record(key, processedAt: now.microsecondsSinceEpoch)
    }

    /// The stored version of the record is this very payload.
    func isUnchanged(_ record: LinkedRecord) throws -> Bool {
        let statement = try db.cachedStatement(sql: "SELECT payload FROM linked_records WHERE kind = ? AND record_id = ?")
        return try String.fetchOne(statement, arguments: [record.kind, record.id]) == record.json
    }

    func isTombstoned(_ contactId: String) throws -> Bool {
        guard tombstonesExist else { return false }
        let statement = try db.cachedStatement(sql: "SELECT 1 FROM tombstones WHERE contact_hash = ?")
        return try Bool.fetchOne(statement, arguments: [keyedHash.hash(contactId)]) != nil
    }

    // MARK: Operations

    /// The contact known to exist in some list after `operation`, for the event's later operations: the one a
    /// creating upsert wrote, or the one known before; none after an erasure (an anonymization, or a profile
    /// import whose operations may have erased it).
    static func knownContact(after operation: StoreOperation, _ known: String?) -> String? {
        switch operation {
        case let .upsertContact(_, contactId, _, _, createWith) where createWith != nil: return contactId
        case .anonymize, .importProfile: return nil
        default: return known
        }
    }

    /// Applies one operation; returns a note when it had nothing to act on. `knownContact`: a contact that an
    /// earlier operation of the same event created or found, and none erased since, so it exists in some list.
    func apply(_ operation: StoreOperation, knownContact: String? = nil) throws -> String? {
        switch operation {
        case let .upsertContact(list, contactId, attributes, consent, createWith):
            if let defaults = createWith {
                try hot.contactUpsert.execute {
                    $0.bind(list)
                    $0.bind(contactId)
                    $0.bind(defaults.emailSubscribed)
                    $0.bind(defaults.mobileSubscribed)
                    $0.bind(now.microsecondsSinceEpoch)
                    $0.bind(now.microsecondsSinceEpoch)
                }
            } else {
                let changed = try hot.contactTouch.execute {
                    $0.bind(now.microsecondsSinceEpoch)
                    $0.bind(list)
                    $0.bind(contactId)
                }
                if changed == 0 { return "update_contact: no contact \(contactId) in list \(list)" }
            }
            for attribute in attributes { try writeAttribute(list: list, contactId: contactId, attribute) }
            if let consent {
                try hot.consentUpsert.execute {
                    $0.bind(list)
                    $0.bind(contactId)
                    $0.bind(consent.channel.rawValue)
                    $0.bind(consent.consented)
                    $0.bind(now.microsecondsSinceEpoch)
                }
            }
            return nil

        case let .setAttribute(list, contactId, attribute):
            guard try exists(list: list, contactId: contactId) else { return "set_property: no contact \(contactId) in list \(list)" }
            try writeAttribute(list: list, contactId: contactId, attribute)
            return nil

        case let .addPurchase(list, contactId, row):
            let inserted = try hot.purchaseInsert.execute {
                $0.bind(list)
                $0.bind(contactId)
                $0.bind(row.kind.rawValue)
                $0.bind(row.status.rawValue)
                $0.bind(row.amount.text)
                $0.bind(row.currency)
                $0.bind(row.transactionId)
                $0.bind(row.vendor)
                $0.bind(row.paymentType)
                $0.bind(row.occurredAt.microsecondsSinceEpoch)
            }
            if inserted == 0 {
                guard try exists(list: list, contactId: contactId) else { return "create_purchase_row: no contact \(contactId) in list \(list)" }
                return "create_purchase_row: transaction \(row.transactionId ?? "") is already recorded as \(row.status.rawValue)"
            }
            return nil

        case let .enterJourney(journey, contactId, at):
            let known = contactId == knownContact
            let entered = try (known ? hot.journeyEnterKnownContact : hot.journeyEnter).execute {
                $0.bind(contactId)
                $0.bind(journey)
                $0.bind(at.microsecondsSinceEpoch)
                $0.bind(now.microsecondsSinceEpoch)
            }
            guard entered == 0 else { return nil }
            // Nothing inserted: enrolled already (no note), blocked, or no contact.
            if try hot.journeyEnrolled.exists({ $0.bind(contactId); $0.bind(journey) }) { return nil }
            if let note = try blockedNote(contactId, journey: journey) { return note }
            if !known, try !hot.contactInAnyList.exists({ $0.bind(contactId) }) { return "enter_journey: no contact \(contactId)" }
            return nil

        case let .anonymize(list, selector):
            var ids = try resolve(list: list, selector)
            // An erasure by id holds even where the contact is not (yet): its tombstone keeps a registration that
            // arrives later (reordered, replayed) from bringing the person back, and any other list is erased too.
            if ids.isEmpty, case let .contactId(id) = selector { ids = [id] }
            guard !ids.isEmpty else { return "anonymize_contact: no contact \(describe(selector)) in list \(list)" }
            for id in ids { try anonymize(id) }
            return nil

        case let .block(list, selector, until):
            let missing = "temp_block_contact: no contact \(describe(selector)) in list \(list)"
            func block(_ id: String) throws -> Int {
                let blocked = try hot.contactBlock.execute {
                    $0.bind(until.microsecondsSinceEpoch)
                    $0.bind(now.microsecondsSinceEpoch)
                    $0.bind(list)
                    $0.bind(id)
                }
                if blocked > 0 {
                    _ = try hot.contactBlockAnyList.execute {
                        $0.bind(id)
                        $0.bind(until.microsecondsSinceEpoch)
                    }
                }
                return blocked
            }
            // By id, the update alone tells whether the contact exists: one statement instead of two.
            if case let .contactId(id) = selector { return try block(id) == 0 ? missing : nil }
            let ids = try resolve(list: list, selector)
            guard !ids.isEmpty else { return missing }
            for id in ids { _ = try block(id) }
            return nil

        case let .mergeContact(list, contactId, attributes, asOf, defaults):
            try db.cachedStatement(sql: """
                INSERT INTO contacts (list_id, contact_id, email_subscribed, mobile_subscribed, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (list_id, contact_id) DO UPDATE SET updated_at = excluded.updated_at
                """).execute(arguments: [
                    list, contactId, defaults.emailSubscribed, defaults.mobileSubscribed,
                    now.microsecondsSinceEpoch, now.microsecondsSinceEpoch,
                ])
            let newest = try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT attributes_as_of FROM contacts WHERE list_id = ? AND contact_id = ?"),
                arguments: [list, contactId]
            )
            if let newest, newest > asOf.microsecondsSinceEpoch { return nil } // a newer record already wrote its values
            for attribute in attributes { try writeAttribute(list: list, contactId: contactId, attribute) }
            try db.cachedStatement(sql: "UPDATE contacts SET attributes_as_of = ? WHERE list_id = ? AND contact_id = ?")
                .execute(arguments: [asOf.microsecondsSinceEpoch, list, contactId])
            return nil

        case let .setEmailSubscription(list, contactId, subscribed, reason, asOf):
            // A change older than the one held is left out (`email_subscription_as_of`); ties go to the later arrival.
            let asOf = asOf?.microsecondsSinceEpoch
            try db.cachedStatement(sql: """
                UPDATE contacts SET email_subscribed = ?1, email_unsubscribe_reason = ?2, updated_at = ?3,
                    email_subscription_as_of = coalesce(?4, email_subscription_as_of)
                WHERE list_id = ?5 AND contact_id = ?6 AND (?4 IS NULL OR email_subscription_as_of IS NULL OR email_subscription_as_of <= ?4)
                """).execute(arguments: [subscribed, subscribed ? nil : reason, now.microsecondsSinceEpoch, asOf, list, contactId])
            if db.changesCount == 0, try !exists(list: list, contactId: contactId) { return "email subscription: no contact \(contactId) in list \(list)" }
            return nil

        case let .addActionRow(list, contactId, row):
            guard try exists(list: list, contactId: contactId) else { return "action history: no contact \(contactId) in list \(list)" }
            try db.cachedStatement(sql: """
                INSERT OR IGNORE INTO contact_actions (list_id, contact_id, action_key, action_type, campaign, action_page, fields, occurred_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [
                    list, contactId, row.key, row.actionType, row.campaign, row.actionPage, row.fieldsJSON, row.occurredAt.microsecondsSinceEpoch,
                ])
            return nil

        case let .upsertRecord(record):
            let stored = try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT generated_at FROM linked_records WHERE kind = ? AND record_id = ?"), arguments: [record.kind, record.id]
            )
            if let stored, stored > record.generatedAt.microsecondsSinceEpoch {
                return "\(record.kind) \(record.id): a newer version is already stored"
            }
            try db.cachedStatement(sql: """
                INSERT INTO linked_records (kind, record_id, contact_id, event_id, generated_at, payload) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (kind, record_id) DO UPDATE SET contact_id = excluded.contact_id, event_id = excluded.event_id,
                    generated_at = excluded.generated_at, payload = excluded.payload
                """).execute(arguments: [record.kind, record.id, record.contactId, record.eventId, record.generatedAt.microsecondsSinceEpoch, record.json])
            try db.cachedStatement(sql: "DELETE FROM record_categories WHERE kind = ? AND record_id = ?").execute(arguments: [record.kind, record.id])
            for category in record.categories {
                try db.cachedStatement(sql: "INSERT OR REPLACE INTO record_categories (kind, record_id, category_id, name) VALUES (?, ?, ?, ?)")
                    .execute(arguments: [record.kind, record.id, category.id, category.name])
            }
            return nil

        case let .importProfile(profile):
            let result = try importProfile(profile)
            return result.failure.map { failure in
                switch failure { case let .noMatch(text), let .anonymized(text): return text }
            } ?? (result.notes.isEmpty ? nil : result.notes.joined(separator: "; "))

        case let .recordRequest(record):
            try hot.requestInsert.execute {
                $0.bind(record.eventId)
                $0.bind(record.source)
                $0.bind(record.endpointId)
                $0.bind(record.eventType.rawValue)
                $0.bind(record.contactId)
                $0.bind(record.receivedAt.microsecondsSinceEpoch)
                $0.bind(record.json)
            }
            return nil
        }
    }

    func writeAttribute(list: Int, contactId: String, _ attribute: AttributeValue) throws {
        let (kind, value) = AttributeEncoding.encode(attribute.value)
        try hot.attributeUpsert.execute {
            $0.bind(list)
            $0.bind(contactId)
            $0.bind(attribute.name)
            $0.bind(kind)
            $0.bind(value)
        }
    }

    /// The note of a journey entry left out because the contact is blocked now in one of its lists; nil when it is
    /// not. Asked only when nothing was inserted and the contact is not enrolled already.
    func blockedNote(_ contactId: String, journey: Int) throws -> String? {
        guard let until = try hot.blockedUntil.fetchInt64({ $0.bind(contactId) }), until > now.microsecondsSinceEpoch else { return nil }
        return "enter_journey: contact \(contactId) is blocked until \(Timestamp(microsecondsSinceEpoch: until).rfc3339): not entered in journey \(journey)"
    }

    func exists(list: Int, contactId: String) throws -> Bool {
        try hot.contactExists.exists {
            $0.bind(list)
            $0.bind(contactId)
        }
    }

    func resolve(list: Int, _ selector: ContactSelector) throws -> [String] {
        switch selector {
        case let .contactId(id):
            return try exists(list: list, contactId: id) ? [id] : []
        case let .email(address):
            let statement = try db.cachedStatement(sql: Self.contactsByEmailSQL)
            return try String.fetchAll(statement, arguments: [list, address.trimmingCharacters(in: .whitespaces)])
        }
    }

    /// Writes attribute `?3` of contact `?2` in list `?1` (`?4` its kind, `?5` its value). An attribute that already
    /// has this kind and value is left alone: an update naming `value` would delete and re-insert its entry in the
    /// index of values, dirtying a page, even with the value unchanged.
    static let attributeUpsertSQL = """
        INSERT INTO contact_attributes (list_id, contact_id, name, kind, value) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (list_id, contact_id, name) DO UPDATE SET kind = excluded.kind, value = excluded.value
        WHERE kind IS NOT excluded.kind OR value IS NOT excluded.value
        """

    // A contact in any list, and erasing a contact in every list. `contacts`, `contact_attributes`,
    // `contact_consents` and `purchases` have no index on `contact_id` alone (migrations v9 and v10: every row
    // written paid for one, and only erasure and these checks read it). Their lists are found by seeking the
    // leading `list_id` once per list (a loose index scan: SQLite skips ahead by itself only with statistics this
    // database does not keep), then each list's rows by `(list_id, contact_id)`. Every list holding a row is found,
    // whether or not the contact has a `contacts` row there. `ErasureIndexTests` checks the query plans.

    /// The distinct `list_id`s of `table` as `lists(id)`, ending with one NULL; one index seek each.
    static func listsOf(_ table: String) -> String {
        """
        WITH RECURSIVE lists(id) AS (
            SELECT min(list_id) FROM \(table)
            UNION ALL
            SELECT (SELECT min(list_id) FROM \(table) WHERE list_id > lists.id) FROM lists WHERE lists.id IS NOT NULL
        )
        """
    }
    /// One row if contact `?1` is in any list.
    static let contactInAnyListSQL = listsOf("contacts") + """

        SELECT 1 FROM lists JOIN contacts ON contacts.list_id = lists.id AND contacts.contact_id = ? LIMIT 1
        """
    /// Enrolls contact `?1` in journey `?2` at `?3` if the contact is in any list, not blocked now (`?4`:
    /// `temp_block_contact`, kept by id in `contact_blocks`), and not enrolled yet.
    static let journeyEnterSQL = listsOf("contacts") + """

        INSERT INTO journey_enrollments (contact_id, journey_id, entered_at)
        SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM lists JOIN contacts ON contacts.list_id = lists.id AND contacts.contact_id = ?1)
            AND NOT EXISTS (SELECT 1 FROM contact_blocks WHERE contact_id = ?1 AND blocked_until > ?4)
        ON CONFLICT (contact_id, journey_id) DO NOTHING
        """
    /// `journeyEnterSQL` for a contact known to exist: not blocked now (`?4`), and not enrolled yet. One seek in
    /// `contact_blocks`, which holds only contacts ever blocked (a pass over the lists, as above, cost a registration
    /// about a tenth more CPU in `crm-ingest ingest`).
    static let journeyEnterKnownContactSQL = """
        INSERT INTO journey_enrollments (contact_id, journey_id, entered_at)
        SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM contact_blocks WHERE contact_id = ?1 AND blocked_until > ?4)
        ON CONFLICT (contact_id, journey_id) DO NOTHING
        """
    /// The lists contact `?1` is in, in order.
    static let listsOfContactSQL = listsOf("contacts") + """

        SELECT contacts.list_id FROM lists JOIN contacts ON contacts.list_id = lists.id AND contacts.contact_id = ? ORDER BY contacts.list_id
        """
    /// Deletes contact `?1` from every list.
    static let eraseContactsSQL = listsOf("contacts") + """

        DELETE FROM contacts WHERE list_id IN (SELECT id FROM lists WHERE id IS NOT NULL) AND contact_id = ?
        """
    /// Deletes every attribute of contact `?1`, in every list.
    static let eraseAttributesSQL = listsOf("contact_attributes") + """

        DELETE FROM contact_attributes WHERE list_id IN (SELECT id FROM lists WHERE id IS NOT NULL) AND contact_id = ?
        """
    /// Deletes every consent of contact `?1`, in every list.
    static let eraseConsentsSQL = listsOf("contact_consents") + """

        DELETE FROM contact_consents WHERE list_id IN (SELECT id FROM lists WHERE id IS NOT NULL) AND contact_id = ?
        """
    /// Moves every purchase of contact `?2`, in every list, to the anonymous id `?1`, without its transaction id.
    static let anonymizePurchasesSQL = listsOf("purchases") + """

        UPDATE purchases SET contact_id = ?, transaction_id = NULL
        WHERE list_id IN (SELECT id FROM lists WHERE id IS NOT NULL) AND contact_id = ?
        """

    // Lookups by an attribute's value. Each seeks `contact_attributes_by_name_value` (migration v8) on
    // `name, lower(value), list_id`; `AttributeIndexTests` checks their query plans.

    /// The contacts of a list (`?1`) whose email is `?2`, ignoring case.
    static let contactsByEmailSQL = """
        SELECT DISTINCT contact_id FROM contact_attributes WHERE list_id = ? AND name = 'email' AND lower(value) = lower(?)
        """
    /// The oldest contact of a list (`?1`) whose attribute `?2` is `?3`, ignoring case.
    static let profileByAttributeSQL = """
        SELECT a.contact_id FROM contact_attributes a JOIN contacts c USING (list_id, contact_id)
        WHERE a.list_id = ? AND a.name = ? AND lower(a.value) = lower(?)
        ORDER BY c.created_at, c.contact_id LIMIT 1
        """
    /// The oldest contact of a list (`?1`) whose attribute `?2` is exactly `?4` (`?3` the same value, for the index).
    /// The `+` keeps `a.value = ?` out of the planner's choice: with it there, SQLite read the list by primary key.
    static let profileByExactAttributeSQL = """
        SELECT a.contact_id FROM contact_attributes a JOIN contacts c USING (list_id, contact_id)
        WHERE a.list_id = ? AND a.name = ? AND lower(a.value) = lower(?) AND +a.value = ?
        ORDER BY c.created_at, c.contact_id LIMIT 1
        """

    func describe(_ selector: ContactSelector) -> String {
        switch selector {
        case let .contactId(id): return id
        case .email: return "with that email"
        }
    }

    /// Erases every personal value of the contact in every list, keeps purchase amounts under an anonymous key,
    /// and leaves a tombstone (a keyed hash of the id, never the id).
    func anonymize(_ contactId: String) throws {
        let hash = keyedHash.hash(contactId)
        let anonymousId = keyedHash.anonymousContactId(contactId)
        let arguments: StatementArguments = [contactId]
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO tombstones (contact_hash, anonymized_at) VALUES (?, ?)")
            .execute(arguments: [hash, now.microsecondsSinceEpoch])
        try db.cachedStatement(sql: Self.eraseAttributesSQL).execute(arguments: arguments)
        try db.cachedStatement(sql: Self.eraseConsentsSQL).execute(arguments: arguments)
        try db.cachedStatement(sql: "DELETE FROM journey_enrollments WHERE contact_id = ?").execute(arguments: arguments)
        try db.cachedStatement(sql: "DELETE FROM contact_blocks WHERE contact_id = ?").execute(arguments: arguments)
        try db.cachedStatement(sql: Self.anonymizePurchasesSQL).execute(arguments: [anonymousId, contactId])
        try db.cachedStatement(sql: Self.eraseContactsSQL).execute(arguments: arguments)
        try db.cachedStatement(sql: "DELETE FROM incoming_requests WHERE contact_id = ?").execute(arguments: arguments)
        try db.cachedStatement(sql: "DELETE FROM contact_actions WHERE contact_id = ?").execute(arguments: arguments)
        try db.cachedStatement(sql: """
            DELETE FROM record_categories WHERE (kind, record_id) IN (SELECT kind, record_id FROM linked_records WHERE contact_id = ?)
            """).execute(arguments: arguments)
        try db.cachedStatement(sql: "DELETE FROM linked_records WHERE contact_id = ?").execute(arguments: arguments)
    }
}

/// How the writer keeps each event atomic inside a transaction holding many.
enum EventIsolation: Sendable {
    /// A savepoint around every event: a refused event rolls back alone.
    case savepointPerEvent
    /// No savepoints: a refused event throws `EventNeedsSavepoint`, and the transaction is redone with savepoints.
    case sharedTransaction
}
