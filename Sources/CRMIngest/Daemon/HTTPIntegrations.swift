import CRMConfig
import CRMCore
import CRMSourceHTTP
import CRMSourceSupport
import CoreMetrics
import Foundation
import Prometheus

/// The HTTP sources of a configuration, resolved: endpoint ids (generated once and kept in the store when the
/// configuration names none), verifiers, metrics.
enum HTTPIntegrations {
    struct Resolved: Sendable {
        var source: String
        var endpoint: String
        var config: HTTPSourceConfig
    }

    /// Every http source with its endpoint; an absent one is generated now and kept in the store.
    static func endpoints(_ config: DaemonConfig, store: any CRMStore) async throws -> [Resolved] {
        var result: [Resolved] = []
        for source in config.sources {
            guard case let .http(http) = source.transport else { continue }
            let endpoint: String
            if let configured = http.endpoint {
                endpoint = configured
            } else {
                endpoint = try await store.integrationEndpoint(source: source.name, proposed: UUID().uuidString.lowercased())
            }
            result.append(Resolved(source: source.name, endpoint: endpoint, config: http))
        }
        return result
    }

    /// What the HTTP server serves. Fails (before anything listens) when a configured key cannot be used.
    static func make(_ resolved: [Resolved], server: HTTPServerConfig, limits: InputLimits) async throws -> [HTTPIntegration] {
        var integrations: [HTTPIntegration] = []
        for item in resolved {
            var verifier: IncomingJWTVerifier?
            if case let .jwt(jwt) = item.config.auth {
                do {
                    verifier = try await IncomingJWTVerifier(config: jwt)
                } catch {
                    throw DaemonStartError("source \(item.source): the JWT key cannot be used: \(error)")
                }
            }
            let integration = IncomingIntegration(
                source: item.source, endpointId: item.endpoint, eventType: item.config.eventType, contactId: item.config.contactId,
                deduplication: item.config.deduplication, jsonLimits: limits.json(maxBytes: server.maxBodyBytes), maxProperties: limits.maxProperties
            )
            integrations.append(HTTPIntegration(integration: integration, verifier: verifier, metrics: EventMetrics(source: item.source)))
        }
        return integrations
    }

    static func url(_ server: HTTPServerConfig, endpoint: String) -> String {
        let host = server.host.contains(":") ? "[\(server.host)]" : server.host
        return "http://\(host):\(server.port)/incoming/\(endpoint)"
    }
}

/// Prometheus as the process's swift-metrics backend, bootstrapped once on first use.
enum PrometheusMetrics {
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    /// The text exposition format.
    static func text() -> String { registry.emitToString() }
}

/// The daemon cannot start: the reason names what to fix.
struct DaemonStartError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
