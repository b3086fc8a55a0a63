import CRMCore
import FuzzConfiguration
import FuzzSupport

/// Feeds arbitrary bytes as a message body to the Proca format (`format: { proca: { list: 3 } }`: action-sync
/// messages, supporter merge, consent, history records) through `EventProcessor.prepare`.
let processor = FuzzConfiguration.processor("petitions")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = FuzzInput(start, count)
    _ = processor.prepare(FuzzConfiguration.message(input.bytes, source: "petitions"))
    return 0
}
