import Crypto
import Foundation

/// HMAC-SHA256 with the key's pads hashed once: each hash then costs two SHA-256 compressions instead of four.
/// Gives exactly the bytes of `HMAC<SHA256>` (a test checks it), so stored hashes stay valid. Both stores use it for
/// ledger keys and tombstones.
public struct KeyedHash: Sendable {
    private let inner: SHA256
    private let outer: SHA256

    /// - Parameter key: at most 64 bytes (the store's key is 32).
    public init(key: [UInt8]) {
        precondition(key.count <= 64, "HMAC keys longer than a block are hashed first; ours is 32 bytes")
        var innerPad = [UInt8](repeating: 0x36, count: 64)
        var outerPad = [UInt8](repeating: 0x5C, count: 64)
        for (index, byte) in key.enumerated() {
            innerPad[index] ^= byte
            outerPad[index] ^= byte
        }
        var inner = SHA256()
        inner.update(data: innerPad)
        var outer = SHA256()
        outer.update(data: outerPad)
        self.inner = inner
        self.outer = outer
    }

    public func hash(_ text: String) -> Data {
        Data(digest(text))
    }

    /// The HMAC as a digest value, which needs no allocation until its bytes are copied out.
    func digest(_ text: String) -> SHA256Digest {
        var innerHash = inner
        var text = text
        text.withUTF8 { innerHash.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        var outerHash = outer
        innerHash.finalize().withUnsafeBytes { outerHash.update(bufferPointer: $0) }
        return outerHash.finalize()
    }
}

extension KeyedHash {
    /// Bytes of a ledger key: the keyed hash (HMAC-SHA256) truncated to 128 bits, which keeps collisions out of
    /// reach (about 2^64 keys before one is likely) with rows half as large, so a transaction's random inserts
    /// land on fewer pages (Docs/BENCHMARKS.md).
    public static let ledgerKeyBytes = 16

    /// The ledger key of an idempotency key. Ledger keys are stored as keyed hashes: message ids and content hashes
    /// can be derived from personal data, and the ledger outlives anonymization.
    public func ledgerKey(_ idempotencyKey: String) -> Data {
        withLedgerKey(idempotencyKey) { Data($0) }
    }

    /// Calls `body` with the ledger key's bytes, without copying them out.
    public func withLedgerKey<R>(_ idempotencyKey: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        digest(idempotencyKey).withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0.prefix(Self.ledgerKeyBytes))) }
    }

    /// The id purchase rows keep once their contact is anonymized: amounts stay countable, the person does not.
    public func anonymousContactId(_ contactId: String) -> String {
        "anonymized:" + hash(contactId).withUnsafeBytes { hexString(UnsafeRawBufferPointer(rebasing: $0.prefix(12))) }
    }
}

/// How attribute values sit in a store's `kind`/`value` columns (the same in every store).
public enum AttributeEncoding {
    public static func encode(_ value: PropertyValue) -> (kind: String, value: String?) {
        switch value {
        case let .string(text): return ("s", text)
        case let .number(text): return ("n", text)
        case let .bool(flag): return ("b", flag ? "true" : "false")
        case .null: return ("z", nil)
        }
    }

    public static func decode(kind: String, value: String?) -> PropertyValue {
        switch (kind, value) {
        case let ("s", text?): return .string(text)
        case let ("n", text?): return .number(text)
        case let ("b", text?): return .bool(text == "true")
        default: return .null
        }
    }
}

extension PlannedEvent {
    /// The profile import among the event's operations, if any.
    public var profileImport: ProfileImport? {
        for operation in operations { if case let .importProfile(profile) = operation { return profile } }
        return nil
    }

    /// The linked record the event keeps, if any (an identical republication makes the event `.unchanged`).
    public var linkedRecord: LinkedRecord? {
        for operation in operations { if case let .upsertRecord(record) = operation { return record } }
        return nil
    }
}
