import Crypto
import Foundation

/// HMAC-SHA256 with the key's pads hashed once: each hash then costs two SHA-256 compressions instead of four.
/// Gives exactly the bytes of `HMAC<SHA256>` (a test checks it), so stored hashes stay valid.
struct KeyedHash: Sendable {
    private let inner: SHA256
    private let outer: SHA256

    /// - Parameter key: at most 64 bytes (the store's key is 32).
    init(key: [UInt8]) {
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

    func hash(_ text: String) -> Data {
        var innerHash = inner
        var text = text
        text.withUTF8 { innerHash.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        var outerHash = outer
        outerHash.update(data: Data(innerHash.finalize()))
        return Data(outerHash.finalize())
    }
}
