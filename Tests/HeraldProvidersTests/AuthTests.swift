import Crypto
import Foundation
import HeraldCore
import HeraldHTTPRuntime
import HeraldProviderModel
import HeraldProviders
import Testing
import _CryptoExtras

@Suite("Auth")
struct AuthTests {
    static let rsaKey = try! _RSA.Signing.PrivateKey(keySize: .bits2048)

    @Test("basic and bearer")
    func basicAndBearer() async throws {
        let basic = try Fixtures.client(
            Fixtures.http(
                url: "https://api.example.com/x",
                auth: .basic(username: Fixtures.t("{{secrets.SID}}"), password: Fixtures.t("{{secrets.TOKEN}}"))),
            secrets: ["SID": "AC123", "TOKEN": "p:ss\nword"])
        let request = try await basic.buildRequest(for: Fixtures.job(), now: Fixtures.now)
        let value = try #require(Fixtures.header(request, "Authorization"))
        #expect(value.hasPrefix("Basic "))
        let decoded = Data(base64Encoded: String(value.dropFirst("Basic ".count))).map { String(decoding: $0, as: UTF8.self) }
        #expect(decoded == "AC123:p:ss\nword")

        let bearer = try Fixtures.client(
            Fixtures.http(
                url: "https://api.example.com/x", headers: [("authorization", "Token configured")],
                auth: .bearer(token: Fixtures.t("{{secrets.TOKEN}}"))),
            secrets: ["TOKEN": "xoxb-1\r\nX-Evil: 1"])
        let bearerRequest = try await bearer.buildRequest(for: Fixtures.job(), now: Fixtures.now)
        #expect(bearerRequest.headers.filter { $0.name.lowercased() == "authorization" }.map(\.value) == ["Bearer xoxb-1X-Evil: 1"])
    }

