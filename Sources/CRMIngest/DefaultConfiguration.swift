import CRMConfig
import CRMCore
import CRMStorePostgres
import CRMStoreSQLite
import Logging
import ServiceLifecycle

/// The configuration built into the binary (a copy of `Config/crm-ingest.yaml`), used when no `--config` is given.
public enum DefaultConfiguration {
    public static var yaml: String { String(decoding: PackageResources.crm_ingest_yaml, as: UTF8.self) }
}

/// A store as the daemon and the commands use it: the store, and what must run while it is used.
public struct OpenedStore: Sendable {
    public let store: any CRMStore
    /// Runs for as long as the store is used (PostgreSQL's connection pool, a `Service`); nil for SQLite.
    public let service: (any Service)?
    /// Readies the store once `service` runs (PostgreSQL: waits for the server, migrates, reads the keys).
    public let prepare: @Sendable () async throws -> Void
}

/// Opens the store a configuration names.
public enum StoreFactory {
    public static func open(_ config: StoreConfig, logger: Logger) throws -> OpenedStore {
        switch config {
        case let .sqlite(sqlite):
            let store = try SQLiteCRMStore(
                path: sqlite.path, busyTimeoutMilliseconds: sqlite.busyTimeoutMilliseconds,
                lockWait: sqlite.yieldsTheWriteLock ? .backingOff : .everyMillisecond,
                durability: sqlite.synchronousFull ? .full : .normal, cacheBytes: sqlite.cacheBytes,
                commitInterval: .milliseconds(sqlite.commitIntervalMilliseconds), logger: logger
            )
            return OpenedStore(store: store, service: nil, prepare: {})
        case let .postgres(postgres):
            let tls: PostgresCRMStore.TLSMode = switch postgres.tls {
            case .disable: .disable
            case .prefer: .prefer
            case .require: .require
            }
            let store = PostgresCRMStore(
                host: postgres.host, port: postgres.port, username: postgres.username, password: postgres.password,
                database: postgres.database, tls: tls, maximumConnections: postgres.pool, logger: logger
            )
            let budget = Duration.seconds(postgres.startupTimeoutSeconds)
            return OpenedStore(store: store, service: store, prepare: { try await store.prepare(waitingAtMost: budget) })
        }
    }

    /// Runs `body` with the store ready, its pool (if any) running meanwhile: for commands that use the store once.
    public static func withStore<Result: Sendable>(
        _ config: StoreConfig, logger: Logger, _ body: @Sendable (any CRMStore) async throws -> Result
    ) async throws -> Result {
        let opened = try open(config, logger: logger)
        guard let service = opened.service else { return try await body(opened.store) }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await service.run() }
            defer { group.cancelAll() }
            try await opened.prepare()
            return try await body(opened.store)
        }
    }
}
