import CRMSourceSupport
import Foundation

/// Reads a JSON Lines file (or standard input) on a thread of its own, so blocking reads never occupy Swift's
/// cooperative pool, and hands out batches of lines with back-pressure: at most `depth` batches wait in memory.
final class JSONLinesReader: Sendable {
    struct Line: Sendable {
        /// 1-based line number in the input.
        var number: Int
        var bytes: [UInt8]
    }

    struct Batch: Sendable {
        var lines: [Line]
        /// Bytes of input read so far, for progress.
        var bytesRead: Int
    }

    let batches: AsyncThrowingStream<Batch, any Error>

    /// - Parameters:
    ///   - handle: the input; it is read to its end and not closed.
    ///   - batchSize: lines per batch.
    ///   - maxLineBytes: longer lines are cut and handed on whole as far as read, so the decoder refuses them.
    init(handle: FileHandle, batchSize: Int = 1_000, depth: Int = 4, maxLineBytes: Int = 1 << 20) {
        let (stream, continuation) = AsyncThrowingStream<Batch, any Error>.makeStream()
        batches = stream
        let slots = DispatchSemaphore(value: depth)
        // A consumed batch frees a slot; a cancelled consumer frees them all so the thread can end.
        let cancelled = CancelFlag()
        continuation.onTermination = { _ in
            cancelled.set()
            for _ in 0..<depth { slots.signal() }
        }
        let thread = Thread {
            ThreadName.nameCurrentThread("ingest-reader")
            var pending: [Line] = []
            var current: [UInt8] = []
            var number = 0
            var bytesRead = 0
            func emit(_ lines: [Line]) -> Bool {
                slots.wait()
                guard !cancelled.isSet else { return false }
                continuation.yield(Batch(lines: lines, bytesRead: bytesRead))
                return true
            }
            func finishLine() {
                number += 1
                // A copy of exactly the line's size: handing `current` itself over would make the next line
                // allocate a new buffer of `current`'s whole capacity.
                pending.append(Line(number: number, bytes: current.withUnsafeBufferPointer { Array($0) }))
                current.removeAll(keepingCapacity: true)
            }
            do {
                while true {
                    guard let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty else { break }
                    bytesRead += chunk.count
                    // Whole runs between newlines are copied at once (byte by byte, Data's iterator was a
                    // few percent of `crm-ingest ingest`).
                    let keepGoing = chunk.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) -> Bool in
                        var start = 0
                        while start < buffer.count {
                            let newline = buffer[start...].firstIndex(of: 0x0A)
                            let end = newline ?? buffer.count
                            let room = maxLineBytes - current.count
                            if room > 0 { current.append(contentsOf: buffer[start..<min(end, start + room)]) }
                            guard let newline else { break }
                            finishLine()
                            if pending.count >= batchSize {
                                guard emit(pending) else { return false }
                                pending.removeAll(keepingCapacity: true)
                            }
                            start = newline + 1
                        }
                        return true
                    }
                    guard keepGoing else { return }
                }
                if !current.isEmpty { finishLine() }
                if !pending.isEmpty, !emit(pending) { return }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        thread.start()
        self.slots = slots
    }

    private let slots: DispatchSemaphore

    /// Call once per batch taken from `batches`.
    func consumed() { slots.signal() }
}

/// A flag set once, read from other threads.
final class CancelFlag: @unchecked Sendable {
    // Guarded by `lock`; the only state is one Bool.
    private let lock = NSLock()
    private var value = false

    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
