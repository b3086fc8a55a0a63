import CRMCore
import FuzzConfiguration
import FuzzSupport

/// Feeds arbitrary bytes as a message body to Altcraft's profile-import format
/// (`format: { altcraft_import: { … } }`) through `EventProcessor.prepare`, and to the error reply the daemon sends
/// for a refused request (`EventProcessor.errorReply`, which reads what it can of the same body).
let processor = FuzzConfiguration.processor("import")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = FuzzInput(start, count)
    let message = FuzzConfiguration.message(input.bytes, source: "import")
    _ = processor.prepare(message)
    _ = processor.errorReply(to: message, code: .invalidRequest, text: "fuzz")
    return 0
}
