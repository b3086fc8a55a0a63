import AWSSigV4
import Foundation
import Testing

@Suite struct AWSSignerTests {
    static let credentials = AWSCredentials(
        accessKeyId: "AKIDEXAMPLE",
        secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        sessionToken: "SESSIONTOKENEXAMPLE"
    )
    static let date = Date(timeIntervalSince1970: 1_440_938_160)  // 2015-08-30T12:36:00Z, the vectors' time

    @Test func credentialsNeverPrintTheSecretOrToken() {
        let signer = AWSSigner(credentials: Self.credentials, name: "sqs", region: "eu-west-1")
        var dumped = ""
        dump(Self.credentials, to: &dumped)
        var dumpedSigner = ""
        dump(signer, to: &dumpedSigner)
        let printed = [
            Self.credentials.description,
            "\(Self.credentials)",
            String(describing: Self.credentials),
            String(reflecting: Self.credentials),
            dumped,
            "\(signer)",
            String(reflecting: signer),
            dumpedSigner,
            "\([Self.credentials])",
        ]
        #expect(Self.credentials.description == "AKIDEXAMPLE/*** (with session token)")
        #expect(AWSCredentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret").description == "AKIDEXAMPLE/***")
        for text in printed {
            #expect(text.contains("AKIDEXAMPLE"), "\(text)")
            #expect(!text.contains("wJalrXUtnFEMI"), "\(text)")
            #expect(!text.contains("SESSIONTOKENEXAMPLE"), "\(text)")
        }
    }

