import CRMConfig
@testable import CRMIngest
import Testing

@Suite("ingest command")
struct IngestCommandTests {
    /// At least 64 MiB of SQLite page cache, and the write lock left to a daemon on the same file.
    @Test func aBulkLoadRunsWithAtLeast64MiBOfSQLiteCache() {
        let small = StoreConfig.sqlite(SQLiteStoreConfig(path: "/tmp/x.sqlite", cacheBytes: 16 << 20))
        #expect(IngestCommand.bulkLoading(small) == .sqlite(SQLiteStoreConfig(path: "/tmp/x.sqlite", cacheBytes: 64 << 20, yieldsTheWriteLock: true)))
        // A larger configured cache is kept, and so is everything else.
        let large = SQLiteStoreConfig(path: "/tmp/x.sqlite", busyTimeoutMilliseconds: 9, synchronousFull: false, cacheBytes: 256 << 20)
        var yielding = large
        yielding.yieldsTheWriteLock = true
        #expect(IngestCommand.bulkLoading(.sqlite(large)) == .sqlite(yielding))
        let postgres = StoreConfig.postgres(PostgresStoreConfig())
        #expect(IngestCommand.bulkLoading(postgres) == postgres)
    }
}
