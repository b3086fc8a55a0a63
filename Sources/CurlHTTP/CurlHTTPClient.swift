import CCurl
import Foundation

/// An HTTP request for `CurlHTTPClient`.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    /// In order; names may repeat.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, url: String, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header names lower-cased.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name == lower }?.value
    }
}

/// A transport failure: no HTTP answer at all (connection refused, timeout, TLS).
public struct HTTPClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// libcurl's code (`CURLE_*`) and its text.
    public var curlCode: Int
    public var message: String
    public var isTimeout: Bool { curlCode == Int(CURLE_OPERATION_TIMEDOUT.rawValue) }
    /// The caller's `shouldAbort` said stop.
    public var isAborted: Bool { curlCode == Int(CURLE_ABORTED_BY_CALLBACK.rawValue) }

    public var description: String { "http \(curlCode): \(message)" }
}

/// A blocking HTTP client on one libcurl easy handle: connections are kept alive between requests.
///
/// Not thread-safe and not `Sendable`: the owner uses it from one thread, off Swift's cooperative pool (every call
/// blocks for the whole request, a long poll included).
public final class CurlHTTPClient {
    private let handle: UnsafeMutableRawPointer
    public let connectTimeout: Duration
    public let verifyTLS: Bool
    /// Goes straight to the host whatever `http_proxy`/`ALL_PROXY` say (libcurl follows them otherwise): for the
    /// link-local credentials endpoints, which a proxy cannot reach and must never see.
    public let bypassProxy: Bool

    private static let globalInit: Void = { _ = curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    public init(connectTimeout: Duration = .seconds(5), verifyTLS: Bool = true, bypassProxy: Bool = false) {
        _ = Self.globalInit
        // curl_easy_init fails only without memory; a client that cannot allocate is not recoverable either.
        handle = curl_easy_init()!
        self.connectTimeout = connectTimeout
        self.verifyTLS = verifyTLS
        self.bypassProxy = bypassProxy
    }

    deinit {
        curl_easy_cleanup(handle)
    }

    /// Sends the request and waits up to `timeout` for the whole answer. HTTP error statuses are answers, not
    /// errors: only a missing answer throws.
    /// - Parameter shouldAbort: asked about once a second while the request runs; true ends it (a long poll
    ///   during shutdown), with an error whose `isAborted` is true.
    public func send(_ request: HTTPRequest, timeout: Duration, shouldAbort: (@Sendable () -> Bool)? = nil) throws(HTTPClientError) -> HTTPResponse {
        // Reset clears the options of the last request but keeps its open connections.
        curl_easy_reset(handle)
        let collector = ResponseCollector()
        collector.shouldAbort = shouldAbort
        let collectorPointer = Unmanaged.passUnretained(collector).toOpaque()
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        for header in request.headers {
            headerList = curl_slist_append(headerList, "\(header.name): \(header.value)")
        }
        // No "Expect: 100-continue" round trip on larger bodies.
        headerList = curl_slist_append(headerList, "Expect:")

        var options: [CURLcode] = [
            CCurl_setopt_string(handle, CURLOPT_URL, request.url),
            CCurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method),
            CCurl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList),
            CCurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1),
            CCurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, milliseconds(connectTimeout)),
            CCurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, milliseconds(timeout)),
            CCurl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, verifyTLS ? 1 : 0),
            CCurl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, verifyTLS ? 2 : 0),
            bypassProxy ? CCurl_setopt_string(handle, CURLOPT_NOPROXY, "*") : CURLE_OK,
            CCurl_setopt_write_function(handle) { data, size, count, user in
                guard let data, let user else { return 0 }
                Unmanaged<ResponseCollector>.fromOpaque(user).takeUnretainedValue()
                    .body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: size * count))
                return size * count
            },
            CCurl_setopt_pointer(handle, CURLOPT_WRITEDATA, collectorPointer),
            CCurl_setopt_header_function(handle) { data, size, count, user in
                guard let data, let user else { return 0 }
                Unmanaged<ResponseCollector>.fromOpaque(user).takeUnretainedValue()
                    .headerLine(UnsafeRawBufferPointer(start: data, count: size * count))
                return size * count
            },
            CCurl_setopt_pointer(handle, CURLOPT_HEADERDATA, collectorPointer),
            CCurl_setopt_long(handle, CURLOPT_NOPROGRESS, shouldAbort == nil ? 1 : 0),
            CCurl_setopt_progress_function(handle) { user, _, _, _, _ in
                guard let user else { return 0 }
                return Unmanaged<ResponseCollector>.fromOpaque(user).takeUnretainedValue().shouldAbort?() == true ? 1 : 0
            },
            CCurl_setopt_pointer(handle, CURLOPT_XFERINFODATA, collectorPointer),
        ]
        options.removeAll { $0 == CURLE_OK }
        if let failed = options.first { throw error(failed) }

        let code: CURLcode = request.body.withUnsafeBytes { body in
            _ = CCurl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, body.count)
            _ = CCurl_setopt_pointer(handle, CURLOPT_POSTFIELDS, body.count > 0 ? UnsafeMutableRawPointer(mutating: body.baseAddress) : nil)
            if body.count == 0 && request.method != "POST" { _ = CCurl_setopt_long(handle, CURLOPT_HTTPGET, 1) }
            return withExtendedLifetime(collector) { curl_easy_perform(handle) }
        }
        guard code == CURLE_OK else { throw error(code) }
        var status = 0
        _ = CCurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: collector.headers, body: collector.body)
    }

    private func error(_ code: CURLcode) -> HTTPClientError {
        HTTPClientError(curlCode: Int(code.rawValue), message: String(cString: curl_easy_strerror(code)))
    }

    private func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }
}

/// Collects one response; reachable from libcurl's callbacks through the userdata pointer.
private final class ResponseCollector {
    var shouldAbort: (@Sendable () -> Bool)?
    var body: [UInt8] = []
    var headers: [(name: String, value: String)] = []

    func headerLine(_ bytes: UnsafeRawBufferPointer) {
        let line = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if line.hasPrefix("HTTP/") {
            headers.removeAll() // a new response (after a redirect or 100 Continue)
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        headers.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
    }
}
