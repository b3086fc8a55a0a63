import Foundation

/// Which lane a key (a contact id, a FIFO message group) takes.
public enum Lanes {
    /// FNV-1a over the key's UTF-8: stable across runs and machines, so a contact always takes the same lane.
    public static func lane(of key: String, count: Int) -> Int {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0100_0000_01B3
        }
        return Int(hash % UInt64(max(1, count)))
    }
}

/// A flag set once, read from any thread.
public final class StopFlag: @unchecked Sendable {
    // One Bool, guarded by `lock`.
    private let lock = NSLock()
    private var value = false

    public init() {}

    public var isSet: Bool { lock.withLock { value } }
    public func set() { lock.withLock { value = true } }
}
