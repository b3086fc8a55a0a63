import Foundation
import Testing

/// `make install`, the systemd unit and the Dockerfile, checked against each other and against the binary. (No
/// Docker engine runs here, so the image itself is not built.)
@Suite("Packaging")
struct PackagingTests {
    /// Runs a program to its end; stdout and stderr together.
    func run(_ executable: String, _ arguments: [String], in folder: URL = repositoryRoot) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = folder
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func text(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    /// The `KEY=value` lines of a unit file (the last one wins, as in systemd; comments skipped).
    func unitSettings(_ text: String) -> [String: String] {
        var settings: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.hasPrefix("[") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            settings[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return settings
    }

    /// A `NAME := words` or `NAME ?= words` assignment of the Makefile.
    func makefileVariable(_ name: String) throws -> [String] {
        let makefile = try text(repositoryRoot.appendingPathComponent("Makefile").path)
        let line = try #require(makefile.split(separator: "\n").first { $0.hasPrefix("\(name) :=") || $0.hasPrefix("\(name) ?=") })
        return line.split(separator: "=", maxSplits: 1)[1].split(separator: " ").map(String.init)
    }

    @Test func installPutsEachFileInItsPlaceAndKeepsAnEditedConfiguration() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let install = { try self.run("/usr/bin/make", ["--no-print-directory", "install-files", "BINARY=\(crmIngestBinary)", "INSTALL_STRIP=", "DESTDIR=\(folder.url.path)", "PREFIX=/usr"]) }
        let first = try install()
        #expect(first.status == 0, "\(first.output)")
        let root = folder.url.path
        #expect(FileManager.default.isExecutableFile(atPath: root + "/usr/bin/crm-ingest"))
        let unit = try text(root + "/usr/lib/systemd/system/crm-ingest.service")
        let settings = unitSettings(unit)
        #expect(settings["ExecStart"] == "/usr/bin/crm-ingest run --config /etc/crm-ingest/crm-ingest.yaml --log-format json")
        #expect(!unit.contains("@"), "a placeholder was left in the unit")
        #expect(try text(root + "/etc/crm-ingest/crm-ingest.yaml") == text(repositoryRoot.appendingPathComponent("Config/crm-ingest.yaml").path))
        #expect(FileManager.default.fileExists(atPath: root + "/usr/share/doc/crm-ingest/OPERATIONS.md"))

        try "# mine\n".write(toFile: root + "/etc/crm-ingest/crm-ingest.yaml", atomically: true, encoding: .utf8)
        let second = try install()
        #expect(second.status == 0)
        #expect(second.output.contains("kept"))
        #expect(try text(root + "/etc/crm-ingest/crm-ingest.yaml") == "# mine\n")
    }

    @Test func theUnitIsANotifyServiceWithReloadRestartAUserAndHardening() throws {
        let settings = unitSettings(try text(repositoryRoot.appendingPathComponent("Config/crm-ingest.service").path))
        #expect(settings["Type"] == "notify")
        #expect(settings["ExecReload"] == "/bin/kill -HUP $MAINPID")
        #expect(settings["Restart"] == "on-failure")
        #expect(settings["User"] == "crm-ingest")
        #expect(settings["StateDirectory"] == "crm-ingest")
        #expect(settings["WatchdogSec"] != nil)
        #expect(settings["ProtectSystem"] == "strict")
        #expect(settings["ProtectHome"] == "true")
        #expect(settings["NoNewPrivileges"] == "true")
        #expect(settings["PrivateTmp"] == "true")
        #expect(settings["CapabilityBoundingSet"] == "")
        #expect(settings["RestrictAddressFamilies"] == "AF_INET AF_INET6 AF_UNIX")
        #expect(settings["KillSignal"] == "SIGTERM")
    }

    /// systemd's own check, where systemd is installed: installed with real paths, the unit has no unknown key and
    /// its binary exists.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze")))
    func systemdAcceptsTheInstalledUnit() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let install = try run("/usr/bin/make", [
            "--no-print-directory", "install-files", "BINARY=\(crmIngestBinary)", "INSTALL_STRIP=", "PREFIX=\(folder.url.path)/usr",
            "SYSCONFDIR=\(folder.url.path)/etc",
        ])
        #expect(install.status == 0, "\(install.output)")
        let verify = try run("/usr/bin/systemd-analyze", ["verify", folder.url.path + "/usr/lib/systemd/system/crm-ingest.service"])
        #expect(verify.status == 0)
        #expect(verify.output.trimmingCharacters(in: .whitespacesAndNewlines) == "", "\(verify.output)")
    }

