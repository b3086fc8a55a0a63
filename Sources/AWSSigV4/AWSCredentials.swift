/// An access key, its secret, and (for temporary credentials) a session token.
///
/// Printing, string interpolation, `dump` and `debugPrint` show only the key id: logs that print a
/// configuration or a signer never carry the secret or the token.
public struct AWSCredentials: Sendable, Hashable {
    public var accessKeyId: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}

extension AWSCredentials: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        "\(accessKeyId)/***" + (sessionToken == nil ? "" : " (with session token)")
    }

    public var debugDescription: String { description }

    // Without this, `dump(credentials)` and the default description of a struct that holds credentials
    // would walk the stored properties and print the secret.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: ["accessKeyId": accessKeyId, "secretAccessKey": "***", "sessionToken": sessionToken == nil ? "nil" : "***"],
            displayStyle: .struct
        )
    }
}
