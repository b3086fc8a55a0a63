import CRMConfig
import CRMCore
import CRMStoreSQLite
import Logging

/// The configuration built into the binary (a copy of `Config/crm-ingest.yaml`), used when no `--config` is given.
public enum DefaultConfiguration {
    public static var yaml: String { String(decoding: PackageResources.crm_ingest_yaml, as: UTF8.self) }
}

/// Opens the store a configuration names.
public enum StoreFactory {
    public static func open(_ config: StoreConfig, logger: Logger) throws -> any CRMStore {
        switch config {
        case let .sqlite(sqlite):
            return try SQLiteCRMStore(
                path: sqlite.path, busyTimeoutMilliseconds: sqlite.busyTimeoutMilliseconds,
                durability: sqlite.synchronousFull ? .full : .normal, cacheBytes: sqlite.cacheBytes, logger: logger
            )
        }
    }
}
