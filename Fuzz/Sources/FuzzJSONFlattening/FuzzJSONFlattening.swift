import CRMCore
import FuzzSupport

/// Feeds arbitrary bytes to the JSON reader under the default message limits (`JSONParser` with
/// `InputLimits().json`) and what it accepts to `JSONFlattener.flatten` (the dotted keys every format's properties
/// become), then writes the value canonically (`JSONWriter.canonicalBytes`, the content idempotency key's input)
/// and checks the canonical form reads back to itself.
let parser = JSONParser(limits: InputLimits().json)
/// Reads canonical output back: no limit but the depth, since escaping may lengthen strings.
let unlimitedParser = JSONParser(limits: JSONLimits(maxBytes: Int.max, maxDepth: 64, maxObjectMembers: Int.max, maxStringBytes: Int.max))

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = FuzzInput(start, count)
    guard let value = try? parser.parse(input.bytes) else { return 0 }
    _ = JSONFlattener.flatten(value)
    _ = JSONFlattener.flatten(value, prefix: "data")
    let canonical = JSONWriter.canonicalBytes(value)
    guard let reread = try? unlimitedParser.parse(canonical) else {
        fatalError("the canonical form of an accepted document does not read back: \(String(decoding: canonical, as: UTF8.self))")
    }
    if JSONWriter.canonicalBytes(reread) != canonical {
        fatalError("the canonical form is not stable: \(String(decoding: canonical, as: UTF8.self))")
    }
    return 0
}
