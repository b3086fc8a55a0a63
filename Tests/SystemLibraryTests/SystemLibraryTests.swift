import CCurl
import CRabbitMQ
import Testing

/// The C libraries link and their shims compile, whichever header layout the system has.
@Suite("System libraries")
struct SystemLibraryTests {
    @Test func librabbitmqLinks() {
        let version = String(cString: amqp_version())
        #expect(version.split(separator: ".").count >= 2, "amqp_version() = \(version)")
        // A connection object can be made and freed without a broker.
        let connection = amqp_new_connection()
        #expect(connection != nil)
        #expect(amqp_destroy_connection(connection) == Int32(AMQP_STATUS_OK.rawValue))
    }

    @Test func libcurlLinksAndHasTLS() {
        let info = CCurl_version_info()
        #expect(info != nil)
        let features = info?.pointee.features ?? 0
        #expect(features & Int32(CURL_VERSION_SSL) != 0, "libcurl without TLS")
        let handle = curl_easy_init()
        #expect(handle != nil)
        #expect(CCurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, 1000) == CURLE_OK)
        #expect(CCurl_setopt_string(handle, CURLOPT_URL, "http://127.0.0.1:1/") == CURLE_OK)
        curl_easy_cleanup(handle)
    }
}
