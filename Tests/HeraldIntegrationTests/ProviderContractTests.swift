import Crypto
import Foundation
import HeraldConfig
import HeraldCore
import HeraldGateway
import HeraldMessaging
import HeraldProviders
import HeraldStore
import HeraldWorker
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import ServiceLifecycle
import Testing
import _CryptoExtras

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The shipped `channels.d/` against the providers' published contracts: every channel's request goes
/// through the real path (gateway → PostgreSQL → RabbitMQ → worker → libcurl/SMTP) to one Python process
/// standing in for every HTTP provider (`Tests/standins/provider_standin.py`, which validates each request
/// with openapi-core against `provider-specs/` or the facts files' checks), and to a real SMTP peer (aiosmtpd).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ProviderContractTests {
    /// Real provider base URL in the shipped files → the stand-in's path prefix. One line per provider.
    static let hostRewrites: [(real: String, prefix: String)] = [
        ("https://api.twilio.com", "twilio"),
        ("https://api.sendgrid.com", "sendgrid"),
        ("https://rest.nexmo.com", "vonage-sms"),
        ("https://api.mailgun.net", "mailgun"),
        ("https://fcm.googleapis.com", "fcm"),
        ("https://api.push.apple.com", "apns"),
        ("https://api.telegram.org", "telegram"),
        ("https://slack.com", "slack"),
        ("https://discord.com", "discord"),
        ("https://graph.facebook.com", "whatsapp"),
    ]

    static let hostileSubject = #"Quote "double" 'single' </script><b> &=?#/ \ 100% + ü 👋"#
    static let hostileText = "Line \"one\" </script><img src=x onerror=alert(1)>\nline two &=?#/ \\ 100% + ü 👋\n@everyone"

    /// One notification per shipped channel: who it goes to, which stand-in serves it, where the hostile text lands.
    struct Case: Sendable {
        var channel: String
        var provider: String
        var to: [String: String]
        /// A string only this channel's request contains (to tell `sms` from `sms-twilio`).
        var marker: String
        /// Values the provider received, paired with what they must equal.
        var carried: @Sendable (_ record: Record) -> [(actual: String?, expected: String)]
        /// Where the stand-in's answer holds the id Herald must record as provider_message_id (nil: none configured).
        var messageIDPath: String?
    }

    static func cases(standin: String) -> [Case] {
        let s = hostileSubject, t = hostileText
        return [
            Case(channel: "webhook", provider: "webhook", to: ["webhook_url": "\(standin)/webhook/hooks/itest-endpoint"],
                marker: "itest-endpoint",
                carried: { [($0.json?.value(atPath: "data.text")?.stringValue, t), ($0.json?.value(atPath: "data.subject")?.stringValue, s)] },
                messageIDPath: nil),
            Case(channel: "email-sendgrid", provider: "sendgrid", to: ["email": "itest-sendgrid@example.com"], marker: "itest-sendgrid",
                carried: { [($0.json?["subject"]?.stringValue, s), ($0.json?.value(atPath: "content.0.value")?.stringValue, t)] },
                messageIDPath: nil),
            Case(channel: "email-mailgun", provider: "mailgun", to: ["email": "itest-mailgun@example.com"], marker: "itest-mailgun",
                carried: { [($0.form["subject"], s), ($0.form["text"], t), ($0.form["to"], "itest-mailgun@example.com")] },
                messageIDPath: "id"),
            Case(channel: "sms-twilio", provider: "twilio", to: ["phone": "+15550100001"], marker: "15550100001",
                carried: { [($0.form["Body"], t), ($0.form["To"], "+15550100001")] }, messageIDPath: "sid"),
            Case(channel: "sms-vonage", provider: "vonage-sms", to: ["phone": "+15550100002"], marker: "15550100002",
                carried: { [($0.form["text"], t)] }, messageIDPath: "messages.0.message-id"),
            Case(channel: "sms-kannel", provider: "kannel", to: ["phone": "+15550100003"], marker: "15550100003",
                carried: { [($0.query["text"], t), ($0.query["to"], "+15550100003")] }, messageIDPath: nil),
            Case(channel: "sms", provider: "twilio", to: ["phone": "+15550100004"], marker: "15550100004",
                carried: { [($0.form["Body"], t)] }, messageIDPath: "sid"),
            Case(channel: "push-fcm", provider: "fcm", to: ["fcm_token": "itest-fcm-registration-token"], marker: "itest-fcm-registration-token",
                carried: {
                    [($0.json?.value(atPath: "message.notification.title")?.stringValue, s),
                     ($0.json?.value(atPath: "message.notification.body")?.stringValue, t)]
                }, messageIDPath: "name"),
            Case(channel: "push-apns", provider: "apns", to: ["apns_token": "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"],
                marker: "a1b2c3d4e5f60718293a4b5c6d7e8f90",
                carried: {
                    [($0.json?.value(atPath: "aps.alert.title")?.stringValue, s), ($0.json?.value(atPath: "aps.alert.body")?.stringValue, t)]
                }, messageIDPath: nil),
            Case(channel: "telegram", provider: "telegram", to: ["telegram_chat_id": "-1009876543210"], marker: "-1009876543210",
                carried: { [($0.json?["text"]?.stringValue, t)] }, messageIDPath: "result.message_id"),
            Case(channel: "slack", provider: "slack-hooks", to: ["slack_webhook_url": "\(standin)/slack-hooks/services/T0ITEST/B0ITEST/itestsecret"],
                marker: "itestsecret", carried: { [($0.json?["text"]?.stringValue, t)] }, messageIDPath: nil),
            Case(channel: "slack-bot", provider: "slack", to: ["slack_channel": "C0ITESTCHAN"], marker: "C0ITESTCHAN",
                carried: { [($0.json?["text"]?.stringValue, t)] }, messageIDPath: "ts"),
            Case(channel: "discord", provider: "discord",
                to: ["discord_webhook_id": "223704706495545344", "discord_webhook_token": "itest-discord-token_x"],
                marker: "223704706495545344", carried: { [($0.json?["content"]?.stringValue, t)] }, messageIDPath: "id"),
            Case(channel: "teams", provider: "teams", to: ["teams_webhook_url": "\(standin)/teams/workflows/itest-teams-trigger"],
                marker: "itest-teams-trigger",
                carried: {
                    [($0.json?.value(atPath: "attachments.0.content.body.0.text")?.stringValue, s),
                     ($0.json?.value(atPath: "attachments.0.content.body.1.text")?.stringValue, t)]
                }, messageIDPath: nil),
            Case(channel: "matrix", provider: "matrix", to: ["matrix_room_id": "!itestroom:example.org"], marker: "itestroom",
                carried: { [($0.json?["body"]?.stringValue, t), ($0.decodedPath.contains("/rooms/!itestroom:example.org/") ? "ok" : $0.path, "ok")] },
                messageIDPath: "event_id"),
            Case(channel: "whatsapp", provider: "whatsapp", to: ["phone": "+15550100005"], marker: "15550100005",
                carried: { [($0.json?.value(atPath: "text.body")?.stringValue, t)] }, messageIDPath: "messages.0.id"),
        ]
    }

    @Test func everyShippedChannelSendsOneValidRequestToItsProvider() async throws {
        try await ProviderHarness.with { harness in
            let cases = Self.cases(standin: harness.standin.baseURL)
            // Every shipped channel has a case here (and SMTP below; web-push in WebPushIntegrationTests):
            // a new channel file needs one.
            #expect(Set(cases.map(\.channel) + ["email", "web-push"]) == Set(harness.shippedChannels))

            var ids: [String: String] = [:]
            for item in cases {
                ids[item.channel] = try await harness.post(channel: item.channel, to: item.to)
            }
            ids["email"] = try await harness.post(channel: "email", to: ["email": "itest-smtp@example.com"])

            for (channel, id) in ids.sorted(by: { $0.key < $1.key }) {
                let final = try await harness.waitForTerminal(id: id)
                #expect(final.value(atPath: "deliveries.0.status") == "sent", "\(channel): \(final.value(atPath: "deliveries.0") ?? .null)")
                #expect(final.value(atPath: "deliveries.0.attempts")?.arrayValue?.count == 1, "\(channel)")
            }

            let records = try await harness.standin.requests()
            // Exactly the requests expected per provider, all valid.
            var expectedCounts = Dictionary(cases.map { ($0.provider, 1) }, uniquingKeysWith: +)
            expectedCounts["fcm-token"] = 1  // one OAuth token, cached for the FCM send
            let counts = Dictionary(records.map { ($0.provider, 1) }, uniquingKeysWith: +)
            #expect(counts == expectedCounts)
            for record in records {
                #expect(record.valid, "\(record.provider) \(record.method) \(record.path): \(record.violations)")
                #expect(record.violations.isEmpty, "\(record.provider): \(record.violations)")
            }

            for item in cases {
                let matching = records.filter { $0.provider == item.provider && $0.haystack.contains(item.marker) }
                #expect(matching.count == 1, "\(item.channel): \(matching.count) requests to \(item.provider)")
                guard let record = matching.first else { continue }
                for (actual, expected) in item.carried(record) {
                    #expect(actual == expected, "\(item.channel) (\(item.provider)) changed the text")
                }
                let final = try await harness.document(id: ids[item.channel]!)
                let recorded = final.value(atPath: "deliveries.0.provider_message_id")?.stringValue
                if let path = item.messageIDPath {
                    let answered = record.response.flatMap { Self.scalar($0.value(atPath: path)) }
                    #expect(recorded != nil && recorded == answered, "\(item.channel): provider_message_id \(recorded ?? "nil") vs \(answered ?? "nil")")
                } else {
                    #expect(recorded == nil, "\(item.channel) records no provider message id")
                }
            }

            // SMTP: the message is in the Maildir, subject and text intact.
            let mail = try await eventually(timeout: .seconds(20), "the mail in the Maildir") { try await harness.smtp.messages().first }
            #expect(mail["to"]?.stringValue == "itest-smtp@example.com")
            #expect(mail["subject"]?.stringValue == Self.hostileSubject)
            #expect(mail["text"]?.stringValue?.replacingOccurrences(of: "\r\n", with: "\n").hasPrefix(Self.hostileText) == true)
        }
    }

    static let imageURL = "https://cdn.example.com/herald/itest-image.png?size=large&v=2"

    /// A message with `image_url` through each channel whose provider carries images: the request is
    /// the provider's image form (checked against its contract by the stand-in), with the image where
    /// the provider reads it and the text still there.
    static func imageCases(standin: String) -> [Case] {
        let t = hostileText, image = imageURL
        return [
            Case(channel: "sms-twilio", provider: "twilio", to: ["phone": "+15550100011"], marker: "15550100011",
                carried: { [($0.form["MediaUrl"], image), ($0.form["Body"], t)] }, messageIDPath: "sid"),
            Case(channel: "telegram", provider: "telegram", to: ["telegram_chat_id": "-1009876543211"], marker: "-1009876543211",
                carried: {
                    [($0.decodedPath.hasSuffix("/sendPhoto") ? "sendPhoto" : $0.decodedPath, "sendPhoto"),
                     ($0.json?["photo"]?.stringValue, image), ($0.json?["caption"]?.stringValue, t),
                     ($0.json?["text"] == nil ? "no text" : "text", "no text")]
                }, messageIDPath: "result.message_id"),
            Case(channel: "slack", provider: "slack-hooks", to: ["slack_webhook_url": "\(standin)/slack-hooks/services/T0ITEST/B0ITEST/itestimage"],
                marker: "itestimage",
                carried: {
                    [($0.json?.value(atPath: "blocks.1.image_url")?.stringValue, image), ($0.json?.value(atPath: "blocks.0.text.text")?.stringValue, t),
                     ($0.json?["text"]?.stringValue, t)]
                }, messageIDPath: nil),
            Case(channel: "slack-bot", provider: "slack", to: ["slack_channel": "C0ITESTIMAGE"], marker: "C0ITESTIMAGE",
                carried: {
                    [($0.json?.value(atPath: "blocks.1.type")?.stringValue, "image"), ($0.json?.value(atPath: "blocks.1.image_url")?.stringValue, image)]
                }, messageIDPath: "ts"),
            Case(channel: "discord", provider: "discord",
                to: ["discord_webhook_id": "223704706495545345", "discord_webhook_token": "itest-discord-image"],
                marker: "223704706495545345",
                carried: { [($0.json?.value(atPath: "embeds.0.image.url")?.stringValue, image), ($0.json?["content"]?.stringValue, t)] },
                messageIDPath: "id"),
            Case(channel: "teams", provider: "teams", to: ["teams_webhook_url": "\(standin)/teams/workflows/itest-teams-image"],
                marker: "itest-teams-image",
                carried: {
                    [($0.json?.value(atPath: "attachments.0.content.body.2.type")?.stringValue, "Image"),
                     ($0.json?.value(atPath: "attachments.0.content.body.2.url")?.stringValue, image)]
                }, messageIDPath: nil),
            Case(channel: "push-fcm", provider: "fcm", to: ["fcm_token": "itest-fcm-image-token"], marker: "itest-fcm-image-token",
                carried: { [($0.json?.value(atPath: "message.notification.image")?.stringValue, image)] }, messageIDPath: "name"),
            Case(channel: "push-apns", provider: "apns", to: ["apns_token": "b1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f91"],
                marker: "b1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f91",
                carried: {
                    [(Self.scalar($0.json?.value(atPath: "aps.mutable-content")), "1"), ($0.json?["image_url"]?.stringValue, image)]
                }, messageIDPath: nil),
            Case(channel: "whatsapp", provider: "whatsapp", to: ["phone": "+15550100015"], marker: "15550100015",
                carried: {
                    [($0.json?["type"]?.stringValue, "image"), ($0.json?.value(atPath: "image.link")?.stringValue, image),
                     ($0.json?.value(atPath: "image.caption")?.stringValue, t), ($0.json?["text"] == nil ? "no text" : "text", "no text")]
                }, messageIDPath: "messages.0.id"),
        ]
    }

    @Test func channelsThatCarryImagesSendTheProvidersImageForm() async throws {
        try await ProviderHarness.with { harness in
            let cases = Self.imageCases(standin: harness.standin.baseURL)
            var ids: [String: String] = [:]
            for item in cases {
                ids[item.channel] = try await harness.post(channel: item.channel, to: item.to, imageURL: Self.imageURL)
            }
            for (channel, id) in ids.sorted(by: { $0.key < $1.key }) {
                let final = try await harness.waitForTerminal(id: id)
                #expect(final.value(atPath: "deliveries.0.status") == "sent", "\(channel): \(final.value(atPath: "deliveries.0") ?? .null)")
                #expect(final.value(atPath: "deliveries.0.message.image_url")?.stringValue == Self.imageURL, "\(channel) stores the image")
            }
            let records = try await harness.standin.requests()
            for record in records {
                #expect(record.valid, "\(record.provider) \(record.method) \(record.path): \(record.violations)")
            }
            for item in cases {
                let matching = records.filter { $0.provider == item.provider && $0.haystack.contains(item.marker) }
                #expect(matching.count == 1, "\(item.channel): \(matching.count) requests to \(item.provider)")
                guard let record = matching.first else { continue }
                for (actual, expected) in item.carried(record) {
                    #expect(actual == expected, "\(item.channel) (\(item.provider)): \(actual ?? "nil") instead of \(expected)")
                }
            }
        }
    }

    @Test func aProviderAnswering503ThenOKShowsTwoAttemptsAndSent() async throws {
        try await ProviderHarness.with { harness in
            try await harness.standin.script(provider: "twilio", statuses: [503])
            let id = try await harness.post(channel: "sms-twilio", to: ["phone": "+15550100009"])
            let final = try await harness.waitForTerminal(id: id)
            #expect(final.value(atPath: "deliveries.0.status") == "sent")
            let attempts = try #require(final.value(atPath: "deliveries.0.attempts")?.arrayValue)
            #expect(attempts.map { $0["outcome"] } == ["transient_failure", "success"])
            #expect(attempts.map { $0["http_status"] } == [503, 201])
            let records = try await harness.standin.requests().filter { $0.provider == "twilio" }
            #expect(records.count == 2)
            #expect(records.allSatisfy { $0.valid })
            #expect(records.map(\.status) == [503, 201])
            #expect(final.value(atPath: "deliveries.0.provider_message_id")?.stringValue
                == records.last?.response?["sid"]?.stringValue)
        }
    }

    static func scalar(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let string)?: string
        case .integer(let integer)?: String(integer)
        default: nil
        }
    }
}

