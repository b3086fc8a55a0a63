/// The bytes libFuzzer hands a target, and ways to cut them into the several inputs one API takes.
public struct FuzzInput: Sendable {
    /// The whole input, copied out of libFuzzer's buffer.
    public let bytes: [UInt8]

    public init(_ start: UnsafeRawPointer, _ count: Int) {
        bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    }

    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The input cut at every `separator` byte (empty parts kept), at most `maxParts` parts: the last part keeps
    /// the rest, separators and all.
    public func parts(separatedBy separator: UInt8, maxParts: Int = Int.max) -> [ArraySlice<UInt8>] {
        bytes.split(separator: separator, maxSplits: max(0, maxParts - 1), omittingEmptySubsequences: false)
    }

    /// The input as text, invalid UTF-8 repaired (U+FFFD), for APIs that take a `String`.
    public var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// A slice of input as text, invalid UTF-8 repaired.
public func text(_ bytes: ArraySlice<UInt8>) -> String {
    String(decoding: bytes, as: UTF8.self)
}
