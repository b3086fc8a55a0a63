import AWSSigV4
import Foundation
import SQSClient
import Testing

@Suite("AWS credentials resolution")
struct CredentialsResolverTests {
    @Test func givenCredentialsComeFirst() throws {
        let given = AWSCredentials(accessKeyId: "GIVEN", secretAccessKey: "s")
        let resolved = try AWSCredentialsResolver.resolve(given: given, profile: nil, environment: ["AWS_ACCESS_KEY_ID": "ENV", "AWS_SECRET_ACCESS_KEY": "e"])
        #expect(resolved == given)
    }

    @Test func thenTheEnvironment() throws {
        let resolved = try AWSCredentialsResolver.resolve(given: nil, profile: nil, environment: [
            "AWS_ACCESS_KEY_ID": "ENV", "AWS_SECRET_ACCESS_KEY": "e", "AWS_SESSION_TOKEN": "tok",
        ])
        #expect(resolved == AWSCredentials(accessKeyId: "ENV", secretAccessKey: "e", sessionToken: "tok"))
    }

    @Test func thenTheSharedFileWithItsProfile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-aws-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("credentials").path
        try """
            # comment
            [default]
            aws_access_key_id = DEFAULTKEY
            aws_secret_access_key = defaultsecret

            [crm]
            aws_access_key_id=CRMKEY
            aws_secret_access_key=crmsecret
            aws_session_token = crmtoken
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let environment = ["AWS_SHARED_CREDENTIALS_FILE": file]
        #expect(try AWSCredentialsResolver.resolve(given: nil, profile: nil, environment: environment).accessKeyId == "DEFAULTKEY")
        #expect(try AWSCredentialsResolver.resolve(given: nil, profile: nil, environment: environment.merging(["AWS_PROFILE": "crm"]) { $1 })
            == AWSCredentials(accessKeyId: "CRMKEY", secretAccessKey: "crmsecret", sessionToken: "crmtoken"))
        #expect(try AWSCredentialsResolver.resolve(given: nil, profile: "crm", environment: environment).accessKeyId == "CRMKEY")
        #expect(throws: AWSCredentialsResolver.NotFound.self) {
            try AWSCredentialsResolver.resolve(given: nil, profile: "nope", environment: environment)
        }
    }

    @Test func nothingAnywhereIsAClearError() {
        do {
            _ = try AWSCredentialsResolver.resolve(given: nil, profile: nil, environment: ["HOME": "/nonexistent"])
            Issue.record("found credentials")
        } catch {
            #expect(error.description.contains("no AWS credentials"))
        }
    }

    @Test func secretsNeverPrint() {
        let credentials = AWSCredentials(accessKeyId: "AKID", secretAccessKey: "very-secret", sessionToken: "token-secret")
        #expect(!"\(credentials)".contains("very-secret") && !"\(credentials)".contains("token-secret"))
        #expect(!String(reflecting: credentials).contains("very-secret"))
    }
}