    @Test func timeIsFormattedInUTC() throws {
        let signer = AWSSigner(credentials: Self.credentials, name: "sqs", region: "eu-west-1")
        let headers = try signer.signHeaders(method: "GET", url: try #require(URL(string: "https://sqs.eu-west-1.amazonaws.com/")), date: Self.date)
        #expect(headers.first { $0.name == "X-Amz-Date" }?.value == "20150830T123600Z")
        let newYearsEve = Date(timeIntervalSince1970: 1_704_067_199)  // 2023-12-31T23:59:59Z
        let late = try signer.signHeaders(method: "GET", url: try #require(URL(string: "https://sqs.eu-west-1.amazonaws.com/")), date: newYearsEve)
        #expect(late.first { $0.name == "X-Amz-Date" }?.value == "20231231T235959Z")
        #expect(late.first { $0.name == "Authorization" }?.value.contains("/20231231/eu-west-1/sqs/aws4_request,") == true)
    }

    @Test func hostComesFromTheURLWithItsPortUnlessDefault() throws {
        let signer = AWSSigner(credentials: Self.credentials, name: "sqs", region: "us-east-1")
        func host(_ url: String) throws -> String? {
            try signer.signHeaders(method: "POST", url: try #require(URL(string: url)), date: Self.date).first { $0.name == "Host" }?.value
        }
        #expect(try host("http://localhost:4566/000000000000/q") == "localhost:4566")
        #expect(try host("https://sqs.us-east-1.amazonaws.com:443/") == "sqs.us-east-1.amazonaws.com")
        #expect(try host("http://sqs.us-east-1.amazonaws.com:80/") == "sqs.us-east-1.amazonaws.com")
        #expect(try host("http://[::1]:9324/") == "[::1]:9324")
        // A Host the caller gives wins, whatever its case.
        let given = try signer.signHeaders(
            method: "GET", url: try #require(URL(string: "https://10.0.0.1/")), headers: [("host", "sqs.internal")], date: Self.date)
        #expect(given.filter { $0.name.lowercased() == "host" }.map(\.value) == ["sqs.internal"])
    }

    @Test func resigningReplacesTheSignersOwnHeaders() throws {
        let signer = AWSSigner(credentials: Self.credentials, name: "sqs", region: "us-east-1", options: .init(addContentSHA256Header: true))
        let url = try #require(URL(string: "https://sqs.us-east-1.amazonaws.com/"))
        let headers: AWSSigner.Headers = [("Content-Type", "application/x-amz-json-1.0"), ("X-Amz-Target", "AmazonSQS.SendMessage")]
        let once = try signer.signHeaders(method: "POST", url: url, headers: headers, body: .string("{}"), date: Self.date)
        let twice = try signer.signHeaders(method: "POST", url: url, headers: once, body: .string("{}"), date: Self.date)
        #expect(twice.map { "\($0.name):\($0.value)" } == once.map { "\($0.name):\($0.value)" })
        for name in ["authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"] {
            #expect(twice.filter { $0.name.lowercased() == name }.count == 1, "\(name)")
        }
    }

    @Test func headersThatProxiesChangeAreSentButNotSigned() throws {
        let signer = AWSSigner(credentials: Self.credentials, name: "sqs", region: "us-east-1")
        let result = try signer.headerSignature(
            method: "POST",
            url: try #require(URL(string: "https://sqs.us-east-1.amazonaws.com/")),
            headers: [("User-Agent", "crm-ingest"), ("Expect", "100-continue"), ("X-Amz-Target", "AmazonSQS.ReceiveMessage")],
            date: Self.date
        )
        #expect(result.steps.signedHeaders == "host;x-amz-date;x-amz-security-token;x-amz-target")
        #expect(result.headers.contains { $0.name == "User-Agent" })
    }

    @Test func unsignedPayloadIsSignedLiterally() throws {
        #expect(AWSSigner.payloadHash(.unsignedPayload) == "UNSIGNED-PAYLOAD")
        #expect(AWSSigner.payloadHash(.empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(AWSSigner.payloadHash(.data(Data("Param1=value1".utf8))) == AWSSigner.payloadHash(.string("Param1=value1")))
        let signer = AWSSigner(credentials: Self.credentials, name: "s3", region: "us-east-1", options: .init(normalizePath: false))
        let result = try signer.querySignature(
            method: "PUT", url: try #require(URL(string: "https://bucket.s3.amazonaws.com/a//b")), body: .unsignedPayload,
            expires: .seconds(60), date: Self.date)
        #expect(result.steps.canonicalRequest.hasSuffix("\nUNSIGNED-PAYLOAD"))
        #expect(result.steps.canonicalRequest.contains("\n/a//b\n"))
    }

    @Test func presigningAPresignedURLGivesTheSameURL() throws {
        let signer = AWSSigner(credentials: Self.credentials, name: "sqs", region: "us-east-1")
        let url = try #require(URL(string: "https://sqs.us-east-1.amazonaws.com/123/q?Action=ReceiveMessage&MaxNumberOfMessages=10"))
        let once = try signer.presignURL(method: "GET", url: url, expires: .seconds(300), date: Self.date)
        let twice = try signer.presignURL(method: "GET", url: once, expires: .seconds(300), date: Self.date)
        #expect(twice == once)
        #expect(once.query()?.hasPrefix("Action=ReceiveMessage&MaxNumberOfMessages=10&X-Amz-Algorithm=AWS4-HMAC-SHA256&") == true)
    }

    @Test func badInputIsAnErrorValue() throws {
        let signer = AWSSigner(credentials: Self.credentials, name: "sqs", region: "us-east-1")
        let url = try #require(URL(string: "https://sqs.us-east-1.amazonaws.com/"))

        #expect(throws: AWSSignerError.missingHost) {
            try signer.signHeaders(method: "GET", url: try #require(URL(string: "/relative/path")), date: Self.date)
        }
        for expires: Duration in [.zero, .seconds(-1), .milliseconds(1500), .seconds(7 * 24 * 3600 + 1)] {
            #expect(throws: AWSSignerError.invalidExpiry("\(expires)")) {
                try signer.presignURL(method: "GET", url: url, expires: expires, date: Self.date)
            }
        }
        #expect(throws: Never.self) {
            try signer.presignURL(method: "GET", url: url, expires: AWSSigner.maximumExpiry, date: Self.date)
        }
        for name in ["", "Bad Name", "Colon:", "Tab\t"] {
            #expect(throws: AWSSignerError.invalidHeaderName(name)) {
                try signer.signHeaders(method: "GET", url: url, headers: [(name, "v")], date: Self.date)
            }
        }
        // Foundation escapes a stray `%` when it parses a URL, so the signer sees `%25` and signs it as such.
        let strayPercent = try #require(URL(string: "https://sqs.us-east-1.amazonaws.com/a%zz?b=%zz"))
        let canonical = try signer.headerSignature(method: "GET", url: strayPercent, date: Self.date).steps.canonicalRequest
        #expect(canonical.hasPrefix("GET\n/a%25zz\nb=%25zz\n"))
    }
}
