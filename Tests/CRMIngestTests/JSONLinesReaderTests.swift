import Foundation
import Testing

@testable import CRMIngest

@Suite("JSON Lines reader")
struct JSONLinesReaderTests {
    private func read(_ content: [UInt8], batchSize: Int = 2, maxLineBytes: Int = 1 << 20) async throws -> [JSONLinesReader.Line] {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lines-\(UUID().uuidString).jsonl")
        try Data(content).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        let reader = JSONLinesReader(handle: handle, batchSize: batchSize, maxLineBytes: maxLineBytes)
        var lines: [JSONLinesReader.Line] = []
        for try await batch in reader.batches {
            lines += batch.lines
            reader.consumed()
        }
        return lines
    }

    @Test("lines across the reader's 1 MiB chunks, empty lines and a last line without newline")
    func splitsLines() async throws {
        let long = [UInt8](repeating: UInt8(ascii: "x"), count: (1 << 20) - 3)
        let content = Array("a\n".utf8) + long + Array("\n\nb\nc".utf8)
        let lines = try await read(content)
        #expect(lines.map(\.number) == [1, 2, 3, 4, 5])
        #expect(lines.map(\.bytes.count) == [1, long.count, 0, 1, 1])
        #expect(lines[1].bytes == long)
        #expect(lines[3].bytes == Array("b".utf8))
        #expect(lines[4].bytes == Array("c".utf8))
    }

    @Test("a line longer than the limit is cut at the limit, and the next line is whole")
    func cutsLongLines() async throws {
        let content = Array(String(repeating: "y", count: 100).utf8) + Array("\n{}\n".utf8)
        let lines = try await read(content, maxLineBytes: 10)
        #expect(lines.map(\.bytes) == [Array(String(repeating: "y", count: 10).utf8), Array("{}".utf8)])
    }
}
