import CRMCore
import FuzzConfiguration
import FuzzSupport

/// Feeds arbitrary bytes as a message body to the Jomablue format (`format: { jomablue: { list: 4 } }`: check-in
/// and registration pushes, identifiers, categories) through `EventProcessor.prepare`.
let processor = FuzzConfiguration.processor("checkins")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = FuzzInput(start, count)
    _ = processor.prepare(FuzzConfiguration.message(input.bytes, source: "checkins"))
    return 0
}
