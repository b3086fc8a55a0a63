import GRDB

/// The SQLite schema, as versioned migrations: each is applied once, in order, at start-up.
enum SQLiteSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;

                CREATE TABLE contacts (
                    list_id INTEGER NOT NULL,
                    contact_id TEXT NOT NULL,
                    email_subscribed INTEGER NOT NULL,
                    mobile_subscribed INTEGER NOT NULL,
                    blocked_until INTEGER,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    PRIMARY KEY (list_id, contact_id)
                ) WITHOUT ROWID;
                CREATE INDEX contacts_by_contact ON contacts (contact_id);

                -- kind: s string, n number (exact text), b boolean ('true'/'false'), z null
                CREATE TABLE contact_attributes (
                    list_id INTEGER NOT NULL,
                    contact_id TEXT NOT NULL,
                    name TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    value TEXT,
                    PRIMARY KEY (list_id, contact_id, name)
                ) WITHOUT ROWID;
                CREATE INDEX contact_attributes_by_value ON contact_attributes (list_id, name, lower(value));
                CREATE INDEX contact_attributes_by_contact ON contact_attributes (contact_id);

                CREATE TABLE contact_consents (
                    list_id INTEGER NOT NULL,
                    contact_id TEXT NOT NULL,
                    channel TEXT NOT NULL,
                    consented INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    PRIMARY KEY (list_id, contact_id, channel)
                ) WITHOUT ROWID;
                CREATE INDEX contact_consents_by_contact ON contact_consents (contact_id);

                CREATE TABLE purchases (
                    id INTEGER PRIMARY KEY,
                    list_id INTEGER NOT NULL,
                    contact_id TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    status TEXT NOT NULL,
                    amount TEXT NOT NULL,
                    currency TEXT,
                    transaction_id TEXT,
                    vendor TEXT,
                    payment_type TEXT,
                    occurred_at INTEGER NOT NULL
                );
                CREATE UNIQUE INDEX purchases_one_per_transaction_status
                    ON purchases (list_id, contact_id, transaction_id, status) WHERE transaction_id IS NOT NULL;
                CREATE INDEX purchases_by_contact ON purchases (contact_id);

                CREATE TABLE journey_enrollments (
                    contact_id TEXT NOT NULL,
                    journey_id INTEGER NOT NULL,
                    entered_at INTEGER NOT NULL,
                    PRIMARY KEY (contact_id, journey_id)
                ) WITHOUT ROWID;

                -- An anonymized contact leaves only the keyed hash of its id, so later events do not recreate it.
                CREATE TABLE tombstones (contact_hash BLOB PRIMARY KEY, anonymized_at INTEGER NOT NULL) WITHOUT ROWID;

                -- Processed events, by the keyed hash of their idempotency key. No payload, no contact id.
                CREATE TABLE ledger (
                    key BLOB PRIMARY KEY,
                    event_type TEXT NOT NULL,
                    processed_at INTEGER NOT NULL
                ) WITHOUT ROWID;
                """)
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('tombstone_key', randomblob(32))")
        }
        migrator.registerMigration("v2: incoming requests") { db in
            try db.execute(sql: """
                -- Requests received by HTTP integrations, as recorded (flattened body, headers without credentials).
                CREATE TABLE incoming_requests (
                    event_id TEXT PRIMARY KEY,
                    source TEXT NOT NULL,
                    endpoint_id TEXT NOT NULL,
                    event_type TEXT NOT NULL,
                    contact_id TEXT,
                    received_at INTEGER NOT NULL,
                    record TEXT NOT NULL
                ) WITHOUT ROWID;
                CREATE INDEX incoming_requests_by_contact ON incoming_requests (contact_id) WHERE contact_id IS NOT NULL;
                CREATE INDEX incoming_requests_by_time ON incoming_requests (received_at);
                """)
        }
        migrator.registerMigration("v3: action history, unsubscribe reasons, attribute recency") { db in
            try db.execute(sql: """
                ALTER TABLE contacts ADD COLUMN email_unsubscribe_reason TEXT;
                -- The instant the newest merged record of this contact was taken (mergeContact).
                ALTER TABLE contacts ADD COLUMN attributes_as_of INTEGER;
                CREATE TABLE contact_actions (
                    list_id INTEGER NOT NULL,
                    contact_id TEXT NOT NULL,
                    action_key TEXT NOT NULL,
                    action_type TEXT NOT NULL,
                    campaign TEXT,
                    action_page TEXT,
                    fields TEXT NOT NULL,
                    occurred_at INTEGER NOT NULL,
                    PRIMARY KEY (list_id, contact_id, action_key)
                ) WITHOUT ROWID;
                CREATE INDEX contact_actions_by_contact ON contact_actions (contact_id);
                """)
        }
        migrator.registerMigration("v4: linked records") { db in
            try db.execute(sql: """
                -- Records a sender publishes (Jomablue people, events, leads, session participations), latest version.
                CREATE TABLE linked_records (
                    kind TEXT NOT NULL,
                    record_id TEXT NOT NULL,
                    contact_id TEXT,
                    event_id TEXT,
                    generated_at INTEGER NOT NULL,
                    payload TEXT NOT NULL,
                    PRIMARY KEY (kind, record_id)
                ) WITHOUT ROWID;
                CREATE INDEX linked_records_by_contact ON linked_records (contact_id) WHERE contact_id IS NOT NULL;
                -- Categories of a record: ids on people, ids with names on events.
                CREATE TABLE record_categories (
                    kind TEXT NOT NULL,
                    record_id TEXT NOT NULL,
                    category_id TEXT NOT NULL,
                    name TEXT,
                    PRIMARY KEY (kind, record_id, category_id)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v5: compact ledger") { db in
            // Keys truncated to their first 16 bytes (a truncated HMAC-SHA256 is still a keyed hash; the store
            // computes keys the same way from now on), and no event type: rows of about 28 bytes instead of 60,
            // so a batch's random inserts touch fewer pages. Existing rows keep their meaning.
            try db.execute(sql: """
                CREATE TABLE ledger_v5 (key BLOB PRIMARY KEY, processed_at INTEGER NOT NULL) WITHOUT ROWID;
                INSERT OR IGNORE INTO ledger_v5 (key, processed_at) SELECT substr(key, 1, 16), processed_at FROM ledger;
                DROP TABLE ledger;
                ALTER TABLE ledger_v5 RENAME TO ledger;
                """)
        }
        migrator.registerMigration("v6: recent ledger") { db in
            // New ledger keys go to this small table first, and are merged into `ledger` in key order once it
            // holds `SQLiteCRMStore.defaultRecentLedgerLimit` rows. Keys are keyed hashes, so inserting them
            // straight into a large ledger dirtied nearly one ledger page per event in every transaction.
            try db.execute(sql: "CREATE TABLE ledger_recent (key BLOB PRIMARY KEY, processed_at INTEGER NOT NULL) WITHOUT ROWID")
        }
        migrator.registerMigration("v7: recent ledger in arrival order") { db in
            // The recent keys are found in memory (`RecentLedger`), so the table is written in arrival order, `seq`
            // its rowid: keyed by key, a transaction of 60 events dirtied some 50 of its pages. A key may have
            // several rows (each time it was recorded); its latest counts. AUTOINCREMENT: `sqlite_sequence` keeps
            // the highest `seq` ever used, so no writer numbers a row below one another writer's merge round.
            try db.execute(sql: """
                ALTER TABLE ledger_recent RENAME TO ledger_recent_v6;
                CREATE TABLE ledger_recent (seq INTEGER PRIMARY KEY AUTOINCREMENT, key BLOB NOT NULL, processed_at INTEGER NOT NULL);
                INSERT INTO ledger_recent (key, processed_at) SELECT key, processed_at FROM ledger_recent_v6 ORDER BY processed_at, key;
                DROP TABLE ledger_recent_v6;
                """)
        }
        migrator.registerMigration("v8: attribute values index SQLite uses") { db in
            // Contacts are found by an attribute's value (by email, or an Altcraft import by phone or a custom
            // field). SQLite's planner never chose v1's index, led by `list_id`: without statistics it preferred the
            // primary key's `list_id = ?`, so every such lookup read all the list's attributes. This one leads with
            // `name, lower(value)`; its entries end with the primary key, so a lookup seeks `list_id` too
            // (`SQLiteOperationWriter.contactsByEmailSQL` and the profile matches; `AttributeIndexTests`).
            try db.execute(sql: """
                DROP INDEX contact_attributes_by_value;
                CREATE INDEX contact_attributes_by_name_value ON contact_attributes (name, lower(value));
                """)
        }
        migrator.registerMigration("v9: no indexes on contact_id alone for attributes, consents and purchases") { db in
            // Every attribute, consent and purchase written also went into an index on `contact_id` alone, which
            // only erasure read: each was one more B-tree insert at a random place, a page more in the transaction
            // (without them a RabbitMQ drain writes a fifth fewer bytes, and `ingest` runs 12% faster: STORE.md).
            // Erasure now seeks each list instead (`SQLiteOperationWriter.eraseAttributesSQL`). A purchase's
            // transaction id and status stay unique per contact and list through one full index, which `contact
            // show` also reads: NULL transaction ids never conflict, as in the partial index it replaces.
            try db.execute(sql: """
                DROP INDEX contact_attributes_by_contact;
                DROP INDEX contact_consents_by_contact;
                DROP INDEX purchases_by_contact;
                DROP INDEX purchases_one_per_transaction_status;
                CREATE UNIQUE INDEX purchases_by_contact_transaction ON purchases (list_id, contact_id, transaction_id, status);
                """)
        }
        migrator.registerMigration("v10: no index on contact_id alone for contacts") { db in
            // Like v9's: every new contact also went into this index, which only a journey entry without the
            // contact's creation in the same event, the reading of a contact's lists and erasure read. They seek
            // each list instead (`SQLiteOperationWriter.journeyEnterSQL`, `ErasureIndexTests`); a registration,
            // which creates the contact and enters it in a journey, looks for nothing.
            try db.execute(sql: "DROP INDEX contacts_by_contact")
        }
        migrator.registerMigration("v11: a purchase's kind in its uniqueness") { db in
            // A deposit and a withdrawal of one contact with the same transaction id and status were one row: the
            // second was ignored as "already recorded". Symplify's examples give both the id abc123; senders that
            // number deposits and withdrawals apart need both rows. The kind now takes part (PURCHASES in STORE.md).
            try db.execute(sql: """
                DROP INDEX purchases_by_contact_transaction;
                CREATE UNIQUE INDEX purchases_by_contact_transaction ON purchases (list_id, contact_id, transaction_id, kind, status);
                """)
        }
        migrator.registerMigration("v12: when a contact's email subscription last changed") { db in
            // A Proca status applies only if it is not older than the one held: a retried `double_opt_in` arriving
            // after a newer `unsub` re-subscribed the contact (STORE.md, "Email subscription").
            try db.execute(sql: "ALTER TABLE contacts ADD COLUMN email_subscription_as_of INTEGER")
        }
        migrator.registerMigration("v13: blocks by contact id") { db in
            // A blocked contact enters no journey. Journeys are not per list, and since v10 `contacts` has no index
            // on `contact_id` alone: the latest block of each contact over its lists is kept here, so a journey entry
            // looks it up with one seek in a table of the contacts ever blocked (STORE.md).
            try db.execute(sql: """
                CREATE TABLE contact_blocks (contact_id TEXT PRIMARY KEY, blocked_until INTEGER NOT NULL) WITHOUT ROWID;
                INSERT INTO contact_blocks (contact_id, blocked_until)
                    SELECT contact_id, max(blocked_until) FROM contacts WHERE blocked_until IS NOT NULL GROUP BY contact_id;
                """)
        }
        return migrator
    }
}
