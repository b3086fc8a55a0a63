@testable import CRMIngest
import Foundation
import Testing

/// What the config file watch compares: a file's version as `stat(2)` sees it, through symbolic links.
@Suite("Config file status")
struct FileStatusTests {
    /// A Kubernetes ConfigMap volume: `crm-ingest.yaml -> ..data/crm-ingest.yaml`, `..data -> ..<timestamp>`, both
    /// relative. An update writes a new timestamped folder and renames a new `..data` link over the old one. Before,
    /// the status was the link's own (Foundation left the relative chain unresolved), so the update was never seen.
    @Test func aConfigMapUpdateChangesTheStatus() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-configmap-\(UUID().uuidString)")
        let files = FileManager.default
        try files.createDirectory(at: folder.appendingPathComponent("..2026_12_07_a"), withIntermediateDirectories: true)
        defer { try? files.removeItem(at: folder) }
        try Data("sources: []\n".utf8).write(to: folder.appendingPathComponent("..2026_12_07_a/crm-ingest.yaml"))
        try files.createSymbolicLink(atPath: folder.appendingPathComponent("..data").path, withDestinationPath: "..2026_12_07_a")
        try files.createSymbolicLink(atPath: folder.appendingPathComponent("crm-ingest.yaml").path, withDestinationPath: "..data/crm-ingest.yaml")
        let path = folder.appendingPathComponent("crm-ingest.yaml").path
        let before = try #require(FileStatus(path: path))
        #expect(Int(before.size) == 12)

        try files.createDirectory(at: folder.appendingPathComponent("..2026_12_07_b"), withIntermediateDirectories: true)
        try Data("sources: []\nmappings: {}\n".utf8).write(to: folder.appendingPathComponent("..2026_12_07_b/crm-ingest.yaml"))
        try files.createSymbolicLink(atPath: folder.appendingPathComponent("..data_tmp").path, withDestinationPath: "..2026_12_07_b")
        #expect(rename(folder.appendingPathComponent("..data_tmp").path, folder.appendingPathComponent("..data").path) == 0)
        let after = try #require(FileStatus(path: path))
        #expect(after != before)
        #expect(Int(after.size) == 25)
        let target = try #require(FileStatus(path: folder.appendingPathComponent("..2026_12_07_b/crm-ingest.yaml").path))
        #expect(after == target)
    }

    @Test func aMissingFileHasNoStatus() {
        #expect(FileStatus(path: "/nonexistent/crm-ingest.yaml") == nil)
    }
}
