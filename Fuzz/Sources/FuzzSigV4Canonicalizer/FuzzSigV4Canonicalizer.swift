import AWSSigV4
import Foundation
import FuzzSupport

/// Feeds arbitrary bytes to the SigV4 canonicalizer: the first line is the method, the second the path and query
/// (appended to `https://sqs.eu-west-1.amazonaws.com`), each further line a header `name: value` (a line without
/// `:` is a name with an empty value). Builds the canonical request (`AWSSigner.canonicalRequest`, with and
/// without path normalization), signs headers (`headerSignature`) and presigns (`querySignature`).
let credentials = AWSCredentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", sessionToken: "token")
let signers = [
    AWSSigner(credentials: credentials, name: "sqs", region: "eu-west-1"),
    AWSSigner(credentials: credentials, name: "s3", region: "eu-west-1", options: .init(normalizePath: false, addContentSHA256Header: true)),
]
let date = Date(timeIntervalSince1970: 1_780_000_000)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = FuzzInput(start, count)
    let lines = input.parts(separatedBy: UInt8(ascii: "\n"), maxParts: 64).map(text)
    let method = lines.first ?? ""
    let target = lines.count > 1 ? lines[1] : "/"
    var headers: AWSSigner.Headers = []
    for line in lines.dropFirst(2) {
        if let colon = line.firstIndex(of: ":") {
            headers.append((name: String(line[..<colon]), value: String(line[line.index(after: colon)...])))
        } else {
            headers.append((name: line, value: ""))
        }
    }
    guard let url = URL(string: "https://sqs.eu-west-1.amazonaws.com" + target, encodingInvalidCharacters: false) else { return 0 }
    for signer in signers {
        _ = try? signer.canonicalRequest(method: method, url: url, headers: headers, payloadHash: AWSSigner.payloadHash(.empty))
        _ = try? signer.headerSignature(method: method, url: url, headers: headers, body: .string(target), date: date)
        _ = try? signer.querySignature(method: method, url: url, headers: headers, expires: .seconds(300), date: date)
    }
    return 0
}
