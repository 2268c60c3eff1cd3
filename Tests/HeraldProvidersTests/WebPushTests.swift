import Crypto
import Foundation
import HeraldCore
import HeraldHTTPRuntime
import HeraldProviderModel
import HeraldProviders
import HeraldTemplating
import Testing

/// RFC 8291 (aes128gcm payload encryption) and RFC 8292 (VAPID) as Herald implements them. The
/// decryption here is the receiving user agent's side, written from the RFC with plain HMAC-SHA-256
/// rather than through `WebPushEncryption`, so the two can't agree on a mistake.
@Suite("Web Push")
struct WebPushTests {
    /// RFC 8291 Appendix A, every value as printed there (base64url).
    enum Appendix {
        static let plaintext = "When I grow up, I want to be a watermelon"
        static let serverPrivate = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
        static let serverPublic = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
        static let userAgentPrivate = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
        static let userAgentPublic = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
        static let salt = "DGv6ra1nlYgDCS1FRnbzlw"
        static let authSecret = "BTBZMqHH6r4Tts7J_aSIgg"
        static let ecdhSecret = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs"
        static let ikm = "S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg"
        static let prk = "09_eUZGrsvxChDCGRCdkLiDXrReGOEVeSCdCcPBSJSc"
        static let cek = "oIhVW04MRdy2XN9CiKLxTg"
        static let nonce = "4h_95klXJ5E_qnoN"
        static let header = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
        static let message = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"

        static func bytes(_ text: String) -> [UInt8] { Array(Base64URL.decode(text)!) }
        static var serverKey: P256.KeyAgreement.PrivateKey { try! .init(rawRepresentation: bytes(serverPrivate)) }
    }

    @Test("RFC 8291 Appendix A: every intermediate value")
    func appendixIntermediateValues() throws {
        #expect(Base64URL.encode(Appendix.serverKey.publicKey.x963Representation) == Appendix.serverPublic)
        let keys = try WebPushEncryption.deriveKeys(
            userAgentPublicKey: Appendix.bytes(Appendix.userAgentPublic), authSecret: Appendix.bytes(Appendix.authSecret),
            salt: Appendix.bytes(Appendix.salt), serverKey: Appendix.serverKey)
        #expect(Base64URL.encode(keys.ecdhSecret) == Appendix.ecdhSecret)
        #expect(Base64URL.encode(keys.ikm) == Appendix.ikm)
        #expect(Base64URL.encode(keys.prk) == Appendix.prk)
        #expect(Base64URL.encode(keys.contentEncryptionKey) == Appendix.cek)
        #expect(Base64URL.encode(keys.nonce) == Appendix.nonce)
    }

    @Test("RFC 8291 Appendix A: the message byte for byte")
    func appendixMessage() throws {
        let body = try WebPushEncryption.encrypt(
            Array(Appendix.plaintext.utf8), userAgentPublicKey: Appendix.bytes(Appendix.userAgentPublic),
            authSecret: Appendix.bytes(Appendix.authSecret), recordSize: 4096, salt: Appendix.bytes(Appendix.salt),
            serverKey: Appendix.serverKey)
        #expect(Base64URL.encode(body) == Appendix.message)
        #expect(Base64URL.encode(body.prefix(WebPushEncryption.headerLength)) == Appendix.header)
        // And the user agent's side reads it back.
        let userAgent = try P256.KeyAgreement.PrivateKey(rawRepresentation: Appendix.bytes(Appendix.userAgentPrivate))
        let opened = try UserAgent.decrypt(body, key: userAgent, authSecret: Appendix.bytes(Appendix.authSecret))
        #expect(opened.plaintext == Array(Appendix.plaintext.utf8))
        #expect(opened.recordSize == 4096)
    }

