import AWSSigV4
import Foundation

/// One case folder of AWS's SigV4 test suite (Tests/Fixtures/sigv4/v4, see NOTICE.md there).
struct SigningTestCase {
    /// Read from the source tree rather than bundled as a SwiftPM resource: the fixtures stay plain files that
    /// diff cleanly against aws-c-auth's.
    static let suiteDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // AWSSigV4Tests
        .deletingLastPathComponent()  // Tests
        .appendingPathComponent("Fixtures/sigv4/v4", isDirectory: true)

    /// Every case folder, sorted. Empty if the folder is missing; `theSuiteIsComplete` catches that, since a
    /// parameterized test over no arguments would pass without checking anything.
    static let names: [String] = {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: suiteDirectory.path)) ?? []
        return entries.filter { !$0.hasPrefix(".") }.sorted()
    }()

    struct Context: Decodable {
        struct Credentials: Decodable {
            let accessKeyId: String
            let secretAccessKey: String
            let token: String?
        }

        let credentials: Credentials
        let expirationInSeconds: Int
        let normalize: Bool
        let region: String
        let service: String
        let signBody: Bool
        let timestamp: Date
        let omitSessionToken: Bool?
    }

    let name: String
    let context: Context
    let request: HTTPRequestText

    init(name: String) throws {
        self.name = name
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .iso8601
        context = try decoder.decode(Context.self, from: Data(contentsOf: Self.suiteDirectory.appendingPathComponent("\(name)/context.json")))
        request = try HTTPRequestText(parsing: try Self.read(name, "request.txt"))
    }

    static func read(_ name: String, _ file: String) throws -> String {
        try String(contentsOf: suiteDirectory.appendingPathComponent("\(name)/\(file)"), encoding: .utf8)
    }

    func expected(_ file: String) throws -> String { try Self.read(name, file) }

    /// Exists for the cases that have a presigned-URL variant.
    var hasQueryVariant: Bool {
        FileManager.default.fileExists(atPath: Self.suiteDirectory.appendingPathComponent("\(name)/query-signed-request.txt").path)
    }

    var signer: AWSSigner {
        AWSSigner(
            credentials: AWSCredentials(
                accessKeyId: context.credentials.accessKeyId,
                secretAccessKey: context.credentials.secretAccessKey,
                sessionToken: context.credentials.token
            ),
            name: context.service,
            region: context.region,
            options: AWSSigner.Options(
                normalizePath: context.normalize,
                addContentSHA256Header: context.signBody,
                omitSessionTokenFromSignature: context.omitSessionToken ?? false
            )
        )
    }

    var body: AWSSigner.Body { request.body.isEmpty ? .empty : .string(request.body) }

    /// The request's URL. The vectors have no scheme; the host comes from the Host header. Foundation escapes the
    /// raw spaces and UTF-8 some targets hold, which the signer must sign as the vectors do.
    func url() throws -> URL {
        guard let host = request.headers.first(where: { $0.name.lowercased() == "host" })?.value,
            let url = URL(string: "https://\(host)\(request.target)")
        else {
            throw FixtureError.unusable("\(name): no Host header or no URL from target \(request.target)")
        }
        return url
    }
}

enum FixtureError: Error {
    case unusable(String)
}
