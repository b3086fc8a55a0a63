import CRMCore
@testable import CRMStoreSQLite
import Crypto
import Foundation
import Testing

@Suite("Keyed hash")
struct KeyedHashTests {
    @Test(arguments: ["", "contact-1", "m:app-events:0f8e-4a", String(repeating: "é", count: 300)])
    func matchesHMACSHA256(text: String) {
        let key = (0..<32).map { UInt8($0 * 7 % 256) }
        let expected = Data(HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: SymmetricKey(data: key)))
        let hasher = KeyedHash(key: key)
        #expect(hasher.hash(text) == expected)
        #expect(hasher.hash(text) == expected) // the prepared state is not consumed
        #expect(hasher.ledgerKey(text) == expected.prefix(KeyedHash.ledgerKeyBytes))
    }
}