    @Test("a fresh salt and server key per message; the user agent decrypts it")
    func roundTripWithFreshKeys() throws {
        let userAgent = P256.KeyAgreement.PrivateKey()
        let auth = (0..<16).map { _ in UInt8.random(in: 0...255) }
        let plaintext = Array(#"{"title":"Привет 👋","body":"a\"b</script>"}"#.utf8)
        let first = try WebPushEncryption.encrypt(
            plaintext, userAgentPublicKey: Array(userAgent.publicKey.x963Representation), authSecret: auth)
        let second = try WebPushEncryption.encrypt(
            plaintext, userAgentPublicKey: Array(userAgent.publicKey.x963Representation), authSecret: auth)
        #expect(first.prefix(16) != second.prefix(16), "salt reused")
        #expect(first[21..<86] != second[21..<86], "server key reused")
        #expect(first.count == WebPushEncryption.headerLength + plaintext.count + 1 + 16)
        for body in [first, second] {
            let opened = try UserAgent.decrypt(body, key: userAgent, authSecret: auth)
            #expect(opened.plaintext == plaintext)
            #expect(opened.padding == 0)
        }
        // The wrong auth secret does not open it (GCM authenticates the key derivation too).
        #expect(throws: (any Error).self) {
            _ = try UserAgent.decrypt(first, key: userAgent, authSecret: [UInt8](repeating: 7, count: 16))
        }
    }

    @Test("padding: zeros after the 0x02 delimiter, inside the one record")
    func padding() throws {
        let userAgent = P256.KeyAgreement.PrivateKey()
        let auth = [UInt8](repeating: 1, count: 16)
        let body = try WebPushEncryption.encrypt(
            Array("short".utf8), userAgentPublicKey: Array(userAgent.publicKey.x963Representation), authSecret: auth,
            recordSize: 512, padTo: 200)
        #expect(body.count == WebPushEncryption.headerLength + 200 + 1 + 16)
        let opened = try UserAgent.decrypt(body, key: userAgent, authSecret: auth)
        #expect(opened.plaintext == Array("short".utf8))
        #expect(opened.padding == 195)
        #expect(opened.recordSize == 512)
    }

