import AWSSigV4
import CRMConfig
import CRMCore
import SNSSupport
import Testing

@Suite("Configuration: SQS sources")
struct SQSConfigTests {
    @Test func readsTheIssueExample() throws {
        let config = try ConfigLoader(environment: ["SECRET": "s3cret"]).load(yaml: """
            sources:
              - name: jomablue
                format: default
                sqs:
                  queue_url: https://sqs.eu-west-1.amazonaws.com/123456789012/events
                  region: eu-west-1
                  endpoint: http://127.0.0.1:4566
                  credentials: { access_key_id: AKID, secret_access_key: "${SECRET}" }
                  pollers: 2
                  wait_time: 20s
                  visibility_timeout: queue
                  on_failure: keep
                  sns: auto
                  filter_policy: { resource_type: [person, lead] }
                  filter_policy_scope: message_attributes
                  max_in_flight: 500
            """)
        guard case let .sqs(sqs)? = config.sources.first?.transport else {
            Issue.record("no SQS source")
            return
        }
        #expect(sqs.queueURL == "https://sqs.eu-west-1.amazonaws.com/123456789012/events")
        #expect(sqs.region == "eu-west-1" && sqs.endpoint == "http://127.0.0.1:4566")
        #expect(sqs.credentials == AWSCredentials(accessKeyId: "AKID", secretAccessKey: "s3cret"))
        #expect(sqs.pollers == 2 && sqs.waitTimeSeconds == 20 && sqs.visibilityTimeoutSeconds == nil)
        #expect(sqs.onFailure == .keep && sqs.sns == .auto)
        #expect(sqs.maxInFlight == 500)
        let policy = try #require(sqs.filterPolicy)
        #expect(policy.matches(attributes: ["resource_type": .string("lead")]))
        #expect(!policy.matches(attributes: ["resource_type": .string("session")]))
    }

    /// Quoted, the YAML 1.1 boolean words are the text they look like.
    @Test func quotedNorwayIsNorway() throws {
        let config = try ConfigLoader(environment: [:]).load(yaml: """
            sources:
              - name: s
                sqs:
                  queue_url: https://q
                  region: r
                  filter_policy: { country: ["NO", SE] }
            """)
        guard case let .sqs(sqs)? = config.sources.first?.transport, let policy = sqs.filterPolicy else {
            Issue.record("no SQS source with a filter policy")
            return
        }
        #expect(policy.matches(attributes: ["country": .string("NO")]))
        #expect(!policy.matches(attributes: ["country": .string("DK")]))
    }

    @Test(arguments: [
        ("queue_url: ftp://x\n      region: r", "sources[0].sqs.queue_url: expected an https:// queue URL, got \"ftp://x\""),
        ("queue_url: https://q\n      region: r\n      wait_time: 30s", "sources[0].sqs.wait_time: SQS long polls wait at most 20s, got 30s"),
        ("queue_url: https://q\n      region: r\n      visibility_timeout: 13h", "sources[0].sqs.visibility_timeout: expected queue or a duration from 1s to 12h, got \"13h\""),
        ("queue_url: https://q\n      region: r\n      filter_policy: { a: [ { numeric: [\">\", x] } ] }",
         "sources[0].sqs.filter_policy.a[0].numeric[1]: expected a number after \">\", found a string"),
        ("queue_url: https://q", "sources[0].sqs.region: required"),
        ("queue_url: https://q\n      region: r\n      filter_policy: { country: [NO, SE] }",
         "sources[0].sqs.filter_policy.country[0]: \"NO\" is a YAML 1.1 boolean; write true or false, or quote it (\"NO\") for the text"),
        ("queue_url: https://q\n      region: r\n      max_in_flight: 0", "sources[0].sqs.max_in_flight: must be greater than 0, got 0"),
        ("queue_url: https://q\n      region: r\n      max_in_flight: 200000", "sources[0].sqs.max_in_flight: at most 120000, got 200000"),
    ])
    func refusesBadSettings(fragment: String, expected: String) {
        do {
            _ = try ConfigLoader(environment: [:]).load(yaml: "sources:\n  - name: s\n    sqs:\n      \(fragment)\n")
            Issue.record("accepted")
        } catch {
            #expect(error.problems.map(\.description) == [expected])
        }
    }
}
