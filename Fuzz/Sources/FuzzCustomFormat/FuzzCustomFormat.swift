import CRMCore
import FuzzConfiguration
import FuzzSupport

/// Feeds arbitrary bytes to a custom converter (`format: { custom: { type_from: header:event-name, types } }`: JSON
/// paths into the body, amounts, timestamps, consent fields) through `EventProcessor.prepare`. The first line is
/// the `event-name` header that picks the type (`signup`, `payment`, `consent`), the rest the body; an input
/// without a newline is a `signup` body.
let processor = FuzzConfiguration.processor("partner")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = FuzzInput(start, count)
    let parts = input.parts(separatedBy: UInt8(ascii: "\n"), maxParts: 2)
    let headers: [String: String]
    let body: [UInt8]
    if parts.count == 2 {
        headers = ["event-name": text(parts[0])]
        body = Array(parts[1])
    } else {
        headers = ["event-name": "signup"]
        body = input.bytes
    }
    _ = processor.prepare(FuzzConfiguration.message(body, source: "partner", headers: headers))
    return 0
}
