import AWSSigV4
import SNSSupport

/// An SQS source: long-polled by `pollers` threads, deleted after commit, kept invisible while in process.
public struct SQSSourceConfig: Sendable, Equatable {
    public var queueURL: String
    public var region: String
    /// Where requests go instead of `https://sqs.<region>.amazonaws.com` (a local SQS).
    public var endpoint: String?
    /// From the file; nil: the environment, then the shared credentials file.
    public var credentials: AWSCredentials?
    /// Profile of the shared credentials file; nil: AWS_PROFILE, then `default`.
    public var profile: String?
    public var pollers: Int
    public var waitTimeSeconds: Int
    /// nil: read the queue's own VisibilityTimeout.
    public var visibilityTimeoutSeconds: Int?
    public var onFailure: OnFailure
    public var sns: SNSMode
    public var filterPolicy: SNSFilterPolicy?
    public var lanes: Int
    /// At most this many messages received and not yet deleted or given back: pollers wait for room, so a store
    /// slower than the queue holds back receiving instead of piling up messages to keep invisible.
    public var maxInFlight: Int
    /// Where refused messages are recorded when the queue has no redrive policy.
    public var deadLetterFile: String
    /// How long a record stays in `deadLetterFile` (its body is a raw payload): 14 days by default, SQS's own
    /// longest retention. The daemon's hourly pruning removes older records.
    public var deadLetterRetentionSeconds: Int64

    public enum OnFailure: String, Sendable, Equatable, CaseIterable {
        /// Leave the message in flight: its visibility timeout and the queue's redrive policy decide.
        case keep
        /// Make it visible again at once.
        case release
    }

    public enum SNSMode: String, Sendable, Equatable, CaseIterable {
        /// Unwrap SNS notifications when a body is one.
        case auto
        case off
    }

    public init(
        queueURL: String, region: String, endpoint: String? = nil, credentials: AWSCredentials? = nil, profile: String? = nil,
        pollers: Int = 2, waitTimeSeconds: Int = 20, visibilityTimeoutSeconds: Int? = nil, onFailure: OnFailure = .keep,
        sns: SNSMode = .auto, filterPolicy: SNSFilterPolicy? = nil, lanes: Int = 4, maxInFlight: Int = 1_000, deadLetterFile: String = "./data/dead-letters.jsonl",
        deadLetterRetentionSeconds: Int64 = 14 * 86_400
    ) {
        self.deadLetterRetentionSeconds = deadLetterRetentionSeconds
        self.queueURL = queueURL
        self.region = region
        self.endpoint = endpoint
        self.credentials = credentials
        self.profile = profile
        self.pollers = pollers
        self.waitTimeSeconds = waitTimeSeconds
        self.visibilityTimeoutSeconds = visibilityTimeoutSeconds
        self.onFailure = onFailure
        self.sns = sns
        self.filterPolicy = filterPolicy
        self.lanes = lanes
        self.maxInFlight = maxInFlight
        self.deadLetterFile = deadLetterFile
    }

    /// A FIFO queue keeps order per message group; its URL ends in `.fifo`.
    public var isFIFO: Bool { queueURL.hasSuffix(".fifo") }
}
