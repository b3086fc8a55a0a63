import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What to do with a delivery once the pipeline is through with it.
enum Disposition: Sendable, Equatable {
    /// Committed, a duplicate, or nothing to do: ack it.
    case ack
    /// Cannot be processed: dead-letter it with this reason.
    case deadLetter(reason: String, code: String)
    /// Not processed (the store stayed down, or we are stopping): give it back to the queue.
    case requeue
}

struct Completion: Sendable {
    var generation: Int
    var deliveryTag: UInt64
    var disposition: Disposition
    /// A reply to publish (with confirms) before the disposition is carried out: Altcraft's import results.
    var reply: [UInt8]? = nil
}

/// Completions handed from the pipeline's tasks to the consumer thread, which alone may ack on its connection.
/// Posting writes a byte to a pipe, so the thread's `poll` wakes at once instead of at its next timeout; only one
/// byte until the thread takes, so a burst of posts costs one write and the thread reads the pipe only when woken.
final class CompletionInbox: @unchecked Sendable {
    // `items` and `signalled` are guarded by `lock`; a byte is in the pipe exactly while `signalled` (the write and
    // the read happen under the lock). The read end is read only by the consumer thread.
    private let lock = NSLock()
    private var items: [Completion] = []
    private var signalled = false
    private let writeDescriptor: Int32
    /// The pipe's read end, for `poll`.
    let eventDescriptor: Int32

    init() {
        var ends: [Int32] = [0, 0]
        if pipe(&ends) == 0 {
            for end in ends {
                _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
                _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            }
        } else {
            // Without a pipe the thread still wakes at its poll timeout: slower acks, nothing lost.
            ends = [-1, -1]
        }
        eventDescriptor = ends[0]
        writeDescriptor = ends[1]
    }

    deinit {
        close(eventDescriptor)
        close(writeDescriptor)
    }

    func post(_ completions: [Completion]) {
        guard !completions.isEmpty else { return }
        lock.withLock {
            items.append(contentsOf: completions)
            signalLocked()
        }
    }

    /// Wakes the consumer thread without posting anything (e.g. to notice a stop request).
    func wake() {
        lock.withLock { signalLocked() }
    }

    private func signalLocked() {
        guard !signalled else { return }
        var one: UInt8 = 1
        signalled = write(writeDescriptor, &one, 1) == 1
    }

    func take() -> [Completion] {
        lock.withLock {
            if signalled {
                // One byte is there; read until the pipe is empty all the same, so that nothing left behind could
                // keep `poll` returning at once.
                var drained = (UInt64(0), UInt64(0))
                while withUnsafeMutableBytes(of: &drained, { read(eventDescriptor, $0.baseAddress, $0.count) }) > 0 {}
                signalled = false
            }
            defer { items.removeAll(keepingCapacity: true) }
            return items
        }
    }
}
