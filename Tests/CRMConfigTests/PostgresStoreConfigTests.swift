import CRMConfig
import Testing

@Suite("store.postgres")
struct PostgresStoreConfigTests {
    let loader = ConfigLoader(environment: ["PGPASSWORD": "s3cr@t/pw"])

    @Test func theURLWithThePasswordFromTheEnvironmentPoolAndTLS() throws {
        let config = try loader.load(yaml: """
            store:
              postgres: { url: "postgres://crm:${PGPASSWORD}@db.internal:6432/crm_prod?sslmode=require", pool: 16, startup_timeout: 2m }
            """)
        // The password holds URL delimiters ('@', '/'): the user information ends at the last '@'.
        #expect(config.store.kind == "postgres")
        guard case let .postgres(postgres) = config.store else { Issue.record("\(config.store)"); return }
        #expect(postgres.host == "db.internal" && postgres.port == 6432 && postgres.database == "crm_prod")
        #expect(postgres.password == "s3cr@t/pw")
        #expect(postgres.username == "crm" && postgres.pool == 16 && postgres.tls == .require && postgres.startupTimeoutSeconds == 120)
    }

    @Test func defaultsAndPercentEscapes() throws {
        let config = try ConfigLoader(environment: [:]).load(yaml: #"store: { postgres: { url: "postgresql://crm%40eu:p%40ss%2Fword@127.0.0.1/crm" } }"#)
        #expect(config.store == .postgres(PostgresStoreConfig(
            host: "127.0.0.1", port: 5432, username: "crm@eu", password: "p@ss/word", database: "crm", pool: 8, tls: .prefer, startupTimeoutSeconds: 60
        )))
        guard case let .postgres(postgres) = config.store else { return }
        #expect(postgres.redactedURL == "postgres://crm@eu:***@127.0.0.1:5432/crm")
    }

    @Test(arguments: [
        ("store: { postgres: { pool: 4 } }", "store.postgres.url: required: postgres://USER:PASSWORD@HOST:PORT/DATABASE"),
        (#"store: { postgres: { url: "mysql://a:b@h/d" } }"#, "store.postgres.url: expected the postgres:// scheme, got mysql://"),
        (#"store: { postgres: { url: "postgres://a:hunter2@h" } }"#, "store.postgres.url: names no database (postgres://USER@HOST/DATABASE)"),
        (#"store: { postgres: { url: "postgres://h/db" } }"#, "store.postgres.url: names no user (postgres://USER@HOST/DATABASE)"),
        (#"store: { postgres: { url: "postgres://a:hunter2@h/d?sslmode=verify-full" } }"#, "store.postgres.url: sslmode must be disable, prefer or require, got verify-full"),
        (#"store: { postgres: { url: "postgres://a:hunter2@h/d?application=x" } }"#, "store.postgres.url: unknown parameter application (known: sslmode)"),
        (#"store: { postgres: { url: "postgres://a@h/d", pool: 0 } }"#, "store.postgres.pool: must be greater than 0, got 0"),
        (#"store: { postgres: { url: "postgres://a@h/d", pool: 1000 } }"#, "store.postgres.pool: expected 1 to 256 connections, got 1000"),
        (#"store: { postgres: { url: "postgres://a@h/d", tls: maybe } }"#, #"store.postgres.tls: expected disable, prefer or require, got "maybe""#),
        (#"store: { postgres: { url: "postgres://a@h/d" }, sqlite: { path: x } }"#, "store: name one store: sqlite or postgres, not both"),
    ])
    func mistakesNameTheFieldAndNeverThePassword(yaml: String, problem: String) {
        do {
            _ = try ConfigLoader(environment: [:]).load(yaml: yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.problems.map(\.description) == [problem])
            #expect(!error.problems.map(\.description).joined().contains("hunter2"))
        }
    }

    @Test func changingTheStoreIsRefusedAtReload() throws {
        let running = try ConfigLoader(environment: [:]).load(yaml: #"store: { postgres: { url: "postgres://a:pw@h/one" } }"#)
        let edited = try ConfigLoader(environment: [:]).load(yaml: #"store: { postgres: { url: "postgres://a:pw@h/two" } }"#)
        let change = ConfigChange(from: running, to: edited)
        #expect(!change.refusals.isEmpty)
        #expect(!change.refusals.map(\.description).joined().contains(":pw@"))
    }
}
