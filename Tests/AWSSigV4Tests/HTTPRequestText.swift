import Foundation

/// An HTTP/1.1 request as the SigV4 vectors write it: request line, `Name:value` lines (a line starting with
/// whitespace continues the previous value), a blank line, the body.
struct HTTPRequestText {
    var method: String
    /// Path and query exactly as written; may hold raw spaces and UTF-8.
    var target: String
    var version: String
    /// Values as written after the colon, continuation lines included with their line breaks, so the text can be
    /// rendered back byte for byte.
    var headers: [(name: String, value: String)]
    var body: String

    init(parsing text: String) throws {
        let head: Substring
        if let blank = text.range(of: "\n\n") {
            head = text[..<blank.lowerBound]
            body = String(text[blank.upperBound...])
        } else {
            head = text[...]
            body = ""
        }
        var lines = head.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        guard let requestLine = lines.first,
            let firstSpace = requestLine.firstIndex(of: " "),
            let lastSpace = requestLine.lastIndex(of: " "),
            firstSpace < lastSpace
        else {
            throw FixtureError.unusable("bad request line in \(text.prefix(80))")
        }
        // The target may itself contain spaces (get-space-*), so split at the first and last space only.
        method = String(requestLine[..<firstSpace])
        target = String(requestLine[requestLine.index(after: firstSpace)..<lastSpace])
        version = String(requestLine[requestLine.index(after: lastSpace)...])

        headers = []
        for line in lines.dropFirst() {
            if line.first == " " || line.first == "\t" {
                guard !headers.isEmpty else { throw FixtureError.unusable("continuation before any header: \(line)") }
                headers[headers.count - 1].value += "\n" + line
            } else {
                guard let colon = line.firstIndex(of: ":") else { throw FixtureError.unusable("header without colon: \(line)") }
                headers.append((name: String(line[..<colon]), value: String(line[line.index(after: colon)...])))
            }
        }
    }

    var rendered: String {
        "\(method) \(target) \(version)\n" + headers.map { "\($0.name):\($0.value)\n" }.joined() + "\n" + body
    }
}
