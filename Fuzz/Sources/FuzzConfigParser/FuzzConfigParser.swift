import CRMConfig
import FuzzSupport

/// Feeds arbitrary text to the configuration parser (`ConfigLoader.load(yaml:)`: YAML through Yams, `${NAME}`
/// expansion, every section's validation with YAML paths), with a fixed environment and a base directory that
/// does not exist, so no file is read.
let loader = ConfigLoader(environment: ["AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/", "HOME": "/nonexistent"])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = FuzzInput(start, count)
    _ = try? loader.load(yaml: input.text, baseDirectory: "/nonexistent/fuzz")
    return 0
}
