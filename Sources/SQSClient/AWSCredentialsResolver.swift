import AWSSigV4
import Foundation

/// Finds credentials the way the AWS tools do: given ones first, then the environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then the shared credentials file (`~/.aws/credentials`, or
/// `AWS_SHARED_CREDENTIALS_FILE`), profile `AWS_PROFILE` or `default`.
public enum AWSCredentialsResolver {
    public struct NotFound: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public static func resolve(
        given: AWSCredentials?, profile: String?, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(NotFound) -> AWSCredentials {
        if let given { return given }
        if let key = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"], !key.isEmpty, !secret.isEmpty {
            return AWSCredentials(accessKeyId: key, secretAccessKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 })
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        let path = environment["AWS_SHARED_CREDENTIALS_FILE"] ?? "\(home)/.aws/credentials"
        let name = profile ?? environment["AWS_PROFILE"] ?? "default"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw NotFound(description: "no AWS credentials: none in the config, none in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and no file \(path)")
        }
        guard let section = sharedFileProfile(text, name: name), let key = section["aws_access_key_id"], let secret = section["aws_secret_access_key"] else {
            throw NotFound(description: "no aws_access_key_id and aws_secret_access_key for profile [\(name)] in \(path)")
        }
        return AWSCredentials(accessKeyId: key, secretAccessKey: secret, sessionToken: section["aws_session_token"])
    }

    /// The keys of one `[profile]` section of an INI-style credentials file.
    static func sharedFileProfile(_ text: String, name: String) -> [String: String]? {
        var current: String?
        var found: [String: String]?
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                current = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                if current == name { found = found ?? [:] }
                continue
            }
            guard current == name, let equals = line.firstIndex(of: "=") else { continue }
            found?[line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()] = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        }
        return found
    }
}
