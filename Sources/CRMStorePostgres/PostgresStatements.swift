import CRMCore
import Foundation
import PostgresNIO

// The statements of the common path, prepared once per connection by postgres-nio (by type name) and executed with
// binds only. The rest of the writer's statements are rarer and go through `PostgresQuery`.

/// A prepared statement that changes rows and returns one row per row it changed (its SQL ends in `RETURNING 1`):
/// counting rows is how a prepared statement tells what it did (postgres-nio reads the command tag of a prepared
/// statement only once every row was read, and traps otherwise).
protocol PostgresCommand: PostgresPreparedStatement where Row == Int32 {}

extension PostgresCommand {
    func decodeRow(_ row: PostgresRow) throws -> Int32 { 1 }
}

extension PostgresConnection {
    /// Runs a prepared command; the number of rows it inserted, updated or deleted.
    @discardableResult
    func run<Command: PostgresCommand>(_ command: Command, logger: Logger) async throws -> Int {
        var count = 0
        for try await _ in try await execute(command, logger: logger) { count += 1 }
        return count
    }

    /// Runs a query; the number of rows it inserted, updated or deleted.
    @discardableResult
    func run(_ query: PostgresQuery, logger: Logger) async throws -> Int {
        try await self.query(query, logger: logger).get().metadata.rows ?? 0
    }

    /// The first column of the first row, if any.
    func first<Value: PostgresDecodable>(_ query: PostgresQuery, as type: Value.Type, logger: Logger) async throws -> Value? {
        guard let row = try await self.query(query, logger: logger).get().rows.first else { return nil }
        return try row.decode(Value.self)
    }

    /// Every row of a query.
    func rows(_ query: PostgresQuery, logger: Logger) async throws -> [PostgresRow] {
        try await self.query(query, logger: logger).get().rows
    }
}