    // RFC 2202 / RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    @Test("HMAC over the exact body bytes: algorithms, hex and base64, prefix", arguments: [
        (HTTPProviderSpec.HMACAuth.Algorithm.sha256, HTTPProviderSpec.HMACAuth.Encoding.hex,
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (.sha1, .hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
        (.sha512, .hex,
         "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
        (.sha256, .base64, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="),
    ])
    func hmac(algorithm: HTTPProviderSpec.HMACAuth.Algorithm, encoding: HTTPProviderSpec.HMACAuth.Encoding, expected: String) async throws {
        let client = try Fixtures.client(
            Fixtures.http(
                url: "https://api.example.com/x", body: .text(Fixtures.t("what do ya want for nothing?"), contentType: "text/plain"),
                auth: .hmac(
                    .init(
                        header: "X-Signature", secret: Fixtures.t("{{secrets.HMAC_KEY}}"), algorithm: algorithm, encoding: encoding,
                        prefix: "sha=", signed: nil))),
            secrets: ["HMAC_KEY": "Jefe"])
        let request = try await client.buildRequest(for: Fixtures.job(), now: Fixtures.now)
        #expect(String(decoding: request.body, as: UTF8.self) == "what do ya want for nothing?")
        #expect(Fixtures.header(request, "X-Signature") == "sha=" + expected)
    }

    @Test("HMAC over a rendered 'signed' template (which sees the body)")
    func hmacSignedTemplate() async throws {
        let client = try Fixtures.client(
            Fixtures.http(
                url: "https://api.example.com/x", body: .json(.object([.init(key: "a", value: .literal(1))])),
                auth: .hmac(
                    .init(
                        header: "X-Slack-Signature", secret: Fixtures.t("{{secrets.KEY}}"), algorithm: .sha256, encoding: .hex,
                        prefix: "v0=", signed: Fixtures.t("v0:{{timestamp}}:{{body}}")))),
            secrets: ["KEY": "s3cret"])
        let request = try await client.buildRequest(for: Fixtures.job(), now: Fixtures.now)
        let expected = HMAC<SHA256>.authenticationCode(
            for: Array("v0:1700000000:{\"a\":1}".utf8), using: SymmetricKey(data: Array("s3cret".utf8)))
        #expect(Fixtures.header(request, "X-Slack-Signature") == "v0=" + expected.map { String(format: "%02x", $0) }.joined())
    }

    @Test("Standard Webhooks: the published test vector")
    func standardWebhooksVector() throws {
        let key = try #require(StandardWebhooks.key(fromSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let signature = StandardWebhooks.signature(
            key: key, id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: Array("{\"test\": 2432232314}".utf8))
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        #expect(StandardWebhooks.key(fromSecret: "whsec_not base64!") == nil)
    }

    @Test("Standard Webhooks: headers on a request, id stable across retries, signature over the sent bytes")
    func standardWebhooksRequest() async throws {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        let client = try Fixtures.client(
            Fixtures.http(
                url: "{{to.webhook_url}}", body: .json(.object([.init(key: "text", value: .template(Fixtures.t("{{message.text}}")))])),
                auth: .standardWebhooks(secret: Fixtures.t("{{secrets.WEBHOOK_SECRET}}"))),
            secrets: ["WEBHOOK_SECRET": secret])
        let job = Fixtures.job(to: ["webhook_url": "https://hooks.example.com/in"])
        let first = try await client.buildRequest(for: job, now: Fixtures.now)
        var retry = job
        retry.attempt = 2
        let second = try await client.buildRequest(for: retry, now: Fixtures.now.addingTimeInterval(65))

        #expect(Fixtures.header(first, "webhook-id") == "msg_0f8fad5bd9cb469fa16570867728950e")
        #expect(Fixtures.header(second, "webhook-id") == Fixtures.header(first, "webhook-id"))
        #expect(Fixtures.header(first, "webhook-timestamp") == "1700000000")
        #expect(Fixtures.header(second, "webhook-timestamp") == "1700000065")
        for request in [first, second] {
            let signature = try #require(Fixtures.header(request, "webhook-signature"))
            #expect(signature.wholeMatch(of: /v1,[A-Za-z0-9+\/]+=*/) != nil)
            let signed = "\(Fixtures.header(request, "webhook-id")!).\(Fixtures.header(request, "webhook-timestamp")!)."
            let mac = HMAC<SHA256>.authenticationCode(
                for: Array(signed.utf8) + request.body,
                using: SymmetricKey(data: Data(base64Encoded: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")!))
            #expect(signature == "v1," + Data(mac).base64EncodedString())
        }

        let bad = try Fixtures.client(
            Fixtures.http(url: "https://x.example.com", auth: .standardWebhooks(secret: Fixtures.t("{{secrets.S}}"))),
            secrets: ["S": "whsec_tooshort"])
        let result = await bad.attempt(job, recipientField: "webhook_url")
        #expect(result.outcome == .permanentFailure)
    }

    @Test("APNs: ES256 provider token verifies with the key's public key, reused, renewed after 50 minutes")
    func apnsJWT() async throws {
        let key = P256.Signing.PrivateKey()
        let client = try Fixtures.client(
            Fixtures.http(
                url: "https://api.sandbox.push.apple.com/3/device/{{to.device_token}}",
                headers: [("apns-topic", "com.example.app"), ("apns-push-type", "alert")],
                body: .json(.object([.init(key: "aps", value: .object([.init(key: "alert", value: .template(Fixtures.t("{{message.title}}")))]))])),
                auth: .apnsJWT(
                    keyID: Fixtures.t("{{secrets.APNS_KEY_ID}}"), teamID: Fixtures.t("{{secrets.APNS_TEAM_ID}}"),
                    privateKey: Fixtures.t("{{secrets.APNS_KEY}}"))),
            secrets: ["APNS_KEY_ID": "ABC123DEFG", "APNS_TEAM_ID": "DEF123GHIJ", "APNS_KEY": key.pemRepresentation])
        let job = Fixtures.job(to: ["device_token": "a1b2c3"], message: MessageContent(title: "Hi"))
        let request = try await client.buildRequest(for: job, now: Fixtures.now)
        #expect(request.url == "https://api.sandbox.push.apple.com/3/device/a1b2c3")

        let authorization = try #require(Fixtures.header(request, "authorization"))
        #expect(authorization.hasPrefix("bearer "))
        let token = String(authorization.dropFirst("bearer ".count))
        let parts = token.split(separator: ".").map(String.init)
        try #require(parts.count == 3)
        let header = try Fixtures.jsonObject(Array(try #require(ProviderEncoding.base64URLDecode(parts[0]))))
        let claims = try Fixtures.jsonObject(Array(try #require(ProviderEncoding.base64URLDecode(parts[1]))))
        #expect(header["alg"] as? String == "ES256")
        #expect(header["kid"] as? String == "ABC123DEFG")
        #expect(claims["iss"] as? String == "DEF123GHIJ")
        #expect((claims["iat"] as? NSNumber)?.intValue == 1_700_000_000)
        let signatureBytes = try #require(ProviderEncoding.base64URLDecode(parts[2]))
        #expect(signatureBytes.count == 64)
        let signature = try P256.Signing.ECDSASignature(rawRepresentation: signatureBytes)
        #expect(key.publicKey.isValidSignature(signature, for: Data((parts[0] + "." + parts[1]).utf8)))
        #expect(!P256.Signing.PrivateKey().publicKey.isValidSignature(signature, for: Data((parts[0] + "." + parts[1]).utf8)))

        let later = try await client.buildRequest(for: job, now: Fixtures.now.addingTimeInterval(49 * 60))
        #expect(Fixtures.header(later, "authorization") == authorization)
        let renewed = try await client.buildRequest(for: job, now: Fixtures.now.addingTimeInterval(50 * 60))
        #expect(Fixtures.header(renewed, "authorization") != authorization)
    }

    @Test("APNs: a key that is not a P-256 PEM fails permanently")
    func apnsBadKey() async throws {
        let client = try Fixtures.client(
            Fixtures.http(
                url: "https://api.push.apple.com/3/device/x",
                auth: .apnsJWT(keyID: Fixtures.t("K"), teamID: Fixtures.t("T"), privateKey: Fixtures.t("{{secrets.APNS_KEY}}"))),
            secrets: ["APNS_KEY": "not a key"])
        let result = await client.attempt(Fixtures.job(), recipientField: "email")
        #expect(result.outcome == .permanentFailure)
        #expect(result.error?.contains("apns_jwt") == true)
    }

    @Test("Google: RS256 assertion verifies with the public key and carries the grant's claims")
    func googleAssertion() throws {
        let account = GoogleServiceAccount(
            clientEmail: "herald@project.iam.gserviceaccount.com", privateKeyPEM: Self.rsaKey.pkcs8PEMRepresentation,
            privateKeyID: "kid-1", tokenURI: "https://oauth2.googleapis.com/token")
        let jwt = try account.assertion(scope: "https://www.googleapis.com/auth/firebase.messaging", now: Fixtures.now)
        try Self.verifyGoogleAssertion(
            jwt, tokenURI: "https://oauth2.googleapis.com/token", scope: "https://www.googleapis.com/auth/firebase.messaging",
            iat: 1_700_000_000)
    }

    static func verifyGoogleAssertion(_ jwt: String, tokenURI: String, scope: String, iat: Int? = nil) throws {
        let parts = jwt.split(separator: ".").map(String.init)
        try #require(parts.count == 3)
        let header = try Fixtures.jsonObject(Array(try #require(ProviderEncoding.base64URLDecode(parts[0]))))
        let claims = try Fixtures.jsonObject(Array(try #require(ProviderEncoding.base64URLDecode(parts[1]))))
        #expect(header["alg"] as? String == "RS256")
        #expect(header["typ"] as? String == "JWT")
        #expect(claims["iss"] as? String == "herald@project.iam.gserviceaccount.com")
        #expect(claims["scope"] as? String == scope)
        #expect(claims["aud"] as? String == tokenURI)
        let issued = try #require((claims["iat"] as? NSNumber)?.intValue)
        if let iat { #expect(issued == iat) }
        #expect((claims["exp"] as? NSNumber)?.intValue == issued + 3600)
        let signature = _RSA.Signing.RSASignature(rawRepresentation: try #require(ProviderEncoding.base64URLDecode(parts[2])))
        #expect(
            rsaKey.publicKey.isValidSignature(
                signature, for: SHA256.hash(data: Array((parts[0] + "." + parts[1]).utf8)), padding: .insecurePKCS1v1_5))
    }

    static func credentialsJSON(tokenURI: String) throws -> String {
        let object: [String: String] = [
            "type": "service_account", "project_id": "project", "private_key_id": "kid-1",
            "private_key": rsaKey.pkcs8PEMRepresentation, "client_email": "herald@project.iam.gserviceaccount.com",
            "token_uri": tokenURI,
        ]
        return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    @Test("Google: the token exchange against a local server; the token is fetched once and reused")
    func googleTokenExchange() async throws {
        let server = try LocalHTTPServer { request in
            if request.target == "/token" {
                return .json(200, #"{"access_token":"ya29.local-token","expires_in":3599,"token_type":"Bearer"}"#)
            }
            return .json(200, #"{"name":"projects/project/messages/0:1234"}"#)
        }
        defer { server.stop() }
        let scope = "https://www.googleapis.com/auth/firebase.messaging"
        try await Fixtures.withRuntime { runtime in
            let client = try Fixtures.client(
                Fixtures.http(
                    url: server.url("/v1/projects/project/messages:send"),
                    body: .json(.object([.init(key: "message", value: .object([.init(key: "token", value: .template(Fixtures.t("{{to.fcm_token}}")))]))])),
                    auth: .googleServiceAccount(credentials: Fixtures.t("{{secrets.GOOGLE_CREDENTIALS}}"), scope: scope),
                    response: .init(messageIDPath: "name")),
                runtime: runtime, secrets: ["GOOGLE_CREDENTIALS": try Self.credentialsJSON(tokenURI: server.url("/token"))])
            let job = Fixtures.job(to: ["fcm_token": "device-1"])
            let first = await client.attempt(job, recipientField: "fcm_token")
            let second = await client.attempt(job, recipientField: "fcm_token")
            for result in [first, second] {
                #expect(result == ProviderResult(outcome: .success, httpStatus: 200, providerMessageID: "projects/project/messages/0:1234"))
            }
            #expect(await client.tokenRequestCount == 1)
        }
        let requests = server.requests
        #expect(requests.map(\.target) == ["/token", "/v1/projects/project/messages:send", "/v1/projects/project/messages:send"])
        let tokenRequest = requests[0]
        #expect(tokenRequest.method == "POST")
        #expect(tokenRequest.header("Content-Type") == "application/x-www-form-urlencoded")
        let form = Dictionary(uniqueKeysWithValues: Fixtures.formDecode(tokenRequest.bodyText))
        #expect(form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer")
        try Self.verifyGoogleAssertion(try #require(form["assertion"]), tokenURI: server.url("/token"), scope: scope)
        for send in requests.dropFirst() {
            #expect(send.header("Authorization") == "Bearer ya29.local-token")
            #expect(send.bodyText == #"{"message":{"token":"device-1"}}"#)
        }
    }

    @Test("Google: concurrent attempts share one token refresh")
    func googleSingleRefresh() async throws {
        let server = try LocalHTTPServer { request in
            if request.target == "/token" {
                Thread.sleep(forTimeInterval: 0.2)
                return .json(200, #"{"access_token":"shared","expires_in":3600}"#)
            }
            return .json(200, "{}")
        }
        defer { server.stop() }
        try await Fixtures.withRuntime { runtime in
            let client = try Fixtures.client(
                Fixtures.http(
                    url: server.url("/send"),
                    auth: .googleServiceAccount(credentials: Fixtures.t("{{secrets.GOOGLE_CREDENTIALS}}"), scope: "s")),
                runtime: runtime, secrets: ["GOOGLE_CREDENTIALS": try Self.credentialsJSON(tokenURI: server.url("/token"))])
            let outcomes = await withTaskGroup(of: AttemptOutcome.self) { group in
                for _ in 0..<4 { group.addTask { await client.attempt(Fixtures.job(), recipientField: "email").outcome } }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes == Array(repeating: .success, count: 4))
            #expect(await client.tokenRequestCount == 1)
        }
        #expect(server.requests.filter { $0.target == "/token" }.count == 1)
        #expect(server.requests.filter { $0.target == "/send" }.allSatisfy { $0.header("Authorization") == "Bearer shared" })
    }

    @Test("Google: a refused grant fails permanently, a 503 from the token endpoint transiently")
    func googleTokenFailures() async throws {
        let server = try LocalHTTPServer { request in
            if request.target == "/token-denied" { return .json(400, #"{"error":"invalid_grant"}"#) }
            if request.target == "/token-busy" { return .json(503, "{}", headers: [("Retry-After", "7")]) }
            return .json(200, "{}")
        }
        defer { server.stop() }
        try await Fixtures.withRuntime { runtime in
            for (path, outcome) in [("/token-denied", AttemptOutcome.permanentFailure), ("/token-busy", .transientFailure)] {
                let client = try Fixtures.client(
                    Fixtures.http(
                        url: server.url("/send"),
                        auth: .googleServiceAccount(credentials: Fixtures.t("{{secrets.GOOGLE_CREDENTIALS}}"), scope: "s")),
                    runtime: runtime, secrets: ["GOOGLE_CREDENTIALS": try Self.credentialsJSON(tokenURI: server.url(path))])
                let result = await client.attempt(Fixtures.job(), recipientField: "email")
                #expect(result.outcome == outcome)
                #expect(result.error?.hasPrefix("google_service_account: token request failed") == true)
                if path == "/token-busy" { #expect(result.retryAfter == .seconds(7)) }
            }
        }
        #expect(!server.requests.contains { $0.target == "/send" })
    }
}