// MARK: - What the stand-in recorded

struct Record: Sendable {
    var provider: String
    var method: String
    var path: String
    var query: [String: String]
    var body: String
    var valid: Bool
    var violations: [String]
    var status: Int
    var response: JSONValue?
    /// A Web Push payload as the stand-in decrypted it (http_ece).
    var decrypted: String?

    init(_ value: JSONValue) {
        provider = value["provider"]?.stringValue ?? ""
        method = value["method"]?.stringValue ?? ""
        path = value["path"]?.stringValue ?? ""
        query = (value["query"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
        body = value["body"]?.stringValue ?? ""
        valid = value["valid"] == .bool(true)
        violations = value["violations"]?.arrayValue?.compactMap(\.stringValue) ?? []
        if case .integer(let code)? = value["status"] { status = Int(code) } else { status = 0 }
        response = value["response"]?.stringValue.flatMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
        decrypted = value["decrypted"]?.stringValue
    }

    var json: JSONValue? { try? JSONDecoder().decode(JSONValue.self, from: Data(body.utf8)) }

    /// `application/x-www-form-urlencoded` fields.
    var form: [String: String] {
        var fields: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String { String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            fields[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }

    var decodedPath: String { path.removingPercentEncoding ?? path }
    var haystack: String { decodedPath + " " + body + " " + form.values.joined(separator: " ") + " " + query.values.joined(separator: " ") }
}

// MARK: - Harness: stand-in, aiosmtpd, configuration, gateway and worker

struct ProviderHarness: Sendable {
    let standin: StandinProcess
    let smtp: SMTPPeer
    let client: any TestClientProtocol
    let suffix: String
    let shippedChannels: [String]

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static var python: String {
        let value = TestServers.environment["HERALD_PYTHON"] ?? ""
        return value.isEmpty ? "python3" : value
    }

    static var specsDirectory: String {
        let value = TestServers.environment["HERALD_PROVIDER_SPECS"] ?? ""
        return value.isEmpty ? repositoryRoot.appendingPathComponent("provider-specs").path : value
    }

    func post(channel: String, to: [String: String], imageURL: String? = nil) async throws -> String {
        try await post(channel: channel, to: to.mapValues { .string($0) }, imageURL: imageURL)
    }

    func post(channel: String, to: [String: JSONValue], imageURL: String? = nil) async throws -> String {
        var message: [String: JSONValue] = [
            "subject": .string(ProviderContractTests.hostileSubject), "text": .string(ProviderContractTests.hostileText),
        ]
        if let imageURL { message["image_url"] = .string(imageURL) }
        var request: [String: JSONValue] = ["channel": .string("\(channel)-\(suffix)"), "to": .object(to), "message": .object(message)]
        request["metadata"] = ["test": "provider-contract"]
        let body = try JSONEncoder().encode(JSONValue.object(request))
        let response = try await client.execute(
            uri: "/v1/notifications", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(bytes: body))
        let document = try JSONDecoder().decode(JSONValue.self, from: Data(response.body.readableBytesView))
        guard response.status == .accepted, let id = document["id"]?.stringValue else {
            throw HarnessError("POST for \(channel) answered \(response.status): \(document)")
        }
        return id
    }

    func document(id: String) async throws -> JSONValue {
        let response = try await client.execute(uri: "/v1/notifications/\(id)", method: .get)
        return try JSONDecoder().decode(JSONValue.self, from: Data(response.body.readableBytesView))
    }

    func waitForTerminal(id: String) async throws -> JSONValue {
        try await eventually(timeout: .seconds(60), "notification \(id) to finish") {
            let document = try await self.document(id: id)
            guard let status = document.value(atPath: "deliveries.0.status")?.stringValue,
                DeliveryStatus(rawValue: status)?.isTerminal == true
            else { return nil }
            // The status can show before the attempt that set it does: wait for the attempt log to catch up.
            guard case .integer(let count)? = document.value(atPath: "deliveries.0.attempt_count"),
                (document.value(atPath: "deliveries.0.attempts")?.arrayValue?.count ?? 0) >= Int(count)
            else { return nil }
            return document
        }
    }

    static func with(_ body: @Sendable (ProviderHarness) async throws -> Void) async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("herald-providers-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }

        let standin = try await StandinProcess.start(python: python, specs: specsDirectory)
        let smtp: SMTPPeer
        do {
            smtp = try await SMTPPeer.start(python: python, maildir: work.appendingPathComponent("maildir"))
        } catch {
            await standin.stop()
            throw error
        }
        do {
            try await run(standin: standin, smtp: smtp, work: work, body)
        } catch {
            await standin.stop()
            await smtp.stop()
            throw error
        }
        await standin.stop()
        await smtp.stop()
    }

    private static func run(
        standin: StandinProcess, smtp: SMTPPeer, work: URL, _ body: @Sendable (ProviderHarness) async throws -> Void
    ) async throws {

        // Keys the providers' auth needs, and what the stand-in verifies them with.
        let apnsKey = P256.Signing.PrivateKey()
        let vapidKey = P256.Signing.PrivateKey()
        let googleKey = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let webhookSecret = "whsec_" + Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let serviceAccount: JSONValue = [
            "type": "service_account", "project_id": "herald-itest", "private_key_id": "itest-key-1",
            "private_key": .string(googleKey.pemRepresentation), "client_email": "herald@herald-itest.iam.gserviceaccount.com",
            "token_uri": .string("\(standin.baseURL)/fcm-token"),
        ]
        try await standin.expect([
            "webhook_secret": .string(webhookSecret),
            "apns": ["public_key_pem": .string(apnsKey.publicKey.pemRepresentation), "key_id": "ITESTKEY01", "team_id": "ITESTTEAM1",
                     "topic": "dev.herald.itest"],
            "google": ["public_key_pem": .string(googleKey.publicKey.pemRepresentation),
                       "client_email": "herald@herald-itest.iam.gserviceaccount.com"],
            "webpush": ["vapid_public_key": .string(Base64URL.encode(vapidKey.publicKey.x963Representation))],
        ])
        let secrets: [String: String] = [
            "WEBHOOK_SECRET": webhookSecret,
            "SMTP_USERNAME": "", "SMTP_PASSWORD": "", "EMAIL_FROM": "Herald <noreply@herald.example>",
            "SENDGRID_API_KEY": "SG.itest-key", "SENDGRID_FROM_EMAIL": "noreply@herald.example",
            "MAILGUN_DOMAIN": "mg.herald.example", "MAILGUN_API_KEY": "key-itest", "MAILGUN_FROM": "Herald <noreply@mg.herald.example>",
            "TWILIO_ACCOUNT_SID": "AC" + String(repeating: "0123456789abcdef", count: 2), "TWILIO_AUTH_TOKEN": "itest-token",
            "TWILIO_FROM": "+15005550006",
            "VONAGE_API_KEY": "itest123", "VONAGE_API_SECRET": "itestSecret42", "VONAGE_FROM": "Herald",
            "KANNEL_USERNAME": "herald", "KANNEL_PASSWORD": "p&ss=w?rd", "KANNEL_FROM": "Herald",
            "FCM_PROJECT_ID": "herald-itest", "FCM_SERVICE_ACCOUNT_JSON": JSONWriter.string(serviceAccount),
            "APNS_TOPIC": "dev.herald.itest", "APNS_KEY_ID": "ITESTKEY01", "APNS_TEAM_ID": "ITESTTEAM1",
            "APNS_PRIVATE_KEY": apnsKey.pemRepresentation,
            "TELEGRAM_BOT_TOKEN": "7654321:AAE-itest_bot-token",
            "SLACK_BOT_TOKEN": "xoxb-itest", "MATRIX_ACCESS_TOKEN": "syt_itest",
            "WHATSAPP_PHONE_NUMBER_ID": "106540352242922", "WHATSAPP_ACCESS_TOKEN": "EAAitest",
            "WEB_PUSH_VAPID_PRIVATE_KEY": vapidKey.pemRepresentation, "WEB_PUSH_VAPID_SUBJECT": "mailto:push@herald.example",
        ]

        // The shipped configuration, pointed at the stand-ins, channel names made unique to this run.
        let suffix = "pc" + UUID().uuidString.prefix(6).lowercased()
        let configDirectory = work.appendingPathComponent("config")
        let shipped = try copyConfiguration(to: configDirectory, standin: standin.baseURL, suffix: suffix)
        // email, matrix and sms-kannel are pointed at their servers through their settings alone,
        // as a deployment does (issue 8: no file needs editing): aiosmtpd speaks no TLS.
        let settings = SecretResolver(
            environment: [
                "SMTP_HOST": "127.0.0.1", "SMTP_PORT": String(smtp.port), "SMTP_STARTTLS": "none",
                "MATRIX_HOMESERVER_URL": standin.baseURL + "/matrix", "KANNEL_URL": standin.baseURL + "/kannel",
            ], secretsDirectory: "")
        let snapshot: ConfigSnapshot
        switch ConfigLoader(directory: configDirectory.path, settings: settings).load() {
        case .success(let loaded): snapshot = loaded
        case .failure(let errors): throw HarnessError("the rewritten configuration does not load: \(errors)")
        }
        let config = ConfigStore(snapshot)

        try await TestServers.withDatabase { _ in }  // migrate first
        let logger = TestServers.logger
        var gatewayConfiguration = GatewayConfiguration(postgresURL: TestServers.postgresURL, amqpURL: TestServers.amqpURL)
        gatewayConfiguration.port = 0
        gatewayConfiguration.relay.pollInterval = .milliseconds(50)
        gatewayConfiguration.allowPrivateTargets = true  // recipients on 127.0.0.1
        let (gateway, _) = try buildGateway(configuration: gatewayConfiguration, config: config, logger: logger)
        let (token, _) = try await TestServers.createKey()
        var workerConfiguration = WorkerConfiguration(postgresURL: TestServers.postgresURL, amqpURL: TestServers.amqpURL)
        workerConfiguration.allowPrivateTargets = true  // the stand-ins are on 127.0.0.1
        workerConfiguration.workerName = "itest-provider-worker"
        workerConfiguration.secrets = SecretResolver(environment: secrets, secretsDirectory: "")
        let worker = ServiceGroup(
            services: try buildWorker(channels: .all, config: config, configuration: workerConfiguration, logger: logger), logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.run() }
            do {
                try await gateway.test(.live) { client in
                    _ = try await eventually("the gateway to be ready") {
                        try await client.execute(uri: "/readyz", method: .get).status == .ok ? true : nil
                    }
                    try await body(
                        ProviderHarness(standin: standin, smtp: smtp, client: AuthorizedClient(base: client, token: token), suffix: suffix, shippedChannels: shipped))
                }
            } catch {
                await worker.triggerGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
            await worker.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    }

    /// Copies channels.d/, retry-policies.yaml, templates/ and routing.yaml, rewriting the hosts of
    /// providers that have no settings for them, and channel names. Returns the shipped channel names.
    static func copyConfiguration(to directory: URL, standin: String, suffix: String) throws -> [String] {
        let fm = FileManager.default
        let root = repositoryRoot
        try fm.createDirectory(at: directory.appendingPathComponent("channels.d"), withIntermediateDirectories: true)
        let files = try fm.contentsOfDirectory(atPath: root.appendingPathComponent("channels.d").path)
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        var names: [String] = []
        for file in files {
            var text = try String(contentsOf: root.appendingPathComponent("channels.d/\(file)"), encoding: .utf8)
            for (real, prefix) in ProviderContractTests.hostRewrites {
                text = text.replacingOccurrences(of: real, with: "\(standin)/\(prefix)")
            }
            var lines = text.components(separatedBy: "\n")
            if let index = lines.firstIndex(where: { $0.hasPrefix("name: ") }) {
                let name = String(lines[index].dropFirst("name: ".count).prefix { !$0.isWhitespace })
                names.append(name)
                lines[index] = "name: \(name)-\(suffix)"
            }
            try lines.joined(separator: "\n").write(to: directory.appendingPathComponent("channels.d/\(file)"), atomically: true, encoding: .utf8)
        }
        for item in ["retry-policies.yaml", "templates"] where fm.fileExists(atPath: root.appendingPathComponent(item).path) {
            try fm.copyItem(at: root.appendingPathComponent(item), to: directory.appendingPathComponent(item))
        }
        let routing = root.appendingPathComponent("routing.yaml")
        if fm.fileExists(atPath: routing.path) {
            // Channel lists are written `channels: [a, b]`: rename the shipped names in them.
            let text = try String(contentsOf: routing, encoding: .utf8).components(separatedBy: "\n").map { line -> String in
                guard let open = line.range(of: "channels: ["), let close = line.range(of: "]", range: open.upperBound..<line.endIndex) else {
                    return line
                }
                let items = line[open.upperBound..<close.lowerBound].split(separator: ",").map { item -> String in
                    let name = item.trimmingCharacters(in: .whitespaces)
                    return names.contains(name) ? "\(name)-\(suffix)" : name
                }
                return String(line[..<open.upperBound]) + items.joined(separator: ", ") + String(line[close.lowerBound...])
            }
            try text.joined(separator: "\n").write(to: directory.appendingPathComponent("routing.yaml"), atomically: true, encoding: .utf8)
        }
        return names
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Processes

/// Runs `python args…` (through /usr/bin/env unless python is a path).
func startPython(_ python: String, _ arguments: [String], stdout: Any?) throws -> Process {
    let process = Process()
    if python.contains("/") {
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = arguments
    } else {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python] + arguments
    }
    process.standardOutput = stdout
    process.standardInput = FileHandle.nullDevice
    try process.run()
    return process
}

/// `Tests/standins/provider_standin.py`, on a port of its choosing.
final class StandinProcess: Sendable {
    let process: Process
    let port: Int
    var baseURL: String { "http://127.0.0.1:\(port)" }

    private init(process: Process, port: Int) {
        self.process = process
        self.port = port
    }

    static func start(python: String, specs: String) async throws -> StandinProcess {
        try await offCooperativePool { try startBlocking(python: python, specs: specs) }
    }

    private static func startBlocking(python: String, specs: String) throws -> StandinProcess {
        let script = ProviderHarness.repositoryRoot.appendingPathComponent("Tests/standins/provider_standin.py").path
        let pipe = Pipe()
        let process = try startPython(python, [script, "--port", "0", "--specs", specs], stdout: pipe)
        var output = Data()
        while !output.contains(UInt8(ascii: "\n")) {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            output.append(chunk)
        }
        let line = String(decoding: output, as: UTF8.self).split(separator: "\n").first ?? ""
        guard line.hasPrefix("PORT "), let port = Int(line.dropFirst(5)) else {
            process.terminate()
            throw HarnessError("the provider stand-in did not start (\(python) \(script)): '\(line)'")
        }
        return StandinProcess(process: process, port: port)
    }

    func stop() async { await stopProcess(process) }

    func call(_ method: String, _ path: String, _ body: JSONValue? = nil) async throws -> Data {
        var request = URLRequest(url: URL(string: baseURL + path)!)
        request.httpMethod = method
        if let body {
            request.httpBody = Data(JSONWriter.string(body).utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        guard (response as? HTTPURLResponse)?.statusCode == 200 else {
            throw HarnessError("stand-in \(method) \(path): \(String(decoding: data, as: UTF8.self))")
        }
        return data
    }

    func requests() async throws -> [Record] {
        let value = try JSONDecoder().decode(JSONValue.self, from: try await call("GET", "/_requests"))
        return (value.arrayValue ?? []).map(Record.init)
    }

    func script(provider: String, statuses: [Int]) async throws {
        _ = try await call("POST", "/_script", ["provider": .string(provider), "statuses": .array(statuses.map { .integer(Int64($0)) })])
    }

    func expect(_ expectations: JSONValue) async throws {
        _ = try await call("POST", "/_expect", expectations)
    }

    /// A new Web Push subscription (`{endpoint, keys: {p256dh, auth}}`) whose private key the stand-in keeps.
    func subscribe() async throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: try await call("POST", "/_webpush_subscribe", [:]))
    }
}

/// aiosmtpd delivering into a Maildir.
final class SMTPPeer: Sendable {
    let process: Process
    let port: Int
    let maildir: URL
    let python: String

    private init(process: Process, port: Int, maildir: URL, python: String) {
        self.process = process
        self.port = port
        self.maildir = maildir
        self.python = python
    }

    static func start(python: String, maildir: URL) async throws -> SMTPPeer {
        let port = try freePort()
        let process = try startPython(
            python, ["-m", "aiosmtpd", "-n", "-l", "127.0.0.1:\(port)", "-c", "aiosmtpd.handlers.Mailbox", maildir.path],
            stdout: FileHandle.nullDevice)
        let peer = SMTPPeer(process: process, port: port, maildir: maildir, python: python)
        do {
            _ = try await eventually(timeout: .seconds(20), "aiosmtpd to listen on \(port)") {
                guard process.isRunning else { throw HarnessError("aiosmtpd exited (is it installed for \(python)?)") }
                return canConnect(port: port) ? true : nil
            }
        } catch {
            await peer.stop()
            throw error
        }
        return peer
    }

    func stop() async { await stopProcess(process) }

    /// The delivered messages as {to, subject, text}, decoded by Python's email package (RFC 2047, MIME).
    func messages() async throws -> [JSONValue] {
        try await offCooperativePool { try self.messagesBlocking() }
    }

    private func messagesBlocking() throws -> [JSONValue] {
        let newDirectory = maildir.appendingPathComponent("new")
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: newDirectory.path)) ?? []).sorted()
        return try files.map { file in
            let pipe = Pipe()
            let process = try startPython(python, [
                "-c",
                """
                import email, email.policy, json, sys
                m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
                part = m.get_body(preferencelist=('plain',))
                print(json.dumps({'to': str(m['to']), 'subject': str(m['subject']), 'text': part.get_content() if part else None}))
                """,
                newDirectory.appendingPathComponent(file).path,
            ], stdout: pipe)
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return try JSONDecoder().decode(JSONValue.self, from: data)
        }
    }
}

/// SIGKILL: a child of a test process may have inherited an ignored SIGTERM (aiosmtpd then never exits).
func stopProcess(_ process: Process) async {
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    _ = try? await offCooperativePool { process.waitUntilExit() }
}

/// Runs blocking work (pipes, process exits) on a thread of its own: never on Swift's cooperative
/// pool, whose two threads on this machine would otherwise stall every other test.
func offCooperativePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw HarnessError("bind() failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}

func canConnect(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}