enum PostgresStatements {
    struct LedgerInsertIfAbsent: PostgresCommand {
        static let sql = "INSERT INTO ledger (key, processed_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING 1"
        var key: Data
        var processedAt: Int64
        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 2)
            try bindings.append(key)
            bindings.append(processedAt)
            return bindings
        }
    }

    struct LedgerUpsert: PostgresCommand {
        static let sql = """
            INSERT INTO ledger (key, processed_at) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET processed_at = excluded.processed_at RETURNING 1
            """
        var key: Data
        var processedAt: Int64
        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 2)
            try bindings.append(key)
            bindings.append(processedAt)
            return bindings
        }
    }

    struct LedgerProcessedAt: PostgresPreparedStatement {
        static let sql = "SELECT processed_at FROM ledger WHERE key = $1"
        typealias Row = Int64
        var key: Data
        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 1)
            try bindings.append(key)
            return bindings
        }
        func decodeRow(_ row: PostgresRow) throws -> Int64 { try row.decode(Int64.self) }
    }

    struct ContactExists: PostgresPreparedStatement {
        static let sql = "SELECT 1 FROM contacts WHERE list_id = $1 AND contact_id = $2"
        typealias Row = Int32
        var list: Int64
        var contactId: String
        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 2)
            bindings.append(list)
            bindings.append(contactId)
            return bindings
        }
        func decodeRow(_ row: PostgresRow) throws -> Int32 { try row.decode(Int32.self) }
    }

    /// Creates the contact with its subscriptions, or only touches `updated_at` when it exists.
    struct ContactUpsert: PostgresCommand {
        static let sql = """
            INSERT INTO contacts (list_id, contact_id, email_subscribed, mobile_subscribed, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $5)
            ON CONFLICT (list_id, contact_id) DO UPDATE SET updated_at = excluded.updated_at RETURNING 1
            """
        var list: Int64
        var contactId: String
        var defaults: NewContactDefaults
        var now: Int64
        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 5)
            bindings.append(list)
            bindings.append(contactId)
            bindings.append(defaults.emailSubscribed)
            bindings.append(defaults.mobileSubscribed)
            bindings.append(now)
            return bindings
        }
    }

    struct ContactTouch: PostgresCommand {
        static let sql = "UPDATE contacts SET updated_at = $1 WHERE list_id = $2 AND contact_id = $3 RETURNING 1"
        var now: Int64
        var list: Int64
        var contactId: String
        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 3)
            bindings.append(now)
            bindings.append(list)
            bindings.append(contactId)
            return bindings
        }
    }

    /// Writes several attributes of an existing contact in one statement (none when the contact does not exist, so
    /// no row returned means no contact). Names must be distinct (PostgreSQL refuses to update a row twice in one
    /// `ON CONFLICT`); a null value travels as kind `z` with an empty text.
    struct AttributesUpsert: PostgresCommand {
        static let sql = """
            INSERT INTO contact_attributes (list_id, contact_id, name, kind, value)
            SELECT $1, $2, name, kind, CASE WHEN kind = 'z' THEN NULL ELSE value END
            FROM unnest($3::text[], $4::text[], $5::text[]) AS given (name, kind, value)
            WHERE EXISTS (SELECT 1 FROM contacts WHERE list_id = $1 AND contact_id = $2)
            ON CONFLICT (list_id, contact_id, name) DO UPDATE SET kind = excluded.kind, value = excluded.value RETURNING 1
            """
        var list: Int64
        var contactId: String
        var names: [String]
        var kinds: [String]
        var values: [String]

        init(list: Int, contactId: String, attributes: [AttributeValue]) {
            self.list = Int64(list)
            self.contactId = contactId
            // The last value of a repeated name wins, as it would written one by one.
            var index: [String: Int] = [:]
            var names: [String] = [], kinds: [String] = [], values: [String] = []
            for attribute in attributes {
                let (kind, value) = AttributeEncoding.encode(attribute.value)
                if let at = index[attribute.name] {
                    kinds[at] = kind
                    values[at] = value ?? ""
                } else {
                    index[attribute.name] = names.count
                    names.append(attribute.name)
                    kinds.append(kind)
                    values.append(value ?? "")
                }
            }
            (self.names, self.kinds, self.values) = (names, kinds, values)
        }

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 5)
            bindings.append(list)
            bindings.append(contactId)
            bindings.append(names)
            bindings.append(kinds)
            bindings.append(values)
            return bindings
        }
    }

    /// Adds a purchase row to an existing contact; no row returned means no contact, or the transaction already
    /// recorded with that status.
    struct PurchaseInsert: PostgresCommand {
        static let sql = """
            INSERT INTO purchases
                (list_id, contact_id, kind, status, amount, currency, transaction_id, vendor, payment_type, occurred_at)
            SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
            WHERE EXISTS (SELECT 1 FROM contacts WHERE list_id = $1 AND contact_id = $2)
            ON CONFLICT DO NOTHING RETURNING 1
            """
        var list: Int64
        var contactId: String
        var row: PurchaseRow
        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 10)
            bindings.append(list)
            bindings.append(contactId)
            bindings.append(row.kind.rawValue)
            bindings.append(row.status.rawValue)
            bindings.append(row.amount.text)
            bindings.append(row.currency)
            bindings.append(row.transactionId)
            bindings.append(row.vendor)
            bindings.append(row.paymentType)
            bindings.append(row.occurredAt.microsecondsSinceEpoch)
            return bindings
        }
    }

    /// Enrolls a contact that exists in any list and is blocked in none now (`temp_block_contact`); nothing
    /// otherwise, or when it is enrolled already.
    struct JourneyEnter: PostgresCommand {
        static let sql = """
            INSERT INTO journey_enrollments (contact_id, journey_id, entered_at)
            SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM contacts WHERE contact_id = $1)
                AND NOT EXISTS (SELECT 1 FROM contacts WHERE contact_id = $1 AND blocked_until > $4)
            ON CONFLICT (contact_id, journey_id) DO NOTHING RETURNING 1
            """
        var contactId: String
        var journey: Int64
        var at: Int64
        var now: Int64
        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 4)
            bindings.append(contactId)
            bindings.append(journey)
            bindings.append(at)
            bindings.append(now)
            return bindings
        }
    }

    struct AnyContactExists: PostgresPreparedStatement {
        static let sql = "SELECT 1 FROM contacts WHERE contact_id = $1 LIMIT 1"
        typealias Row = Int32
        var contactId: String
        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 1)
            bindings.append(contactId)
            return bindings
        }
        func decodeRow(_ row: PostgresRow) throws -> Int32 { try row.decode(Int32.self) }
    }
}

extension PostgresConnection {
    /// Whether a prepared query returns at least one row.
    func exists<Statement: PostgresPreparedStatement>(_ statement: Statement, logger: Logger) async throws -> Bool {
        try await first(statement, logger: logger) != nil
    }

    /// The first row of a prepared query.
    func first<Statement: PostgresPreparedStatement>(_ statement: Statement, logger: Logger) async throws -> Statement.Row? {
        // Read to the end: the connection is free for the next statement only once the result is consumed.
        var first: Statement.Row?
        for try await row in try await execute(statement, logger: logger) where first == nil { first = row }
        return first
    }
}
