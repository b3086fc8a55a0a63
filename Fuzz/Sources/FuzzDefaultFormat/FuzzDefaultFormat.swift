import CRMCore
import FuzzConfiguration
import FuzzSupport

/// Feeds arbitrary bytes as a message body to the default format (`format: default`, a RabbitMQ source): the
/// JSON reader under the configured limits, `DefaultFormatDecoder`, the property limit and the action planner,
/// through `EventProcessor.prepare` as the daemon calls it.
let processor = FuzzConfiguration.processor("app")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = FuzzInput(start, count)
    _ = processor.prepare(FuzzConfiguration.message(input.bytes, source: "app"))
    return 0
}
