import CRMCore
import CSodium
import Foundation

/// Why Proca's encrypted `personalInfo` could not be opened; the message is dead-lettered with this reason.
public struct ProcaCryptoError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Opens Proca's encrypted personal data: NaCl `crypto_box` (X25519 + XSalsa20-Poly1305, MAC first, as libsodium's
/// `crypto_box_open_easy` expects), with the private keys of a @proca/crypto keystore.
///
/// Keystore file: `{"<public key, base64url>": {"private": "<private key, base64url>"}}`; every value base64url
/// without padding, keys 32 bytes.
public struct ProcaDecryptor: Sendable {
    /// Private keys by their public key (base64url text, as messages name them).
    public let privateKeys: [String: [UInt8]]

    private static let initialized: Bool = sodium_init() >= 0

    public init(privateKeys: [String: [UInt8]]) throws(ProcaCryptoError) {
        guard Self.initialized else { throw ProcaCryptoError("libsodium failed to initialise") }
        for (publicKey, privateKey) in privateKeys where privateKey.count != Int(crypto_box_secretkeybytes()) {
            throw ProcaCryptoError("the private key for \(publicKey) has \(privateKey.count) bytes, expected \(crypto_box_secretkeybytes())")
        }
        self.privateKeys = privateKeys
    }

    /// Reads a @proca/crypto keystore file.
    public init(keystoreJSON data: [UInt8]) throws(ProcaCryptoError) {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(data))
        } catch {
            throw ProcaCryptoError("the keystore is not JSON: \(error.localizedDescription)")
        }
        guard let entries = object as? [String: Any] else { throw ProcaCryptoError("the keystore must be a JSON object of public keys") }
        var keys: [String: [UInt8]] = [:]
        for (publicKey, value) in entries {
            guard let entry = value as? [String: Any], let privateText = entry["private"] as? String else {
                throw ProcaCryptoError("keystore entry \(publicKey) has no \"private\" key")
            }
            guard let privateKey = Self.base64URL(privateText) else {
                throw ProcaCryptoError("keystore entry \(publicKey): the private key is not base64url")
            }
            keys[publicKey] = privateKey
        }
        try self.init(privateKeys: keys)
    }

    /// Whether a private key for this public key (base64url) is configured.
    public func hasKey(for publicKey: String) -> Bool { privateKeys[publicKey] != nil }

    /// The plaintext of `payload`, encrypted for `receiverPublicKey` by `senderPublicKey`. All four base64url.
    public func open(payload: String, nonce: String, receiverPublicKey: String, senderPublicKey: String) throws(ProcaCryptoError) -> [UInt8] {
        guard let privateKey = privateKeys[receiverPublicKey] else {
            throw ProcaCryptoError("no private key for encryptKey.public \(receiverPublicKey) in the keystore")
        }
        guard let cipher = Self.base64URL(payload) else { throw ProcaCryptoError("personalInfo.payload is not base64url") }
        guard let nonceBytes = Self.base64URL(nonce), nonceBytes.count == Int(crypto_box_noncebytes()) else {
            throw ProcaCryptoError("personalInfo.nonce must be \(crypto_box_noncebytes()) bytes of base64url")
        }
        guard let sender = Self.base64URL(senderPublicKey), sender.count == Int(crypto_box_publickeybytes()) else {
            throw ProcaCryptoError("personalInfo.signKey.public must be \(crypto_box_publickeybytes()) bytes of base64url")
        }
        let macBytes = Int(crypto_box_macbytes())
        guard cipher.count >= macBytes else { throw ProcaCryptoError("personalInfo.payload is shorter than its MAC") }
        var plain = [UInt8](repeating: 0, count: cipher.count - macBytes)
        let status = plain.withUnsafeMutableBufferPointer { out in
            crypto_box_open_easy(out.baseAddress, cipher, UInt64(cipher.count), nonceBytes, sender, privateKey)
        }
        guard status == 0 else {
            throw ProcaCryptoError("personalInfo does not open with the key for \(receiverPublicKey): wrong key, sender or tampered payload")
        }
        return plain
    }

    /// base64url without padding (padding tolerated), nil for anything else.
    static func base64URL(_ text: String) -> [UInt8]? {
        guard text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "=") }) else { return nil }
        var base64 = text.replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map { [UInt8]($0) }
    }
}

extension ProcaDecryptor: PersonalInfoOpener {
    public func openPersonalInfo(payload: String, nonce: String, receiverPublicKey: String, senderPublicKey: String) throws -> [UInt8] {
        try open(payload: payload, nonce: nonce, receiverPublicKey: receiverPublicKey, senderPublicKey: senderPublicKey)
    }
}
