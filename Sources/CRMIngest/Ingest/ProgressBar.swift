import Foundation

/// A one-line progress display on standard error, shown only when it is a terminal.
final class ProgressBar: @unchecked Sendable {
    // Mutable state is touched only under `lock`; output goes through one `FileHandle`.
    private let lock = NSLock()
    private let totalBytes: Int?
    private let started = ContinuousClock.now
    private var lastDrawn = ContinuousClock.now - .seconds(1)
    let isEnabled: Bool

    init(totalBytes: Int?) {
        self.totalBytes = totalBytes
        self.isEnabled = isatty(STDERR_FILENO) == 1
    }

    func update(_ summary: IngestSummary, bytesRead: Int, force: Bool = false) {
        guard isEnabled else { return }
        lock.withLock {
            let now = ContinuousClock.now
            guard force || now - lastDrawn >= .milliseconds(200) else { return }
            lastDrawn = now
            let elapsed = max(0.001, Double((now - started).components.attoseconds) / 1e18 + Double((now - started).components.seconds))
            let rate = Int(Double(summary.total) / elapsed)
            var line = ""
            if let totalBytes, totalBytes > 0 {
                let fraction = min(1, Double(bytesRead) / Double(totalBytes))
                let filled = Int(fraction * 30)
                line = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: 30 - filled) + "] "
                line += String(format: "%3.0f%% ", fraction * 100)
            }
            line += "\(summary.total) lines, \(rate)/s  \(summary)"
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        }
    }

    func finish() {
        guard isEnabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
