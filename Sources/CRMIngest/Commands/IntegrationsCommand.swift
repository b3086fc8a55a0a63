import ArgumentParser
import CRMConfig
import CRMCore
import Logging

/// `crm-ingest integrations`: the URL of every HTTP integration, generating (once) the endpoints the configuration
/// leaves out.
struct IntegrationsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "integrations",
        abstract: "Prints each HTTP integration's URL, authentication and deduplication; generates missing endpoints once."
    )

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let config: DaemonConfig
        do { config = try ConfigLoading.load(options.config) } catch { throw ExitCode(1) }
        guard let server = config.http else {
            print("no http section: the configuration has no HTTP server and no integrations")
            return
        }
        let resolved: [HTTPIntegrations.Resolved]
        do {
            resolved = try await StoreFactory.withStore(config.store, logger: Logger(label: "crm-ingest")) { store in
                try await HTTPIntegrations.endpoints(config, store: store)
            }
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
        if resolved.isEmpty { print("no http sources") }
        for item in resolved {
            print("\(item.source)")
            print("  url:            \(HTTPIntegrations.url(server, endpoint: item.endpoint))")
            switch item.config.auth {
            case .none:
                print("  auth:           none (anyone who knows the URL can send)")
            case let .jwt(jwt):
                var checks = ["exp"]
                if let audience = jwt.audience { checks.append("aud=\(audience)") }
                if let issuer = jwt.issuer { checks.append("iss=\(issuer)") }
                print("  auth:           JWT \(jwt.algorithm.rawValue), Authorization: Bearer <token>; checks \(checks.joined(separator: ", ")), leeway \(jwt.leewaySeconds)s")
            }
            switch item.config.eventType {
            case let .fixed(type): print("  event type:     \(type.rawValue)")
            case let .field(field): print("  event type:     from \(field)")
            }
            if let contact = item.config.contactId { print("  contact:        \(contact)") }
            if let dedup = item.config.deduplication {
                var parts = dedup.parameters.map(\.description)
                if let header = dedup.header { parts.insert("client hash in headers.\(header) (used alone when sent)", at: 0) }
                print("  deduplication:  \(parts.joined(separator: ", ")); window \(dedup.windowSeconds)s from the last request")
            } else {
                print("  deduplication:  off")
            }
        }
    }
}
