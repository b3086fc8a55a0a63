import Foundation
import GRDB
import Synchronization

/// A Bloom filter of the keys of the large `ledger` table, so that a new event's key, found in neither the recent
/// keys nor the filter, costs no lookup in `ledger`: in a drain of new events that lookup (a B-tree seek per event)
/// was 7% of the daemon's CPU.
///
/// The filter may say "maybe" for a key that is not there (then the store looks it up, as before), never "no" for
/// one that is, and only once it is `complete`: it has seen every key of `ledger`. It becomes complete by a scan,
/// a step per transaction in key order (`scanStep`), and keys the writer merges into `ledger` are added as they
/// go. Another connection may merge keys too (`crm-ingest ingest` beside the daemon): `RecentLedger` restarts the
/// scan whenever it reads `ledger_recent` again, which it does whenever another connection committed and after a
/// transaction failed. Bits are never cleared except after pruning, ours or another connection's (`clear`, which
/// restarts the scan too), so a deleted key stays a "maybe".
///
/// Keys are keyed hashes, uniform already: the probes are taken from the key's own bits (double hashing of its two
/// words), with no hashing of their own. Used only on the writer queue, under `RecentLedger`'s lock.
final class LedgerFilter: @unchecked Sendable {
    /// Probes per key.
    static let probes: UInt64 = 4
    /// 1 MiB: 1 in 14,000 absent keys is a "maybe" at 200,000 keys, 1 in 48 at 1,000,000, 1 in 7 at 2,000,000
    /// (past that the filter saves less and less, and costs no more). The kernel gives the pages as bits are
    /// first set.
    static let defaultBits = 1 << 23
    /// Keys one scan step reads at most (a few milliseconds).
    static let maxScanStep = 20_000

    /// The bits; nil if the memory could not be had (then every key is a "maybe").
    private var words: UnsafeMutablePointer<UInt64>?
    private let wordCount: Int
    private let mask: UInt64
    /// Every key of `ledger` has been added.
    private(set) var complete = false
    /// The scan's position, the last key it read (as stored); nil: the scan starts from the first key.
    private var scannedThrough: Data?
    /// Answers that sent the store to `ledger`: "maybe"s, and every answer while the scan is not over (for tests
    /// and diagnostics).
    let lookupsLetThrough = Atomic<Int>(0)
    /// Rows of `ledger` whose key is not 16 bytes, skipped by the scan (no lookup can match them).
    let malformedKeys = Atomic<Int>(0)

    /// - Parameter bits: a power of two, at least 64.
    init(bits: Int = LedgerFilter.defaultBits) {
        precondition(bits >= 64 && bits & (bits - 1) == 0, "the filter's size must be a power of two")
        wordCount = bits / 64
        mask = UInt64(bits - 1)
        words = Self.allocate(wordCount)
    }

    deinit { free(words) }

    /// Zeroed words from calloc: for a size past malloc's mmap threshold (256 KiB, set in `main.swift`) new pages of
    /// the kernel's, resident only once written.
    private static func allocate(_ count: Int) -> UnsafeMutablePointer<UInt64>? {
        calloc(count, MemoryLayout<UInt64>.stride)?.assumingMemoryBound(to: UInt64.self)
    }

    func insert(_ key: LedgerKey) {
        guard let words else { return }
        for probe in 0..<Self.probes {
            let bit = (key.high &+ probe &* key.low) & mask
            words[Int(bit >> 6)] |= 1 << (bit & 63)
        }
    }

    /// False: the key is not in `ledger` (only said once the filter is complete).
    func mayContain(_ key: LedgerKey) -> Bool {
        if complete, let words {
            for probe in 0..<Self.probes {
                let bit = (key.high &+ probe &* key.low) & mask
                if words[Int(bit >> 6)] & (1 << (bit & 63)) == 0 { return false }
            }
        }
        lookupsLetThrough.add(1, ordering: .relaxed)
        return true
    }

    /// `ledger` may hold keys the filter has not seen (another connection committed): scan it again.
    func restartScan() {
        complete = false
        scannedThrough = nil
    }

    /// Forgets every key (after pruning, so deleted keys stop being "maybe") and scans again. The memory is given
    /// back and taken anew, so only the bits set again are resident.
    func clear() {
        free(words)
        words = Self.allocate(wordCount)
        restartScan()
    }

    /// Adds the next `count` keys of `ledger` in key order; the filter is complete once a step finds fewer. Call it
    /// inside the writer's transaction.
    func scanStep(_ db: Database, count: Int) throws {
        guard !complete else { return }
        let keys: DatabaseValueCursor<Data>
        if let scannedThrough {
            keys = try Data.fetchCursor(
                db.cachedStatement(sql: "SELECT key FROM ledger WHERE key > ? ORDER BY key LIMIT ?"), arguments: [scannedThrough, count]
            )
        } else {
            keys = try Data.fetchCursor(db.cachedStatement(sql: "SELECT key FROM ledger ORDER BY key LIMIT ?"), arguments: [count])
        }
        var found = 0
        while let stored = try keys.next() {
            found += 1
            scannedThrough = stored
            guard let key = LedgerKey(stored: stored) else {
                // Not written by the store (a hand-made row): no lookup binds anything but 16 bytes, so it can
                // never match, and the scan goes on past it rather than failing every transaction.
                malformedKeys.add(1, ordering: .relaxed)
                continue
            }
            insert(key)
        }
        if found < count { complete = true }
    }
}
