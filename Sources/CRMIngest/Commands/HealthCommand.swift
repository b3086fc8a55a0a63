import ArgumentParser
import CRMConfig
import CurlHTTP

/// `crm-ingest health`: asks a running daemon's `/healthz` (or `/readyz`) and exits 0 on 200. The container's
/// HEALTHCHECK uses it, so the image needs no curl.
struct HealthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Exits 0 when the running daemon's /healthz (or, with --ready, /readyz) answers 200.",
        discussion: """
            The address is the configuration's http.listen (a wildcard address is asked on loopback), or --url. \
            Blocking; the command's own thread.
            """
    )

    @OptionGroup var options: ConfigOption

    @Option(help: "The URL to ask instead of the configuration's /healthz.")
    var url: String?

    @Flag(help: "Ask /readyz: the store answers and every source is connected.")
    var ready = false

    @Option(help: "Seconds to wait for the answer.")
    var timeout: Int = 3

    func run() throws {
        let target: String
        if let url {
            target = url
        } else {
            let config = try ConfigLoading.load(options.config)
            guard let server = config.http else {
                printError("health: the configuration has no http section, so the daemon serves no /healthz; give --url")
                throw ExitCode(1)
            }
            target = Self.url(server, path: ready ? "/readyz" : "/healthz")
        }
        let response: HTTPResponse
        do {
            response = try CurlHTTPClient(connectTimeout: .seconds(timeout)).send(HTTPRequest(method: "GET", url: target), timeout: .seconds(timeout))
        } catch {
            printError("health: \(target): \(error)")
            throw ExitCode(1)
        }
        let body = String(decoding: response.body.prefix(2_000), as: UTF8.self)
        guard response.status == 200 else {
            printError("health: \(target) answered \(response.status): \(body)")
            throw ExitCode(1)
        }
        print("ok: \(target) answered 200")
    }

    /// The daemon's URL on this host: a wildcard listen address is asked on loopback.
    static func url(_ server: HTTPServerConfig, path: String) -> String {
        let host: String
        switch server.host {
        case "0.0.0.0", "": host = "127.0.0.1"
        case "::", "[::]": host = "[::1]"
        default: host = server.host.contains(":") ? "[\(server.host)]" : server.host
        }
        return "http://\(host):\(server.port)\(path)"
    }
}
