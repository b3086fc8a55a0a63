import CRMConfig
@testable import CRMIngest
import Testing

@Suite("ingest command")
struct IngestCommandTests {
    @Test func aBulkLoadRunsWithAtLeast64MiBOfSQLiteCache() {
        let small = StoreConfig.sqlite(SQLiteStoreConfig(path: "/tmp/x.sqlite", cacheBytes: 16 << 20))
        #expect(IngestCommand.bulkLoading(small) == .sqlite(SQLiteStoreConfig(path: "/tmp/x.sqlite", cacheBytes: 64 << 20)))
        // A larger configured cache is kept, and so is everything else.
        let large = StoreConfig.sqlite(SQLiteStoreConfig(path: "/tmp/x.sqlite", busyTimeoutMilliseconds: 9, synchronousFull: false, cacheBytes: 256 << 20))
        #expect(IngestCommand.bulkLoading(large) == large)
        let postgres = StoreConfig.postgres(PostgresStoreConfig())
        #expect(IngestCommand.bulkLoading(postgres) == postgres)
    }
}
