import AWSSigV4
import Foundation
import Testing

/// AWS's own SigV4 test suite (from aws-c-auth): every case, signed with an Authorization header and as a
/// presigned URL, checked step by step against the expected texts.
@Suite struct SigV4VectorTests {
    /// A parameterized test over an empty list passes silently; this makes a missing or partial copy fail.
    @Test func theSuiteIsComplete() throws {
        #expect(SigningTestCase.names.count == 38, "case folders found in \(SigningTestCase.suiteDirectory.path)")
        let files = [
            "context.json", "request.txt",
            "header-canonical-request.txt", "header-string-to-sign.txt", "header-signature.txt", "header-signed-request.txt",
            "query-canonical-request.txt", "query-string-to-sign.txt", "query-signature.txt", "query-signed-request.txt",
        ]
        for name in SigningTestCase.names {
            for file in files {
                let path = SigningTestCase.suiteDirectory.appendingPathComponent("\(name)/\(file)").path
                #expect(FileManager.default.fileExists(atPath: path), "\(name)/\(file)")
            }
        }
    }

    @Test(arguments: SigningTestCase.names)
    func headerSigning(_ name: String) throws {
        let testCase = try SigningTestCase(name: name)
        let signer = testCase.signer
        let date = testCase.context.timestamp
        let canonicalRequest = try testCase.expected("header-canonical-request.txt")
        let stringToSign = try testCase.expected("header-string-to-sign.txt")
        let signature = try testCase.expected("header-signature.txt")

        let result = try signer.headerSignature(
            method: testCase.request.method,
            url: try testCase.url(),
            headers: testCase.request.headers,
            body: testCase.body,
            date: date
        )
        #expect(result.steps.canonicalRequest == canonicalRequest)
        #expect(result.steps.stringToSign == stringToSign)
        #expect(result.steps.signature == signature)

        // Each later step also on its own, from the expected text before it, so a failure names the step at fault.
        #expect(signer.stringToSign(canonicalRequest: canonicalRequest, date: date) == stringToSign)
        #expect(signer.signature(stringToSign: stringToSign, date: date) == signature)

        let expectedRequest = try HTTPRequestText(parsing: try testCase.expected("header-signed-request.txt"))
        let authorization = result.headers.filter { $0.name.lowercased() == "authorization" }.map(\.value)
        let expectedAuthorization = expectedRequest.headers.filter { $0.name.lowercased() == "authorization" }.map(\.value)
        #expect(expectedAuthorization.count == 1)
        #expect(authorization == expectedAuthorization)

        // And the whole signed request, byte for byte: the headers added, their order and spelling.
        var signedRequest = testCase.request
        signedRequest.headers = result.headers
        #expect(signedRequest.rendered == (try testCase.expected("header-signed-request.txt")))
    }

    @Test(arguments: SigningTestCase.names)
    func querySigning(_ name: String) throws {
        let testCase = try SigningTestCase(name: name)
        #expect(testCase.hasQueryVariant, "every case in this copy of the suite has a presigned variant")
        let signer = testCase.signer
        let date = testCase.context.timestamp
        let canonicalRequest = try testCase.expected("query-canonical-request.txt")
        let stringToSign = try testCase.expected("query-string-to-sign.txt")
        let signature = try testCase.expected("query-signature.txt")

        let url = try testCase.url()
        let result = try signer.querySignature(
            method: testCase.request.method,
            url: url,
            headers: testCase.request.headers,
            body: testCase.body,
            expires: .seconds(testCase.context.expirationInSeconds),
            date: date
        )
        #expect(result.steps.canonicalRequest == canonicalRequest)
        #expect(result.steps.stringToSign == stringToSign)
        #expect(result.steps.signature == signature)
        #expect(signer.stringToSign(canonicalRequest: canonicalRequest, date: date) == stringToSign)
        #expect(signer.signature(stringToSign: stringToSign, date: date) == signature)

        // The presigned URL against the expected request line. The vectors keep raw UTF-8 and spaces in the target
        // where a URL must escape them, so compare path and parameters decoded, parameters in order.
        let expectedRequest = try HTTPRequestText(parsing: try testCase.expected("query-signed-request.txt"))
        let (expectedPath, expectedQuery) = Self.split(target: expectedRequest.target)
        #expect(result.url.path(percentEncoded: false) == expectedPath.removingPercentEncoding)
        #expect(Self.decodedItems(result.url.query(percentEncoded: true)) == Self.decodedItems(expectedQuery))
        #expect(Self.decodedItems(result.url.query(percentEncoded: true)).last == ["X-Amz-Signature", signature])
        #expect(result.url.host() == url.host())

        // Presigning adds nothing to the headers: the request sends exactly the ones it was given.
        #expect(expectedRequest.headers.map { "\($0.name):\($0.value)" } == testCase.request.headers.map { "\($0.name):\($0.value)" })
    }

    private static func split(target: String) -> (path: String, query: String?) {
        guard let mark = target.firstIndex(of: "?") else { return (target, nil) }
        return (String(target[..<mark]), String(target[target.index(after: mark)...]))
    }

    private static func decodedItems(_ query: String?) -> [[String]] {
        (query ?? "").split(separator: "&").map { piece in
            let parts = piece.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return parts.map { String($0).removingPercentEncoding ?? "<invalid \($0)>" } + (parts.count == 1 ? [""] : [])
        }
    }
}
