#if canImport(Glibc)
import Glibc
#endif
import Logging
import ServiceLifecycle

/// Gives the kernel back the code pages that only start-up used, once every source is connected.
///
/// Start-up runs code the running daemon never runs again: the command-line parser, YAML and the configuration
/// loader, migrations, TLS and connection set-up. Their pages of the binary and its libraries stay resident (about
/// 25 of the 47 MiB an idle daemon holds, Docs/BENCHMARKS.md), because a process keeps every page it touched. The
/// store is open and migrated before the services start; once every source is connected too, this service asks the kernel to reclaim the read-only file-backed pages it maps
/// (`madvise(MADV_PAGEOUT)`); the ones the running daemon uses come back at their next use, from the page cache or
/// the file. Pages another process maps too (the C library, the Swift runtime of another Swift program) are left
/// alone by the kernel, and nothing writable or anonymous is touched: no data leaves memory, only code and
/// constants that can be read again from their files.
///
/// `CRM_INGEST_TRIM_STARTUP_PAGES=0` in the environment turns it off.
struct StartupPageTrimmer: Service {
    /// Whether start-up is over (every source connected). Must answer at once: it is asked every 100 ms, and it
    /// must not wait on the store (a store that hangs would keep this service, and the daemon's shutdown, waiting).
    let isStarted: @Sendable () -> Bool
    let logger: Logger
    /// How long to keep waiting for the sources before trimming anyway (a source that stays down must not keep the
    /// start-up pages resident forever).
    var startTimeout: Duration = .seconds(60)

    static func isEnabled(environment: [String: String]) -> Bool {
        environment["CRM_INGEST_TRIM_STARTUP_PAGES"].map { !["0", "false", "no", "off"].contains($0.lowercased()) } ?? true
    }

    func run() async throws {
        let deadline = ContinuousClock.now + startTimeout
        // A shutdown during the wait ends it at once (the sleep is cancelled), and the service with it.
        try? await cancelWhenGracefulShutdown { [isStarted] in
            while ContinuousClock.now < deadline, !isStarted() {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        guard !Task.isShuttingDownGracefully else { return }
        let result = Self.trim()
        logger.debug("start-up pages trimmed", metadata: [
            "mappings": "\(result.mappings)", "resident_file_kib_before": "\(result.residentFileKiBBefore)",
            "resident_file_kib_after": "\(result.residentFileKiBAfter)",
        ])
        try? await gracefulShutdown()
    }

    /// What one trim did: the read-only file mappings it covered, and the process's resident file-backed memory
    /// (`RssFile`) before and after.
    struct Result: Sendable, Equatable {
        var mappings = 0
        var residentFileKiBBefore = 0
        var residentFileKiBAfter = 0
    }

    /// Asks the kernel to reclaim every read-only file-backed mapping of this process. Linux only; elsewhere, or
    /// on a kernel without `MADV_PAGEOUT` (before 5.4), nothing happens.
    static func trim() -> Result {
        var result = Result()
        #if os(Linux)
        result.residentFileKiBBefore = residentFileKiB() ?? 0
        guard let maps = ProcFiles.read("/proc/self/maps") else { return result }
        for line in maps.split(separator: "\n") {
            guard let mapping = ReadOnlyFileMapping(mapsLine: line) else { continue }
            if madvise(UnsafeMutableRawPointer(bitPattern: mapping.start), Int(mapping.end - mapping.start), MADV_PAGEOUT) == 0 {
                result.mappings += 1
            }
        }
        result.residentFileKiBAfter = residentFileKiB() ?? 0
        #endif
        return result
    }

    /// `RssFile` of /proc/self/status, in KiB.
    static func residentFileKiB() -> Int? {
        guard let status = ProcFiles.read("/proc/self/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("RssFile:") {
            return Int(line.dropFirst("RssFile:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
        }
        return nil
    }
}

/// One line of /proc/self/maps that maps a file read-only (`r--p`, `r-xp`): the only mappings trimmed.
struct ReadOnlyFileMapping: Equatable {
    var start: UInt
    var end: UInt
    var path: Substring

    /// `7f2c1a000000-7f2c1a021000 r-xp 00000000 fe:00 1234  /usr/lib/libc.so.6`; nil for anything writable,
    /// anonymous, or special (`[vdso]`, `[heap]`).
    init?(mapsLine line: Substring) {
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count == 6 else { return nil }
        let permissions = fields[1]
        guard permissions.hasPrefix("r"), !permissions.contains("w") else { return nil }
        let path = fields[5].drop { $0 == " " }
        guard path.hasPrefix("/"), !path.hasSuffix(" (deleted)") else { return nil }
        let range = fields[0].split(separator: "-")
        guard range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16), end > start else { return nil }
        self.start = start
        self.end = end
        self.path = path
    }
}
