import Logging
import NIOCore
import PostgresNIO

/// The PostgreSQL schema, as versioned migrations applied at start-up, each in a transaction of its own (or, for
/// one that builds an index on a table older daemons write to, statement by statement with `CONCURRENTLY`).
///
/// Several daemons may start at once on an empty database: the migrator holds a session advisory lock for the
/// whole run, so one applies the migrations and the others find them applied. The others wait for the lock by
/// trying it every 100 ms, not in `pg_advisory_lock`: a statement blocked there holds a snapshot, which a
/// concurrent index build waits for, while its holder waits for the lock the build's session holds. The tables are those of the SQLite
/// store (`Sources/CRMStoreSQLite/SQLiteSchema.swift`, after its five migrations), in PostgreSQL's types: times
/// in microseconds since 1970 (`bigint`, as the SQLite store keeps them), keyed hashes as `bytea`.
enum PostgresSchema {
    /// `pg_advisory_lock` key: "crm-ingest" in ASCII, folded into a bigint.
    static let advisoryLockKey: Int64 = 0x63_72_6D_2D_69_6E_67

    struct Migration: Sendable {
        var version: Int
        var name: String
        /// Indexes dropped (concurrently) before the statements when a build that was interrupted left them invalid.
        var dropIfInvalid: [String] = []
        var statements: [String]
        /// false: the statements run one by one outside a transaction (`CREATE INDEX CONCURRENTLY` cannot run in
        /// one), so each must be safe to run again after an interruption.
        var transactional = true
    }

    static let migrations: [Migration] = [
        Migration(version: 1, name: "the SQLite store's schema v5", statements: [
            "CREATE TABLE meta (key text PRIMARY KEY, value bytea NOT NULL)",
            """
            CREATE TABLE contacts (
                list_id bigint NOT NULL,
                contact_id text NOT NULL,
                email_subscribed boolean NOT NULL,
                mobile_subscribed boolean NOT NULL,
                blocked_until bigint,
                created_at bigint NOT NULL,
                updated_at bigint NOT NULL,
                email_unsubscribe_reason text,
                attributes_as_of bigint,
                PRIMARY KEY (list_id, contact_id)
            )
            """,
            "CREATE INDEX contacts_by_contact ON contacts (contact_id)",
            """
            CREATE TABLE contact_attributes (
                list_id bigint NOT NULL,
                contact_id text NOT NULL,
                name text NOT NULL,
                kind text NOT NULL,
                value text,
                PRIMARY KEY (list_id, contact_id, name)
            )
            """,
            "CREATE INDEX contact_attributes_by_value ON contact_attributes (list_id, name, lower(value))",
            "CREATE INDEX contact_attributes_by_contact ON contact_attributes (contact_id)",
            """
            CREATE TABLE contact_consents (
                list_id bigint NOT NULL,
                contact_id text NOT NULL,
                channel text NOT NULL,
                consented boolean NOT NULL,
                updated_at bigint NOT NULL,
                PRIMARY KEY (list_id, contact_id, channel)
            )
            """,
            "CREATE INDEX contact_consents_by_contact ON contact_consents (contact_id)",
            """
            CREATE TABLE purchases (
                id bigserial PRIMARY KEY,
                list_id bigint NOT NULL,
                contact_id text NOT NULL,
                kind text NOT NULL,
                status text NOT NULL,
                amount text NOT NULL,
                currency text,
                transaction_id text,
                vendor text,
                payment_type text,
                occurred_at bigint NOT NULL
            )
            """,
            """
            CREATE UNIQUE INDEX purchases_one_per_transaction_status
                ON purchases (list_id, contact_id, transaction_id, status) WHERE transaction_id IS NOT NULL
            """,
            "CREATE INDEX purchases_by_contact ON purchases (contact_id)",
            """
            CREATE TABLE journey_enrollments (
                contact_id text NOT NULL,
                journey_id bigint NOT NULL,
                entered_at bigint NOT NULL,
                PRIMARY KEY (contact_id, journey_id)
            )
            """,
            "CREATE TABLE tombstones (contact_hash bytea PRIMARY KEY, anonymized_at bigint NOT NULL)",
            // The idempotency ledger: a unique key, so a message delivered to two daemons applies once.
            "CREATE TABLE ledger (key bytea PRIMARY KEY, processed_at bigint NOT NULL)",
            "CREATE INDEX ledger_by_time ON ledger (processed_at)",
            """
            CREATE TABLE incoming_requests (
                event_id text PRIMARY KEY,
                source text NOT NULL,
                endpoint_id text NOT NULL,
                event_type text NOT NULL,
                contact_id text,
                received_at bigint NOT NULL,
                record text NOT NULL
            )
            """,
            "CREATE INDEX incoming_requests_by_contact ON incoming_requests (contact_id) WHERE contact_id IS NOT NULL",
            "CREATE INDEX incoming_requests_by_time ON incoming_requests (received_at)",
            """
            CREATE TABLE contact_actions (
                list_id bigint NOT NULL,
                contact_id text NOT NULL,
                action_key text NOT NULL,
                action_type text NOT NULL,
                campaign text,
                action_page text,
                fields text NOT NULL,
                occurred_at bigint NOT NULL,
                PRIMARY KEY (list_id, contact_id, action_key)
            )
            """,
            "CREATE INDEX contact_actions_by_contact ON contact_actions (contact_id)",
            """
            CREATE TABLE linked_records (
                kind text NOT NULL,
                record_id text NOT NULL,
                contact_id text,
                event_id text,
                generated_at bigint NOT NULL,
                payload text NOT NULL,
                PRIMARY KEY (kind, record_id)
            )
            """,
            "CREATE INDEX linked_records_by_contact ON linked_records (contact_id) WHERE contact_id IS NOT NULL",
            """
            CREATE TABLE record_categories (
                kind text NOT NULL,
                record_id text NOT NULL,
                category_id text NOT NULL,
                name text,
                PRIMARY KEY (kind, record_id, category_id)
            )
            """,
        ]),
        // A deposit and a withdrawal of one contact with the same transaction id and status were one row (SQLite's v11).
        // Built concurrently: during a rolling upgrade, older daemons keep reading and writing purchases meanwhile (a
        // plain DROP INDEX and CREATE INDEX locked the table for the whole build). The new index first (an
        // interrupted build leaves it invalid: dropped and built again; a valid one is kept, as it may already be
        // the only unique index if the run stopped after dropping the old one), then the old one goes.
        Migration(version: 2, name: "a purchase's kind in its uniqueness", dropIfInvalid: ["purchases_one_per_transaction_kind_status"], statements: [
            """
            CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS purchases_one_per_transaction_kind_status
                ON purchases (list_id, contact_id, transaction_id, kind, status) WHERE transaction_id IS NOT NULL
            """,
            "DROP INDEX CONCURRENTLY IF EXISTS purchases_one_per_transaction_status",
        ], transactional: false),
        // When a contact's email subscription last changed (SQLite's v12): an older Proca status is left out.
        Migration(version: 3, name: "when a contact's email subscription last changed", statements: [
            "ALTER TABLE contacts ADD COLUMN IF NOT EXISTS email_subscription_as_of bigint",
        ]),
        // A row per transaction, written first (outside any savepoint) and read when the answer to its COMMIT was
        // lost: it exists if and only if the transaction committed. Tokens begin with their time; each transaction
        // removes a few older than an hour (`PostgresOperationWriter.identifyAndLock`).
        Migration(version: 4, name: "commit witnesses", statements: [
            "CREATE TABLE IF NOT EXISTS commit_witnesses (token bytea PRIMARY KEY)",
        ]),
    ]

