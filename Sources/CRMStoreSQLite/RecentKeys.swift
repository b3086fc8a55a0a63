/// The recent ledger's keys, each with its latest `processed_at`, in 256 buckets by the key's first byte, each
/// bucket sorted by key: 24 bytes a key, found by a search that starts where a uniform key should be, and swept
/// bucket by bucket by a merge round without a copy.
///
/// Why not a `Dictionary`: its storage is a power of two at most three quarters full, and a merge round needs the
/// keys in key order besides: 40,000 keys and the round's sorted copy took 2.7-3.2 MB, 100,000 here 3.9-4.0 MB.
/// The more keys, the fewer pages of `ledger` each transaction's merge step writes (`RecentLedger`).
///
/// Keys are keyed hashes (uniform), so the buckets fill evenly; room for the expected keys is set aside once.
struct RecentKeys: Sendable {
    typealias Entry = (key: LedgerKey, processedAt: Int64)

    private(set) var buckets: [[Entry]]
    private(set) var count = 0

    /// Room for about `expected` keys, set aside once: buckets that grow and move again and again leave holes in
    /// the heap that other allocations do not fill (measured: 100,000 keys grown that way took 4.8-5.0 MB).
    init(expected: Int = 0) {
        buckets = Array(repeating: [], count: 256)
        let perBucket = expected / 256 + expected / 512 + (expected > 0 ? 16 : 0)
        if perBucket > 0 { for bucket in 0..<256 { buckets[bucket].reserveCapacity(perBucket) } }
    }

    /// The given entries, a key given twice keeping its latest time.
    init(_ entries: [Entry], expected: Int = 0) {
        self.init(expected: max(expected, entries.count))
        var iterator = entries.makeIterator()
        replace { iterator.next() }
    }

    /// Replaces the keys with the entries `next` gives until it gives nil (a key given twice keeps its latest time),
    /// in the room the buckets already have (reading the table again does not give their room back to the heap and
    /// take it anew).
    mutating func replace(with next: () throws -> Entry?) rethrows {
        for bucket in 0..<256 { buckets[bucket].removeAll(keepingCapacity: true) }
        count = 0
        while let entry = try next() { buckets[Self.bucket(of: entry.key)].append(entry) }
        for bucket in 0..<256 where !buckets[bucket].isEmpty {
            buckets[bucket].sort { $0.key != $1.key ? $0.key < $1.key : $0.processedAt > $1.processedAt }
            // Equal keys are now together, the latest first: keep that one.
            var kept = 0
            for index in buckets[bucket].indices where kept == 0 || buckets[bucket][kept - 1].key != buckets[bucket][index].key {
                buckets[bucket][kept] = buckets[bucket][index]
                kept += 1
            }
            buckets[bucket].removeSubrange(kept...)
            count += kept
        }
    }

    static func bucket(of key: LedgerKey) -> Int { Int(key.high >> 56) }

    /// Where `key` is in its bucket, or where it would go (the first entry not below it).
    ///
    /// Keys are uniform, so a bucket of `count` keys holds `key` near `count` × the fraction its bits after the first
    /// byte give: the search starts there, gallops outward to bracket the key, and ends with a binary search of the
    /// bracket. It touches a few neighbouring cache lines instead of the nine or so scattered ones of a binary search
    /// over the whole bucket (the search was 3.4% of the daemon's samples draining a queue, 2026-12-06). A bucket that
    /// is not uniform (the front of one a merge round is sweeping, or keys chosen by a test) is still searched
    /// correctly, only with more steps.
    static func search(_ bucket: [Entry], _ key: LedgerKey) -> (found: Bool, index: Int) {
        let count = bucket.count
        guard count > 0 else { return (false, 0) }
        // The high word of (bits after the first byte) × count: below count, since those bits are below 2^64.
        let guess = Int(truncatingIfNeeded: (key.high << 8).multipliedFullWidth(by: UInt64(count)).high)
        var low: Int
        var high: Int
        if bucket[guess].key < key {
            // The key's place is after the guess: gallop right until an entry not below it.
            low = guess + 1
            var probe = low
            var step = 1
            while probe < count, bucket[probe].key < key {
                low = probe + 1
                probe += step
                step &<<= 1
            }
            high = min(probe, count)
        } else {
            // At the guess or before it: gallop left until an entry below it.
            high = guess
            var probe = guess - 1
            var step = 1
            while probe >= 0, !(bucket[probe].key < key) {
                high = probe
                probe -= step
                step &<<= 1
            }
            low = max(probe + 1, 0)
        }
        while low < high {
            let middle = (low + high) / 2
            if bucket[middle].key < key { low = middle + 1 } else { high = middle }
        }
        return (low < count && bucket[low].key == key, low)
    }

    /// The key's latest `processed_at`, if held.
    subscript(key: LedgerKey) -> Int64? {
        let bucket = buckets[Self.bucket(of: key)]
        let (found, index) = Self.search(bucket, key)
        return found ? bucket[index].processedAt : nil
    }

    /// Holds `key` with `processedAt`, or with the time it has if that is later.
    mutating func record(_ key: LedgerKey, processedAt: Int64) {
        let bucket = Self.bucket(of: key)
        let (found, index) = Self.search(buckets[bucket], key)
        if found {
            buckets[bucket][index].processedAt = max(buckets[bucket][index].processedAt, processedAt)
            return
        }
        if buckets[bucket].count == buckets[bucket].capacity {
            // Past the room set aside (a bucket ahead of a round's sweep, or more keys than expected).
            buckets[bucket].reserveCapacity(buckets[bucket].count + buckets[bucket].count / 2 + 8)
        }
        buckets[bucket].insert((key, processedAt), at: index)
        count += 1
    }

    /// Keys a merge round's step takes, bucket by bucket from the front of the round's current bucket (the keys it
    /// took before are gone from there): the ranges they are in, and the bucket the round goes on from once they are
    /// removed (256: past the last). Keys recorded into that bucket or a later one meanwhile are swept in the same
    /// round, those recorded into an earlier one in the next; so a round's keys go in key order except for a few
    /// recorded behind its first in the current bucket, which only costs the locality of their insert.
    struct Step: Sendable {
        var ranges: [(bucket: Int, range: Range<Int>)]
        var nextBucket: Int
    }

    func step(fromBucket first: Int, count wanted: Int) -> Step {
        var ranges: [(bucket: Int, range: Range<Int>)] = []
        var bucket = first
        var taken = 0
        while taken < wanted, bucket < 256 {
            let size = buckets[bucket].count
            let end = min(size, wanted - taken)
            if end > 0 { ranges.append((bucket, 0..<end)) }
            taken += end
            if end < size { break }
            bucket += 1
        }
        return Step(ranges: ranges, nextBucket: bucket)
    }

    /// The keys a step takes, in the order it takes them.
    func entries(in step: Step) -> [Entry] {
        var entries: [Entry] = []
        entries.reserveCapacity(step.ranges.reduce(0) { $0 + $1.range.count })
        for (bucket, range) in step.ranges { entries.append(contentsOf: buckets[bucket][range]) }
        return entries
    }

    /// Forgets the keys a step took; the keys must not have changed since the step was taken.
    mutating func remove(_ step: Step) {
        for (bucket, range) in step.ranges {
            buckets[bucket].removeSubrange(range)
            count -= range.count
        }
    }
}
