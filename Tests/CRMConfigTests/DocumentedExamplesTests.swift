import CRMConfig
import Foundation
import Testing

/// Every configuration example in Docs/ and README.md that stands on its own (a YAML block whose first line is a
/// top-level key of the configuration) loads: a user who copies one gets a daemon that starts, not "unknown key".
/// Indented fragments (a key shown inside its parent) are not checked.
@Suite struct DocumentedExamplesTests {
    static let topLevelKeys: Set<String> = ["store", "http", "sources", "attributes", "mappings", "idempotency", "reload", "limits"]

    struct Example: CustomStringConvertible {
        var file: String
        var line: Int
        var yaml: String
        var description: String { "\(file):\(line)" }
    }

    /// The ```yaml blocks of the Markdown files that start with a top-level key.
    static func examples() throws -> [Example] {
        let root = ConfigLoaderTests.repositoryRoot
        let docs = root.appendingPathComponent("Docs")
        let files = try FileManager.default.contentsOfDirectory(atPath: docs.path).filter { $0.hasSuffix(".md") }.sorted().map { "Docs/\($0)" } + ["README.md"]
        var examples: [Example] = []
        for file in files {
            let lines = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8).components(separatedBy: "\n")
            var index = 0
            while index < lines.count {
                defer { index += 1 }
                guard lines[index].trimmingCharacters(in: .whitespaces) == "```yaml" else { continue }
                let start = index + 1
                var end = start
                while end < lines.count, lines[end].trimmingCharacters(in: .whitespaces) != "```" { end += 1 }
                let block = Array(lines[start..<min(end, lines.count)])
                index = end
                guard let first = block.first(where: { !$0.isEmpty && !$0.hasPrefix("#") }),
                      let key = first.split(separator: ":", maxSplits: 1).first.map(String.init),
                      !first.hasPrefix(" "), topLevelKeys.contains(key) else { continue }
                examples.append(Example(file: file, line: start, yaml: block.joined(separator: "\n")))
            }
        }
        return examples
    }

    @Test func theDocumentsHaveExamplesToCheck() throws {
        let examples = try Self.examples()
        // FORMATS.md alone has three whole examples; a parser that found none would make the next test pass empty.
        #expect(examples.count >= 12)
        #expect(examples.contains { $0.file == "Docs/FORMATS.md" && $0.yaml.contains("altcraft_import") })
    }

    @Test func everyStandAloneExampleLoads() throws {
        // Values an example takes from the environment (`${NAME}`) get a stand-in.
        let loader = ConfigLoader(environment: [
            "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F", "CRM_INGEST_DATA": "/tmp/crm-ingest-docs", "CRM_INGEST_HTTP": "127.0.0.1:8080",
            "CRM_LIST": "1", "PGPASSWORD": "secret", "RMQ_USER": "crm", "RMQ_PASSWORD": "secret", "PROCA_USER": "proca",
            "PROCA_PASSWORD": "secret", "SHOP_JWT_SECRET": "0123456789abcdef0123456789abcdef", "SQS_SECRET": "secret",
        ])
        // Files an example names: an empty Proca keystore stands in for FORMATS.md's.
        let keystore = FileManager.default.temporaryDirectory.appendingPathComponent("crm-docs-proca-keys-\(UUID().uuidString).json")
        try Data("{}".utf8).write(to: keystore)
        defer { try? FileManager.default.removeItem(at: keystore) }
        for example in try Self.examples() {
            let yaml = example.yaml.replacingOccurrences(of: "/etc/crm-ingest/proca-keys.json", with: keystore.path)
            let problems = loader.problems(yaml)
            #expect(problems.isEmpty, "\(example): \(problems.joined(separator: "; "))")
        }
    }
}