    /// Applies the missing migrations under the advisory lock; returns the versions this call applied.
    @discardableResult
    static func migrate(_ connection: PostgresConnection, logger: Logger, through lastVersion: Int = .max) async throws -> [Int] {
        while try await !tryLock(connection, logger: logger) {
            try await Task.sleep(for: .milliseconds(100))
        }
        do {
            let applied = try await migrateLocked(connection, logger: logger, through: lastVersion)
            try await connection.query("SELECT pg_advisory_unlock(\(advisoryLockKey))", logger: logger)
            return applied
        } catch {
            _ = try? await connection.query("SELECT pg_advisory_unlock(\(advisoryLockKey))", logger: logger)
            throw error
        }
    }

    private static func tryLock(_ connection: PostgresConnection, logger: Logger) async throws -> Bool {
        for try await locked in try await connection.query("SELECT pg_try_advisory_lock(\(advisoryLockKey))", logger: logger).decode(Bool.self) {
            return locked
        }
        return false
    }

    private static func migrateLocked(_ connection: PostgresConnection, logger: Logger, through lastVersion: Int) async throws -> [Int] {
        try await connection.query("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()
            )
            """, logger: logger)
        var done: Set<Int> = []
        for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger).decode(Int.self) {
            done.insert(version)
        }
        var applied: [Int] = []
        for migration in migrations where !done.contains(migration.version) && migration.version <= lastVersion {
            for index in migration.dropIfInvalid {
                var invalid = false
                for try await valid in try await connection.query(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = \(index)", logger: logger
                ).decode(Bool.self) {
                    invalid = !valid
                }
                if invalid { try await connection.query(PostgresQuery(unsafeSQL: "DROP INDEX CONCURRENTLY IF EXISTS \(index)"), logger: logger) }
            }
            if migration.transactional { try await connection.query("BEGIN", logger: logger) }
            do {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))", logger: logger
                )
                if migration.transactional { try await connection.query("COMMIT", logger: logger) }
            } catch {
                if migration.transactional { _ = try? await connection.query("ROLLBACK", logger: logger) }
                throw error
            }
            logger.notice("store migration applied", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            applied.append(migration.version)
        }
        // The key of the tombstones' keyed hashes: random, made once (pgcrypto's gen_random_bytes needs an extension).
        var generator = SystemRandomNumberGenerator()
        let key = ByteBuffer(bytes: (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
        try await connection.query(
            "INSERT INTO meta (key, value) VALUES ('tombstone_key', \(key)) ON CONFLICT (key) DO NOTHING", logger: logger
        )
        return applied
    }
}
