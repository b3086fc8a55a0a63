import CRMCore
import FuzzSupport
import SNSSupport

/// Feeds arbitrary bytes as an SQS message body to SNS unwrapping: the JSON reader under the message limits,
/// `SNSEnvelope.unwrap` (notification fields, message attributes), the payload parsed as JSON, and a filter
/// policy of each scope evaluated against the envelope, as an SQS source with `sns: auto` and a `filter_policy` does.
let parser = JSONParser(limits: InputLimits().json)
let policies: [SNSFilterPolicy] = {
    do {
        return [
            try SNSFilterPolicy(
                parsing: #"{"event":["signup",{"prefix":"user."}],"amount":[{"numeric":[">",0,"<=",1000]}],"region":[{"anything-but":["cn"]}]}"#,
                scope: .messageAttributes
            ),
            try SNSFilterPolicy(
                parsing: #"{"type":["USER_REGISTRATION",{"suffix":"_APPROVED"}],"properties":{"country":[{"exists":true}],"email":[{"equals-ignore-case":"A@B.C"}]}}"#,
                scope: .messageBody
            ),
        ]
    } catch {
        fatalError("the fuzz filter policies do not parse: \(error)")
    }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = FuzzInput(start, count)
    guard let body = try? parser.parse(input.bytes) else { return 0 }
    guard let envelope = try? SNSEnvelope.unwrap(body) else {
        // Raw delivery: the body itself is the payload.
        for policy in policies { _ = policy.matches(body: body) }
        return 0
    }
    _ = try? envelope.payload(parser: parser)
    for policy in policies { _ = policy.matches(envelope: envelope, parser: parser) }
    return 0
}
