/// SigV4's percent-encoding: every byte except RFC 3986's unreserved characters (A-Z a-z 0-9 - _ . ~) becomes
/// `%XX` with upper-case hex. Stricter than any of Foundation's allowed-character sets (which keep `/`, `+`, `=`…).
enum URIEncoding {
    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    static func encode<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount)
        for byte in bytes {
            if isUnreserved(byte) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(upperHexDigits[Int(byte >> 4)])
                out.append(upperHexDigits[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func encode(_ string: some StringProtocol) -> String { encode(string.utf8) }

    /// Undoes `%XX` escapes, leaving every other byte (including `+`) as it is. Works on bytes, not characters:
    /// the result is only ever re-encoded, so it need not be valid UTF-8.
    static func decode(_ string: some StringProtocol) throws(AWSSignerError) -> [UInt8] {
        let bytes = Array(string.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "%") else {
                out.append(byte)
                index += 1
                continue
            }
            guard index + 2 < bytes.count, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) else {
                throw .invalidPercentEncoding(String(string))
            }
            out.append(high << 4 | low)
            index += 3
        }
        return out
    }

    /// Decodes and encodes again, so a name or segment signs the same whether the caller's URL escaped it or not.
    static func reencode(_ string: some StringProtocol) throws(AWSSignerError) -> String {
        encode(try decode(string))
    }

    private static let upperHexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}

enum Hex {
    private static let lowerHexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Lower-case hex, as SigV4 writes hashes and signatures.
    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        for byte in bytes {
            out.append(lowerHexDigits[Int(byte >> 4)])
            out.append(lowerHexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The body of an AWS query-protocol request (`Action=…&Version=…`, sent as `application/x-www-form-urlencoded`),
/// each name and value percent-encoded as SigV4 encodes them.
public enum AWSQueryForm {
    public static func encode(_ fields: [(name: String, value: String)]) -> String {
        fields.map { "\(encode($0.name))=\(encode($0.value))" }.joined(separator: "&")
    }

    /// One name or value: every byte but RFC 3986's unreserved characters as `%XX`.
    public static func encode(_ component: String) -> String { URIEncoding.encode(component) }
}
