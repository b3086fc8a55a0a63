import Foundation
import ProcaCrypto
import Testing

/// The known-answer vector of ../shared/formats/proca.md §3 (test keys only).
@Suite("Proca personal data decryption")
struct ProcaDecryptorTests {
    static let privateKey = "A2CD8TBmAwfTy_mAVn0BIvMWZow6Nvb67Pt-R37ID0w"
    static let publicKey = "1fB2iKL_QLmQzzCm3G8eVjIsbPPy2Yies9LK-EV4MBc"
    static let sender = "_Tu4KDngvem25-db5APmGJzu4oOOpWPEnKBVUP3PakA"
    static let nonce = "uwoi83vCM__gRZWwnJSoCNjYWSiUeN28"
    static let payload = "gBfSrCsi5L_fmXfzdOqN1YzH47WQVR8iiZVrYLGxGA061PZ32dEQWigDvamid4MzCOigFO0eqljqFuCl4fHjwv6DljBMHEbFuycIzZttOSSXvJRNHl10YgR6glY-sc_JqAPn_lYKVVlBe8Wj_KpsqlS89oW5MM5wATR6_GOrwZAF6TQzOdiNY3J2HAV6HLpXA4DYKg"
    static let keystore = #"{"\#(publicKey)": {"private": "\#(privateKey)"}}"#

    @Test func theKnownAnswerVectorOpens() throws {
        let decryptor = try ProcaDecryptor(keystoreJSON: Array(Self.keystore.utf8))
        #expect(decryptor.hasKey(for: Self.publicKey))
        let plain = try decryptor.open(payload: Self.payload, nonce: Self.nonce, receiverPublicKey: Self.publicKey, senderPublicKey: Self.sender)
        #expect(String(decoding: plain, as: UTF8.self)
            == #"{"firstName":"Dana","lastName":"Kovač","email":"dana.kovac@example.org","postcode":"1010","country":"AT","phone":"+43 660 1234567"}"#)
    }

    @Test func anUnknownReceiverKeyIsNamed() throws {
        let decryptor = try ProcaDecryptor(keystoreJSON: Array(Self.keystore.utf8))
        #expect(throws: ProcaCryptoError("no private key for encryptKey.public AAAA in the keystore")) {
            try decryptor.open(payload: Self.payload, nonce: Self.nonce, receiverPublicKey: "AAAA", senderPublicKey: Self.sender)
        }
    }

    @Test func aTamperedPayloadDoesNotOpen() throws {
        let decryptor = try ProcaDecryptor(keystoreJSON: Array(Self.keystore.utf8))
        var tampered = Array(Self.payload)
        tampered[10] = tampered[10] == "A" ? "B" : "A"
        #expect(throws: ProcaCryptoError("personalInfo does not open with the key for \(Self.publicKey): wrong key, sender or tampered payload")) {
            try decryptor.open(payload: String(tampered), nonce: Self.nonce, receiverPublicKey: Self.publicKey, senderPublicKey: Self.sender)
        }
        // The wrong sender key does not open it either.
        #expect(throws: ProcaCryptoError.self) {
            try decryptor.open(payload: Self.payload, nonce: Self.nonce, receiverPublicKey: Self.publicKey, senderPublicKey: Self.publicKey)
        }
    }

    @Test(arguments: [
        ("not json", "the keystore is not JSON"),
        (#"["a"]"#, "the keystore must be a JSON object of public keys"),
        (#"{"k": {"secret": "x"}}"#, #"keystore entry k has no "private" key"#),
        (#"{"k": {"private": "AAAA"}}"#, "the private key for k has 3 bytes, expected 32"),
    ])
    func brokenKeystoresAreRefused(json: String, reason: String) {
        do {
            _ = try ProcaDecryptor(keystoreJSON: Array(json.utf8))
            Issue.record("accepted \(json)")
        } catch {
            #expect(error.reason.hasPrefix(reason), "got \(error.reason)")
        }
    }
}