    @Test func theDockerfileMatchesTheMakefileAndTheUnit() throws {
        let dockerfile = try text(repositoryRoot.appendingPathComponent("Dockerfile").path)
        let stages = dockerfile.components(separatedBy: "\nFROM ")
        #expect(stages.count == 3, "a build stage and a runtime stage")
        let build = try #require(stages.dropFirst().first)
        let runtime = try #require(stages.last)
        #expect(build.hasPrefix("swift:") && build.contains("-bookworm AS build"))
        #expect(build.contains("--static-swift-stdlib"), "the runtime stage has no Swift runtime")
        #expect(runtime.hasPrefix("debian:bookworm-slim"))

        // The runtime stage installs the Makefile's RUNTIME_PACKAGES and nothing else (the health check is the binary's).
        let install = try #require(runtime.range(of: "--no-install-recommends"))
        let packages = runtime[install.upperBound...].prefix { $0 != "&" }
            .split(whereSeparator: { $0 == " " || $0 == "\\" || $0 == "\n" }).map(String.init)
        #expect(Set(packages) == Set(try makefileVariable("RUNTIME_PACKAGES")))

        // The same paths as `make install` with its default PREFIX and the unit.
        let bindir = try makefileVariable("BINDIR").joined().replacingOccurrences(of: "$(PREFIX)", with: try makefileVariable("PREFIX").joined())
        #expect(runtime.contains("COPY --from=build /out\(bindir)/crm-ingest \(bindir)/crm-ingest"))
        #expect(runtime.contains("ENTRYPOINT [\"\(bindir)/crm-ingest\"]"))
        let unit = unitSettings(try text(repositoryRoot.appendingPathComponent("Config/crm-ingest.service").path))
        let configPath = "/etc/crm-ingest/crm-ingest.yaml"
        #expect(unit["ExecStart"]?.contains("@SYSCONFDIR@/crm-ingest/crm-ingest.yaml") == true)
        #expect(runtime.contains("COPY --from=build /out\(configPath) \(configPath)"))
        #expect(runtime.contains("CMD [\"run\", \"--config\", \"\(configPath)\""))
        #expect(runtime.contains("\nUSER crm-ingest\n"))
        #expect(runtime.contains("VOLUME [\"/var/lib/crm-ingest\"]"))
        #expect(runtime.contains("STOPSIGNAL SIGTERM"))
        #expect(runtime.contains("HEALTHCHECK") && runtime.contains("CMD [\"\(bindir)/crm-ingest\", \"health\", \"--config\", \"\(configPath)\"]"))
    }

    /// Every library the binary links, except the Swift runtime (linked statically in the image), comes from a
    /// package the runtime stage installs (or from Debian's essential C runtime).
    @Test func theRuntimePackagesProvideEveryLibraryTheBinaryLinks() throws {
        let needed = try run("/usr/bin/readelf", ["-d", crmIngestBinary])
        #expect(needed.status == 0)
        let libraries = needed.output.split(separator: "\n").compactMap { line -> String? in
            guard line.contains("(NEEDED)"), let open = line.firstIndex(of: "["), let close = line.lastIndex(of: "]") else { return nil }
            return String(line[line.index(after: open)..<close])
        }
        #expect(libraries.contains("librabbitmq.so.4") && libraries.contains("libcurl.so.4"))
        let resolved = try run("/usr/bin/ldd", [crmIngestBinary]).output
        var paths: [String: String] = [:]
        for line in resolved.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count >= 3, parts[1] == "=>" { paths[String(parts[0]).trimmingCharacters(in: .whitespaces)] = String(parts[2]) }
        }
        let allowed = Set(try makefileVariable("RUNTIME_PACKAGES") + ["libc6", "libgcc-s1"])
        for library in libraries where !library.hasPrefix("ld-linux") {
            let path = try #require(paths[library], "ldd does not resolve \(library)")
            if !path.hasPrefix("/lib") && !path.hasPrefix("/usr/lib") { continue } // the Swift toolchain's runtime
            let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            // dpkg knows a file by the path its package installed: with or without /usr (merged /usr).
            let candidates = [path, real] + [path, real].map { $0.hasPrefix("/usr/") ? String($0.dropFirst(4)) : "/usr" + $0 }
            let package = try candidates.lazy.compactMap { candidate -> String? in
                let owner = try self.run("/usr/bin/dpkg", ["-S", candidate])
                guard owner.status == 0 else { return nil }
                return owner.output.split(separator: ":").first.map(String.init)
            }.first
            let name = try #require(package, "no package owns \(path)")
            let base = name.hasSuffix("t64") ? String(name.dropLast(3)) : name
            #expect(allowed.contains(base), "\(library) comes from \(name), which RUNTIME_PACKAGES does not list")
        }
    }
}
