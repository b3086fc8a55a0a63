import CRMCore
import Foundation

/// A one-line progress display on standard error, shown only when it is a terminal.
final class ProgressBar: @unchecked Sendable {
    // Mutable state is touched only under `lock`; output goes through one `FileHandle`.
    private let lock = NSLock()
    private let totalBytes: Int?
    private let started = ContinuousClock.now
    private var lastDrawn = ContinuousClock.now - .seconds(1)
    let isEnabled: Bool

    init(totalBytes: Int? = nil) {
        self.totalBytes = totalBytes
        self.isEnabled = isatty(STDERR_FILENO) == 1
    }

    func update(_ summary: IngestSummary, bytesRead: Int, force: Bool = false) {
        draw(force: force) { elapsed in
            let fraction = totalBytes.flatMap { $0 > 0 ? min(1, Double(bytesRead) / Double($0)) : nil }
            return (fraction, "\(summary.total) lines, \(Int(Double(summary.total) / elapsed))/s  \(summary)")
        }
    }

    /// `done` of `total` things (`dlq replay`).
    func update(done: Int, of total: Int, unit: String, force: Bool = false) {
        draw(force: force) { elapsed in
            (total > 0 ? min(1, Double(done) / Double(total)) : nil, "\(done) of \(total) \(unit), \(Int(Double(done) / elapsed))/s")
        }
    }

    /// Redraws the line (at most five times a second unless forced): a bar when the fraction is known, then the text.
    private func draw(force: Bool, _ content: (_ elapsedSeconds: Double) -> (fraction: Double?, text: String)) {
        guard isEnabled else { return }
        lock.withLock {
            let now = ContinuousClock.now
            guard force || now - lastDrawn >= .milliseconds(200) else { return }
            lastDrawn = now
            let elapsed = max(0.001, (now - started).totalSeconds)
            let (fraction, text) = content(elapsed)
            var line = ""
            if let fraction {
                let filled = Int(fraction * 30)
                line = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: 30 - filled) + "] "
                line += String(format: "%3.0f%% ", fraction * 100)
            }
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + text).utf8))
        }
    }

    func finish() {
        guard isEnabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
