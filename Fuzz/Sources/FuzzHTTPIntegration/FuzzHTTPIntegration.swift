import CRMConfig
import CRMCore
import FuzzConfiguration
import FuzzSupport

/// Feeds arbitrary bytes as a request body to the incoming HTTP integrations (`format: flattened`, Synerise-style):
/// the JSON reader under `http.max_body`, JSON flattening to dotted keys, the event type and contact id taken
/// from the body, the deduplication key and the recorded request, through `IncomingIntegration.prepare`. Two
/// integrations see each input: `shop` (a fixed type, deduplication by `body.order_number`) and `synerise` (the
/// type from `body.action`, deduplication by a header).
let integrations: [IncomingIntegration] = ["shop", "synerise"].map { name in
    let source = FuzzConfiguration.source(name)
    guard case let .http(http) = source.transport else { fatalError("\(name) is not an http source") }
    let config = FuzzConfiguration.config
    return IncomingIntegration(
        source: name, endpointId: http.endpoint ?? name, eventType: http.eventType, contactId: http.contactId,
        deduplication: http.deduplication, jsonLimits: config.limits.json(maxBytes: config.http?.maxBodyBytes ?? 1 << 20),
        maxProperties: config.limits.maxProperties
    )
}
let planner = ActionPlanner(mapping: FuzzConfiguration.config.mapping)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = FuzzInput(start, count)
    let request = IncomingRequest(
        method: "POST",
        headers: [(name: "Content-Type", value: "application/json"), (name: "X-Request-Id", value: "fuzz-1")],
        body: input.bytes, receivedAt: Timestamp(secondsSinceEpoch: 1_780_000_000), eventId: "fuzz-event"
    )
    for integration in integrations {
        _ = try? integration.prepare(request, planner: planner)
    }
    return 0
}
