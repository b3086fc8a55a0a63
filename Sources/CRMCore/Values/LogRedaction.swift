/// What may appear in logs at info and above: no personal values. Refusal reasons quote the offending value for
/// the dead-letter record (`amount: expected a number, got "ann@example.com"`); logs get them without it.
public enum LogRedaction {
    /// The reason without the values it quotes: the text after `got ` is dropped, and every double-quoted
    /// segment becomes `"…"`.
    public static func reason(_ text: String) -> String {
        var kept = Substring(text)
        if let got = kept.firstRange(of: " got ") {
            kept = kept[..<got.lowerBound]
            return unquoted(kept) + " (the value is not logged)"
        }
        return unquoted(kept)
    }

    private static func unquoted(_ text: Substring) -> String {
        var result = ""
        var inQuotes = false
        var escaped = false
        for character in text {
            if inQuotes {
                if escaped { escaped = false; continue }
                if character == "\\" { escaped = true; continue }
                if character == "\"" {
                    inQuotes = false
                    result += "…\""
                }
                continue
            }
            if character == "\"" { inQuotes = true }
            result.append(character)
        }
        if inQuotes { result += "…" }
        return result
    }

    /// An AWS access key id as logs show it: its last four characters, as the AWS console does.
    public static func accessKey(_ id: String) -> String {
        id.count <= 8 ? "…" : "…" + String(id.suffix(4))
    }

    /// An endpoint id (the only secret of an `auth: none` integration) as logs show it: its first 4 characters.
    public static func endpoint(_ id: String) -> String {
        id.count <= 4 ? "…" : String(id.prefix(4)) + "…"
    }
}