    @Test("size limits: one record, and at most 4096 bytes of body")
    func sizeLimits() throws {
        let key = Array(P256.KeyAgreement.PrivateKey().publicKey.x963Representation)
        let auth = [UInt8](repeating: 2, count: 16)
        let largest = [UInt8](repeating: 0x61, count: WebPushProviderSpec.maximumPlaintext)
        #expect(WebPushProviderSpec.maximumPlaintext == 3993)
        let body = try WebPushEncryption.encrypt(largest, userAgentPublicKey: key, authSecret: auth)
        #expect(body.count == 4096)
        #expect(throws: WebPushError.self) {
            _ = try WebPushEncryption.encrypt(largest + [0x61], userAgentPublicKey: key, authSecret: auth)
        }
        do {
            _ = try WebPushEncryption.encrypt([UInt8](repeating: 0, count: 100), userAgentPublicKey: key, authSecret: auth, recordSize: 100)
            Issue.record("a record of 100 bytes can't hold 100 bytes of plaintext")
        } catch {
            #expect(error.code == .payloadTooLarge)
        }
    }

    @Test("a p256dh that is not a P-256 point is refused")
    func invalidUserAgentKey() {
        var notOnCurve = [UInt8](repeating: 0x11, count: 65)
        notOnCurve[0] = 0x04
        do {
            _ = try WebPushEncryption.encrypt([1], userAgentPublicKey: notOnCurve, authSecret: [UInt8](repeating: 0, count: 16))
            Issue.record("encrypted for a key that is not on the curve")
        } catch {
            #expect(error.code == .invalidSubscriptionKey)
        }
    }

    // MARK: VAPID

    @Test("aud is the endpoint's origin")
    func audience() {
        #expect(VAPID.audience(ofEndpoint: "https://fcm.googleapis.com/fcm/send/abc:def") == "https://fcm.googleapis.com")
        #expect(VAPID.audience(ofEndpoint: "https://Updates.Push.Services.Mozilla.com:443/wpush/v2/x") == "https://updates.push.services.mozilla.com")
        #expect(VAPID.audience(ofEndpoint: "https://web.push.apple.com:8443/QGuQ") == "https://web.push.apple.com:8443")
        #expect(VAPID.audience(ofEndpoint: "http://127.0.0.1:7100/push/1") == "http://127.0.0.1:7100")
        #expect(VAPID.audience(ofEndpoint: "ftp://example.com/x") == nil)
        #expect(VAPID.audience(ofEndpoint: "not a url") == nil)
    }

    @Test("the token: ES256 over {aud, exp, sub}, verifiable with the k parameter")
    func token() throws {
        let signing = P256.Signing.PrivateKey()
        let key = VAPIDKey(signing)
        let expires = Fixtures.now.addingTimeInterval(12 * 3600)
        let token = try VAPID.token(audience: "https://push.example.net", subject: "mailto:ops@example.com", expiresAt: expires, key: key)
        let parts = token.split(separator: ".").map(String.init)
        try #require(parts.count == 3)
        let header = try JSONDecoder().decode(JSONValue.self, from: Base64URL.decode(parts[0])!)
        let claims = try JSONDecoder().decode(JSONValue.self, from: Base64URL.decode(parts[1])!)
        #expect(header == ["typ": "JWT", "alg": "ES256"])
        #expect(claims == ["aud": "https://push.example.net", "exp": .integer(Int64(expires.timeIntervalSince1970)), "sub": "mailto:ops@example.com"])
        let k = try #require(Base64URL.decode(key.publicKeyBase64URL))
        let publicKey = try P256.Signing.PublicKey(x963Representation: k)
        let signature = try P256.Signing.ECDSASignature(rawRepresentation: Base64URL.decode(parts[2])!)
        #expect(publicKey.isValidSignature(signature, for: Array("\(parts[0]).\(parts[1])".utf8)))
        #expect(VAPID.authorization(token: token, key: key) == "vapid t=\(token),k=\(key.publicKeyBase64URL)")
    }

    /// A throwaway SEC 1 key (`openssl ecparam -name prime256v1 -genkey -noout`) and its public key.
    static let sec1PEM = """
        -----BEGIN EC PRIVATE KEY-----
        MHcCAQEEIBF/jZWktaFnpiR+EXpIvDRRoyli6ngrSkVyJTmntq00oAoGCCqGSM49
        AwEHoUQDQgAE+6gdtpCZyaSRxcUk+0ImtGZzrKU1SXedUWezcbMfpxwEOsNg+aPS
        ZPfItGK6eTtBRxzumN2UI2vi9tWe1ygsRw==
        -----END EC PRIVATE KEY-----
        """
    static let sec1Public = "BPuoHbaQmcmkkcXFJPtCJrRmc6ylNUl3nVFns3GzH6ccBDrDYPmj0mT3yLRiunk7QUcc7pjdlCNr4vbVntcoLEc"

    @Test("private keys: PEM (SEC 1, PKCS #8, one line with \\n) or base64url of the 32-byte scalar")
    func privateKeyForms() throws {
        #expect(try VAPIDKey(Self.sec1PEM).publicKeyBase64URL == Self.sec1Public)
        #expect(try VAPIDKey(Self.sec1PEM.replacingOccurrences(of: "\n", with: "\\n")).publicKeyBase64URL == Self.sec1Public)
        let signing = P256.Signing.PrivateKey()
        let expected = Base64URL.encode(signing.publicKey.x963Representation)
        for form in [signing.pemRepresentation, Base64URL.encode(signing.rawRepresentation), "  \(Base64URL.encode(signing.rawRepresentation))\n"] {
            #expect(try VAPIDKey(form).publicKeyBase64URL == expected, "\(form.prefix(30))")
        }
        for bad in ["", "not a key", Base64URL.encode([UInt8](repeating: 1, count: 31)), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"] {
            #expect(throws: WebPushError.self) { _ = try VAPIDKey(bad) }
        }
    }

    // MARK: The provider's request

    static let vapid = P256.Signing.PrivateKey()

    static func pushClient(
        ttl: Duration = .seconds(3600), urgency: WebPushProviderSpec.Urgency? = .high, topic: String? = "{{metadata.topic}}",
        secrets: [String: String] = ["VAPID_KEY": Base64URL.encode(vapid.rawRepresentation), "VAPID_SUBJECT": "mailto:push@herald.example"]
    ) throws -> ProviderClient {
        try Fixtures.client(
            ProviderSpec(
                name: "vapid",
                transport: .webPush(WebPushProviderSpec(
                    subject: Fixtures.t("{{secrets.VAPID_SUBJECT}}"), privateKey: Fixtures.t("{{secrets.VAPID_KEY}}"),
                    payload: .json(.object([
                        .init(key: "title", value: .template(Fixtures.t("{{message.subject}}"))),
                        .init(key: "body", value: .template(Fixtures.t("{{message.text}}"))),
                        .init(key: "id", value: .template(Fixtures.t("{{notification_id}}"))),
                    ])),
                    ttl: ttl, urgency: urgency, topic: topic.map { Fixtures.t($0, .header) }))),
            secrets: secrets)
    }

    struct Subscriber {
        let key = P256.KeyAgreement.PrivateKey()
        let auth = (0..<16).map { _ in UInt8.random(in: 0...255) }
        var endpoint = "https://push.example.net/wpush/v2/gAAAAABk"

        var json: JSONValue {
            ["endpoint": .string(endpoint), "expirationTime": .null,
             "keys": ["p256dh": .string(Base64URL.encode(key.publicKey.x963Representation)), "auth": .string(Base64URL.encode(auth))]]
        }
    }

    @Test("the push request: headers, VAPID for the endpoint's origin, and a payload the subscriber decrypts")
    func request() throws {
        let subscriber = Subscriber()
        let client = try Self.pushClient()
        let job = Fixtures.job(
            to: ["web_push": subscriber.json], message: MessageContent(subject: "Hi \"you\"", text: Fixtures.hostile),
            metadata: ["topic": "order-42"])
        let request = try client.buildWebPushRequest(for: job, recipientField: "web_push", now: Fixtures.now)
        #expect(request.method == "POST")
        #expect(request.url == subscriber.endpoint)
        #expect(Fixtures.header(request, "TTL") == "3600")
        #expect(Fixtures.header(request, "Content-Encoding") == "aes128gcm")
        #expect(Fixtures.header(request, "Content-Type") == "application/octet-stream")
        #expect(Fixtures.header(request, "Urgency") == "high")
        #expect(Fixtures.header(request, "Topic") == "order-42")

        let authorization = try #require(Fixtures.header(request, "Authorization"))
        #expect(authorization.hasPrefix("vapid t="))
        let k = try #require(authorization.components(separatedBy: ",k=").last)
        #expect(k == Base64URL.encode(Self.vapid.publicKey.x963Representation))
        let token = String(authorization.dropFirst("vapid t=".count).prefix { $0 != "," })
        let parts = token.split(separator: ".").map(String.init)
        let claims = try JSONDecoder().decode(JSONValue.self, from: Base64URL.decode(parts[1])!)
        #expect(claims["aud"] == "https://push.example.net")
        #expect(claims["sub"] == "mailto:push@herald.example")
        guard case .integer(let exp)? = claims["exp"] else { Issue.record("no exp"); return }
        #expect(exp > Int64(Fixtures.now.timeIntervalSince1970) && exp <= Int64(Fixtures.now.timeIntervalSince1970) + 24 * 3600)

        let opened = try UserAgent.decrypt(request.body, key: subscriber.key, authSecret: subscriber.auth)
        let payload = try JSONDecoder().decode(JSONValue.self, from: Data(opened.plaintext))
        #expect(payload["title"] == "Hi \"you\"")
        #expect(payload["body"]?.stringValue == Fixtures.hostile)
        #expect(payload["id"]?.stringValue == Fixtures.notificationID.uuidString.lowercased())

        // One token per origin, reused; another origin gets its own.
        let again = try client.buildWebPushRequest(for: job, recipientField: "web_push", now: Fixtures.now.addingTimeInterval(60))
        #expect(Fixtures.header(again, "Authorization") == authorization)
        var elsewhere = subscriber
        elsewhere.endpoint = "https://fcm.googleapis.com/fcm/send/xyz"
        let other = try client.buildWebPushRequest(
            for: Fixtures.job(to: ["web_push": elsewhere.json]), recipientField: "web_push", now: Fixtures.now)
        #expect(Fixtures.header(other, "Authorization") != authorization)
        // Past half its lifetime (12 h) a token is renewed.
        let later = try client.buildWebPushRequest(for: job, recipientField: "web_push", now: Fixtures.now.addingTimeInterval(7 * 3600))
        #expect(Fixtures.header(later, "Authorization") != authorization)
    }

    @Test("the endpoint goes through the SSRF guard: https only, and the guard on the request")
    func addressPolicy() throws {
        let guarded = try ProviderClient(
            spec: Self.pushClient().spec, runtime: CurlRuntime(logger: Fixtures.logger),
            secrets: SecretResolver(
                environment: ["VAPID_KEY": Base64URL.encode(Self.vapid.rawRepresentation), "VAPID_SUBJECT": "mailto:a@b.example"],
                secretsDirectory: "/nonexistent-herald-secrets"),
            restrictToPublicAddresses: true, timeout: .seconds(5), logger: Fixtures.logger)
        let request = try guarded.buildWebPushRequest(
            for: Fixtures.job(to: ["web_push": Subscriber().json]), recipientField: "web_push", now: Fixtures.now)
        #expect(request.restrictToPublicAddresses)
        var plain = Subscriber()
        plain.endpoint = "http://127.0.0.1:7100/push/1"
        #expect(throws: ProviderFailure.self) {
            _ = try guarded.buildWebPushRequest(for: Fixtures.job(to: ["web_push": plain.json]), recipientField: "web_push", now: Fixtures.now)
        }
    }

    @Test("no Urgency or Topic header when none is configured or the topic renders empty")
    func optionalHeaders() throws {
        let client = try Self.pushClient(ttl: .zero, urgency: nil)
        let request = try client.buildWebPushRequest(
            for: Fixtures.job(to: ["web_push": Subscriber().json], metadata: [:]), recipientField: "web_push", now: Fixtures.now)
        #expect(Fixtures.header(request, "TTL") == "0")
        #expect(Fixtures.header(request, "Urgency") == nil)
        #expect(Fixtures.header(request, "Topic") == nil)
    }

    @Test("what fails before sending fails for good, naming why")
    func permanentFailures() throws {
        func failure(_ client: ProviderClient, _ job: DeliveryJob) -> String? {
            do {
                _ = try client.buildWebPushRequest(for: job, recipientField: "web_push", now: Fixtures.now)
                return nil
            } catch {
                #expect(error.result.outcome == .permanentFailure)
                return error.result.error
            }
        }
        let client = try Self.pushClient()
        var missingAuth = Subscriber().json
        if case .object(var members) = missingAuth, case .object(var keys)? = members["keys"] {
            keys["auth"] = nil
            members["keys"] = .object(keys)
            missingAuth = .object(members)
        }
        #expect(failure(client, Fixtures.job(to: ["web_push": missingAuth]))?.contains("to.web_push.keys.auth is required") == true)
        #expect(failure(client, Fixtures.job(to: [:]))?.contains("to.web_push must be a push subscription object") == true)
        #expect(failure(client, Fixtures.job(to: ["web_push": Subscriber().json], metadata: ["topic": "has spaces!"]))?
            .contains("topic must be at most 32 characters") == true)
        #expect(failure(client, Fixtures.job(to: ["web_push": Subscriber().json], metadata: ["topic": .string(String(repeating: "a", count: 33))]))?
            .contains("topic") == true)
        let noKey = try Self.pushClient(secrets: ["VAPID_SUBJECT": "mailto:a@b.c"])
        #expect(failure(noKey, Fixtures.job(to: ["web_push": Subscriber().json]))?.contains("secret VAPID_KEY is not set") == true)
        let badKey = try Self.pushClient(secrets: ["VAPID_SUBJECT": "mailto:a@b.c", "VAPID_KEY": "nonsense"])
        let badKeyError = failure(badKey, Fixtures.job(to: ["web_push": Subscriber().json]))
        #expect(badKeyError?.contains("invalid_vapid_key") == true)
        #expect(badKeyError?.contains("nonsense") == false, "the key's text must not be in the error")
        let badSubject = try Self.pushClient(secrets: ["VAPID_SUBJECT": "ops@example.com", "VAPID_KEY": Base64URL.encode(Self.vapid.rawRepresentation)])
        #expect(failure(badSubject, Fixtures.job(to: ["web_push": Subscriber().json]))?.contains("mailto: or https:") == true)
        let huge = Fixtures.job(
            to: ["web_push": Subscriber().json], message: MessageContent(text: String(repeating: "x", count: 4000)))
        #expect(failure(client, huge)?.contains("payload_too_large") == true)
    }

    @Test("the push service's answers: 201 sent, 404/410 gone, 413 too large, 429/5xx later, other 4xx permanent")
    func classification() {
        func classify(_ status: Int, _ headers: [HTTPHeaderField] = []) -> ProviderResult {
            ProviderClient.classifyPushService(HTTPResponse(status: status, headers: headers, body: Array("detail".utf8)), now: Fixtures.now)
        }
        let created = classify(201, [HTTPHeaderField("Location", "https://push.example.net/m/abc")])
        #expect(created.outcome == .success)
        #expect(created.providerMessageID == "https://push.example.net/m/abc")
        for status in [404, 410] {
            let gone = classify(status)
            #expect(gone.outcome == .permanentFailure)
            #expect(gone.error?.contains("subscription is gone") == true)
            #expect(gone.error?.contains("HTTP \(status)") == true)
        }
        #expect(classify(413).outcome == .permanentFailure)
        #expect(classify(413).error?.contains("too large") == true)
        let throttled = classify(429, [HTTPHeaderField("Retry-After", "30")])
        #expect(throttled.outcome == .throttled, "a 429 slows the channel down instead of spending the attempt")
        #expect(throttled.retryAfter == .seconds(30))
        for status in [500, 502, 503] { #expect(classify(status).outcome == .transientFailure) }
        for status in [400, 401, 403] { #expect(classify(status).outcome == .permanentFailure) }
    }
}

/// The receiving side of RFC 8291/8188, from the RFC's text: parse the header, derive with HMAC-SHA-256
/// by hand (HKDF-Extract = HMAC(salt, ikm); HKDF-Expand of one block = HMAC(prk, info ‖ 0x01)), open the
/// single record and strip the delimiter and padding.
enum UserAgent {
    struct Opened {
        var plaintext: [UInt8]
        var padding: Int
        var recordSize: Int
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    static func hmac(_ key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key)))
    }

    static func decrypt(_ body: [UInt8], key: P256.KeyAgreement.PrivateKey, authSecret: [UInt8]) throws -> Opened {
        guard body.count > 21 else { throw Failure(description: "no header") }
        let salt = Array(body[0..<16])
        let recordSize = body[16..<20].reduce(0) { $0 << 8 | Int($1) }
        let idLength = Int(body[20])
        guard idLength == 65, body.count >= 21 + idLength + 17 else { throw Failure(description: "keyid is not a P-256 key") }
        let serverPublic = Array(body[21..<(21 + idLength)])
        let record = Array(body[(21 + idLength)...])
        guard record.count <= recordSize else { throw Failure(description: "more than one record") }
        let userAgentPublic = Array(key.publicKey.x963Representation)
        let secret = try key.sharedSecretFromKeyAgreement(with: P256.KeyAgreement.PublicKey(x963Representation: serverPublic))
            .withUnsafeBytes { Array($0) }
        let prkKey = hmac(authSecret, secret)
        let ikm = hmac(prkKey, Array("WebPush: info".utf8) + [0] + userAgentPublic + serverPublic + [1])
        let prk = hmac(salt, ikm)
        let cek = Array(hmac(prk, Array("Content-Encoding: aes128gcm".utf8) + [0, 1]).prefix(16))
        let nonce = Array(hmac(prk, Array("Content-Encoding: nonce".utf8) + [0, 1]).prefix(12))
        let box = try AES.GCM.SealedBox(
            nonce: AES.GCM.Nonce(data: nonce), ciphertext: record.dropLast(16), tag: record.suffix(16))
        let padded = Array(try AES.GCM.open(box, using: SymmetricKey(data: cek)))
        guard let delimiter = padded.lastIndex(where: { $0 != 0 }), padded[delimiter] == 0x02 else {
            throw Failure(description: "the last record has no 0x02 delimiter")
        }
        return Opened(plaintext: Array(padded[..<delimiter]), padding: padded.count - delimiter - 1, recordSize: recordSize)
    }
}
