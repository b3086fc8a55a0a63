#if canImport(Glibc)
import Glibc
#endif
import Foundation
@testable import CRMIngest
import Logging
import ServiceLifecycle
import Testing

/// The start-up page trim gives back read-only file-backed pages, and nothing else.
@Suite("Start-up page trimmer")
struct StartupPageTrimmerTests {
    @Test func onlyReadOnlyFileMappingsAreTrimmed() {
        let code = ReadOnlyFileMapping(mapsLine: "7f2c1a000000-7f2c1a021000 r-xp 00000000 fe:00 1234                       /usr/lib/x86_64-linux-gnu/libc.so.6")
        #expect(code?.start == 0x7F2C_1A00_0000)
        #expect(code?.end == 0x7F2C_1A02_1000)
        #expect(code?.path == "/usr/lib/x86_64-linux-gnu/libc.so.6")
        #expect(ReadOnlyFileMapping(mapsLine: "55d0c0000000-55d0c0001000 r--p 00000000 fe:00 99 /opt/app/path with spaces")?.path == "/opt/app/path with spaces")
        // Writable (data, the SQLite shared memory), anonymous, special or deleted: left alone.
        #expect(ReadOnlyFileMapping(mapsLine: "7f2c1a021000-7f2c1a023000 rw-p 00021000 fe:00 1234 /usr/lib/x86_64-linux-gnu/libc.so.6") == nil)
        #expect(ReadOnlyFileMapping(mapsLine: "7f2c1a021000-7f2c1a029000 rw-s 00000000 fe:00 77 /var/lib/crm-ingest/crm.sqlite-shm") == nil)
        #expect(ReadOnlyFileMapping(mapsLine: "7f2c1a030000-7f2c1a040000 rw-p 00000000 00:00 0") == nil)
        #expect(ReadOnlyFileMapping(mapsLine: "7ffc1a030000-7ffc1a032000 r-xp 00000000 00:00 0                          [vdso]") == nil)
        #expect(ReadOnlyFileMapping(mapsLine: "7f2c1a000000-7f2c1a021000 r-xp 00000000 fe:00 1234 /tmp/old-binary (deleted)") == nil)
        #expect(ReadOnlyFileMapping(mapsLine: "garbage") == nil)
    }

    @Test func theEnvironmentCanTurnItOff() {
        #expect(StartupPageTrimmer.isEnabled(environment: [:]))
        #expect(StartupPageTrimmer.isEnabled(environment: ["CRM_INGEST_TRIM_STARTUP_PAGES": "1"]))
        #expect(!StartupPageTrimmer.isEnabled(environment: ["CRM_INGEST_TRIM_STARTUP_PAGES": "0"]))
        #expect(!StartupPageTrimmer.isEnabled(environment: ["CRM_INGEST_TRIM_STARTUP_PAGES": "off"]))
    }

    /// While the sources are not connected the service waits, and a graceful shutdown ends that wait at once, so it
    /// never holds up the daemon's exit.
    @Test func aShutdownDuringTheWaitEndsItAtOnce() async throws {
        let logger = Logger(label: "test.trimmer")
        let trimmer = StartupPageTrimmer(isStarted: { false }, logger: logger)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [.init(service: trimmer)], logger: logger))
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await Task.sleep(for: .milliseconds(300))
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        // Ended by the shutdown, not by the wait giving up on its own (its `startTimeout`).
        #expect(ContinuousClock.now < started + trimmer.startTimeout)
    }

    #if os(Linux)
    /// A 16 MiB file mapped read-only and read through is resident; after a trim it no longer is, and reading it
    /// again gives the same bytes.
    @Test func residentPagesOfAReadOnlyFileMappingAreGivenBack() throws {
        let size = 16 << 20
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("trim-\(UUID().uuidString)").path
        defer { unlink(path) }
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
        let fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0o600)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress, size) } == size)
        #expect(fsync(fd) == 0) // dirty pages cannot be reclaimed at once: the kernel would have to write them first
        let mapped = try #require(mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0))
        #expect(mapped != MAP_FAILED)
        defer { munmap(mapped, size) }
        func readThrough() -> Int {
            var sum = 0
            for offset in stride(from: 0, to: size, by: 4096) { sum &+= Int(mapped.load(fromByteOffset: offset, as: UInt8.self)) }
            return sum
        }
        let checksum = readThrough()
        let before = try #require(StartupPageTrimmer.residentFileKiB())
        let result = StartupPageTrimmer.trim()
        #expect(result.mappings > 0)
        #expect(result.residentFileKiBBefore >= before - 1024)
        // At least the test file's 16 MiB went (the test binary's own pages usually go too).
        #expect(result.residentFileKiBAfter <= result.residentFileKiBBefore - 12 * 1024)
        #expect(readThrough() == checksum)
    }
    #endif
}
