import Foundation
import HeraldConfig
import HeraldCore
import HeraldHTTPRuntime
import HeraldProviderModel
import HeraldProviders
import HeraldTemplating
import Logging
import Testing

/// Herald's own Postfix (scripts/services postfix, scripts/lib/postfix.sh): where it listens, its
/// Maildir, its log and the private CA that signed its certificate.
enum Postfix {
    static let environment = ProcessInfo.processInfo.environment
    static let port = Int(environment["HERALD_SMTP_PORT"] ?? "") ?? 2525
    /// No STARTTLS, no SMTPUTF8.
    static let plainPort = Int(environment["HERALD_SMTP_PLAIN_PORT"] ?? "") ?? 2526
    /// STARTTLS with a self-signed certificate.
    static let selfSignedPort = Int(environment["HERALD_SMTP_SELFSIGNED_PORT"] ?? "") ?? 2527
    static let directory = environment["HERALD_POSTFIX_DIR"] ?? "/var/tmp/herald-postfix-\(port)"
    static let caFile = directory + "/tls/ca.pem"
    static let maildir = directory + "/mail/catchall/new"

    /// The delivered message whose text contains `marker` (Postfix delivers from its queue a moment
    /// after it accepted the message).
    static func mail(containing marker: String, timeout: Duration = .seconds(15)) async throws -> String {
        try await eventually(timeout: timeout, "a mail containing \(marker) in \(maildir)") {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: maildir)) ?? []
            for name in names {
                guard let data = FileManager.default.contents(atPath: maildir + "/" + name) else { continue }
                let text = String(decoding: data, as: UTF8.self)
                if text.contains(marker) { return text }
            }
            return nil
        }
    }

    /// The topmost `Received:` field (the one Postfix added), unfolded.
    static func receivedHeader(_ mail: String) -> String {
        var field = ""
        for line in mail.components(separatedBy: "\n").map({ $0.trimmingCharacters(in: CharacterSet(charactersIn: "\r")) }) {
            if field.isEmpty {
                if line.hasPrefix("Received:") { field = line }
            } else if line.hasPrefix(" ") || line.hasPrefix("\t") {
                field += " " + line.trimmingCharacters(in: .whitespaces)
            } else {
                break
            }
        }
        return field
    }
}

/// Mail through a real Postfix: STARTTLS requirements hold across connection reuse and reloads,
/// TLS configuration errors are permanent, a private CA can be trusted, and the server's words
/// reach the attempt log.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct MailServerTests {
    static let logger = Logger(label: "herald.test.mail")

    static func job(to address: String, subject: String) -> DeliveryJob {
        DeliveryJob(
            deliveryID: UUID(), notificationID: UUID(), channel: "email", attempt: 1, to: ["email": .string(address)],
            message: MessageContent(subject: subject, text: "body of \(subject)"), metadata: .object([:]), acceptedAt: Date())
    }

    static func provider(
        url: String, startTLS: SMTPProviderSpec.StartTLS, caFile: String? = nil, runtime: CurlRuntime, name: String = "smtp"
    ) throws -> ProviderClient {
        let spec = ProviderSpec(
            name: name,
            transport: .smtp(
                SMTPProviderSpec(
                    url: try CompiledTemplate(TemplateText(url), escaping: .text), startTLS: startTLS, username: nil, password: nil,
                    from: try CompiledTemplate(TemplateText("Herald <herald@example.test>"), escaping: .text), caFile: caFile)))
        return ProviderClient(
            spec: spec, runtime: runtime, secrets: SecretResolver(environment: [:], secretsDirectory: "/nonexistent-herald-secrets"),
            restrictToPublicAddresses: false, timeout: .seconds(10), logger: logger)
    }

    static func withRuntime<T: Sendable>(
        _ configuration: CurlRuntime.Configuration = .init(), _ body: (CurlRuntime) async throws -> T
    ) async throws -> T {
        let runtime = CurlRuntime(configuration: configuration, logger: logger)
        let service = Task { try await runtime.run() }
        defer { service.cancel() }
        return try await body(runtime)
    }

    static func marker(_ what: String) -> String { "herald-\(what)-\(UUID().uuidString.prefix(8).lowercased())" }

    // MARK: 1. STARTTLS required is never bypassed

    /// libcurl 7.88.1 reuses a cached SMTP connection to the same host and port whatever
    /// CURLOPT_USE_SSL the next transfer asks for: a `required` mail went out on the plain-text
    /// connection a `none` channel had left open. Postfix refuses plain-text sessions for
    /// tls.example.test (reject_plaintext_session), so such a mail can't even be delivered.
    @Test("a starttls: required mail never rides a plain-text connection another channel left open")
    func requiredNeverReusesPlaintext() async throws {
        try await Self.withRuntime { runtime in
            let url = "smtp://localhost:\(Postfix.port)"
            let plain = try Self.provider(url: url, startTLS: .none, runtime: runtime, name: "plain")
            let required = try Self.provider(url: url, startTLS: .required, caFile: Postfix.caFile, runtime: runtime, name: "tls")
            for round in 1...2 {
                let plainMarker = Self.marker("plain\(round)")
                let plainResult = await plain.attempt(Self.job(to: "plain@example.test", subject: plainMarker), recipientField: "email")
                #expect(plainResult.outcome == .success, "\(plainResult.error ?? "")")
                let tlsMarker = Self.marker("required\(round)")
                let tlsResult = await required.attempt(Self.job(to: "secure@tls.example.test", subject: tlsMarker), recipientField: "email")
                #expect(tlsResult.outcome == .success, "the required mail was refused: \(tlsResult.error ?? "")")
                guard tlsResult.outcome == .success else { return }

                let plainReceived = Postfix.receivedHeader(try await Postfix.mail(containing: plainMarker))
                #expect(plainReceived.contains("with ESMTP id"), "\(plainReceived)")
                #expect(!plainReceived.contains("using TLS"), "\(plainReceived)")
                let tlsReceived = Postfix.receivedHeader(try await Postfix.mail(containing: tlsMarker))
                #expect(tlsReceived.contains("using TLS"), "\(tlsReceived)")
                #expect(tlsReceived.contains("with ESMTPS id"), "\(tlsReceived)")
            }
        }
    }

    /// The same channel before and after a reload: the provider clients of the new configuration
    /// share the runtime (and so libcurl's caches) with the old ones.
    @Test("a reload from starttls: none to required does not reuse the old plain-text connection")
    func reloadToRequiredUsesTLS() async throws {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("herald-mail-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("channels.d"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func write(_ tlsLines: String) throws {
            try """
            name: mail
            category: email
            recipient: email
            providers:
              - name: smtp
                kind: smtp
                url: "smtp://localhost:\(Postfix.port)"
            \(tlsLines)
                from: "Herald <herald@example.test>"
            """.write(to: directory.appendingPathComponent("channels.d/mail.yaml"), atomically: true, encoding: .utf8)
        }
        func client(runtime: CurlRuntime) throws -> ProviderClient {
            let snapshot = try ConfigLoader(directory: directory.path).load().get()
            let spec = try #require(snapshot.providers(for: "mail").first)
            return ProviderClient(
                spec: spec, runtime: runtime, secrets: SecretResolver(environment: [:], secretsDirectory: "/nonexistent-herald-secrets"),
                restrictToPublicAddresses: false, timeout: .seconds(10), logger: Self.logger)
        }
        try await Self.withRuntime { runtime in
            try write("    starttls: none")
            let before = try client(runtime: runtime)
            let beforeMarker = Self.marker("before-reload")
            let first = await before.attempt(Self.job(to: "plain@example.test", subject: beforeMarker), recipientField: "email")
            #expect(first.outcome == .success, "\(first.error ?? "")")

            try write("    starttls: required\n    ca_file: \(Postfix.caFile)")
            let after = try client(runtime: runtime)
            let afterMarker = Self.marker("after-reload")
            let second = await after.attempt(Self.job(to: "secure@tls.example.test", subject: afterMarker), recipientField: "email")
            #expect(second.outcome == .success, "the required mail was refused: \(second.error ?? "")")
            guard second.outcome == .success else { return }
            let received = Postfix.receivedHeader(try await Postfix.mail(containing: afterMarker))
            #expect(received.contains("using TLS") && received.contains("with ESMTPS id"), "\(received)")
        }
    }

    // MARK: 2. TLS configuration errors are permanent; a private CA can be trusted

    @Test(
        "TLS configuration errors fail at once, permanently",
        arguments: [
            // (url, ca_file, expected code, what)
            ("smtp://localhost:\(Postfix.selfSignedPort)", Postfix.caFile, TransferError.Code.tlsVerificationFailed, "self-signed"),
            ("smtp://localhost:\(Postfix.port)", nil, .tlsVerificationFailed, "private CA not trusted"),
            ("smtp://127.0.0.1:\(Postfix.port)", Postfix.caFile, .tlsVerificationFailed, "host name mismatch"),
            ("smtp://localhost:\(Postfix.plainPort)", Postfix.caFile, .tlsUnavailable, "STARTTLS not offered"),
        ] as [(String, String?, TransferError.Code, String)])
    func tlsConfigurationErrorsArePermanent(url: String, caFile: String?, code: TransferError.Code, what: String) async throws {
        try await Self.withRuntime { runtime in
            let provider = try Self.provider(url: url, startTLS: .required, caFile: caFile, runtime: runtime)
            let started = ContinuousClock.now
            let result = await provider.attempt(Self.job(to: "secure@example.test", subject: Self.marker("tls-error")), recipientField: "email")
            #expect(result.outcome == .permanentFailure, "\(what): \(result.outcome) \(result.error ?? "")")
            #expect(result.error?.hasPrefix("\(code):") == true, "\(what): \(result.error ?? "")")
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    }

    @Test("the private CA is trusted through ca_file, SSL_CERT_FILE or CURL_CA_BUNDLE")
    func privateCATrusted() async throws {
        for environment in [["SSL_CERT_FILE": Postfix.caFile], ["CURL_CA_BUNDLE": Postfix.caFile]] {
            var configuration = CurlRuntime.Configuration()
            configuration.defaultCAFile = CurlRuntime.Configuration.defaultCAFile(environment: environment)
            try await Self.withRuntime(configuration) { runtime in
                let provider = try Self.provider(url: "smtp://localhost:\(Postfix.port)", startTLS: .required, runtime: runtime)
                let marker = Self.marker("env-ca")
                let result = await provider.attempt(Self.job(to: "secure@tls.example.test", subject: marker), recipientField: "email")
                #expect(result.outcome == .success, "\(environment.keys.first ?? ""): \(result.error ?? "")")
                if result.outcome == .success {
                    #expect(Postfix.receivedHeader(try await Postfix.mail(containing: marker)).contains("using TLS"))
                }
            }
        }
    }

    // MARK: 4. The server's words reach the attempt

    @Test("an SMTP refusal keeps the server's text")
    func refusalKeepsServerText() async throws {
        try await Self.withRuntime { runtime in
            let provider = try Self.provider(url: "smtp://localhost:\(Postfix.plainPort)", startTLS: .none, runtime: runtime)
            let result = await provider.attempt(Self.job(to: "nosuchuser@example.test", subject: Self.marker("nosuch")), recipientField: "email")
            #expect(result.outcome == .permanentFailure)
            let error = result.error ?? ""
            #expect(error.contains("550 5.1.1"), "\(error)")
            #expect(error.contains("User unknown in virtual mailbox table"), "\(error)")
        }
    }

    // MARK: 5. Internationalised addresses

    /// The relay on the plain port has SMTPUTF8 off, as many still do: a UTF-8 domain must go out
    /// as its A-label, and Postfix knows the domain only by that name.
    @Test("a non-ASCII domain goes out as its A-label, even to a relay without SMTPUTF8")
    func domainBecomesALabel() async throws {
        try await Self.withRuntime { runtime in
            let provider = try Self.provider(url: "smtp://localhost:\(Postfix.plainPort)", startTLS: .none, runtime: runtime)
            let marker = Self.marker("idn-domain")
            let result = await provider.attempt(Self.job(to: "jorg@bücher.test", subject: marker), recipientField: "email")
            #expect(result.outcome == .success, "\(result.error ?? "")")
            guard result.outcome == .success else { return }
            let mail = try await Postfix.mail(containing: marker)
            #expect(mail.contains("To: jorg@xn--bcher-kva.test"), "\(mail)")
            #expect(Postfix.receivedHeader(mail).contains("for <jorg@xn--bcher-kva.test>"), "\(Postfix.receivedHeader(mail))")
        }
    }

    @Test("a non-ASCII local part fails permanently, before MAIL FROM, where SMTPUTF8 is not offered")
    func localPartNeedsSMTPUTF8() async throws {
        try await Self.withRuntime { runtime in
            let provider = try Self.provider(url: "smtp://localhost:\(Postfix.plainPort)", startTLS: .none, runtime: runtime)
            let result = await provider.attempt(Self.job(to: "jörg@example.test", subject: Self.marker("utf8-refused")), recipientField: "email")
            #expect(result.outcome == .permanentFailure, "\(result.outcome) \(result.error ?? "")")
            #expect(result.error?.hasPrefix("smtputf8Unavailable:") == true, "\(result.error ?? "")")
            #expect(result.error?.contains("SMTPUTF8") == true)
        }
    }

    @Test("a non-ASCII local part goes out with SMTPUTF8 where the server offers it")
    func localPartWithSMTPUTF8() async throws {
        try await Self.withRuntime { runtime in
            let provider = try Self.provider(
                url: "smtp://localhost:\(Postfix.port)", startTLS: .required, caFile: Postfix.caFile, runtime: runtime)
            let marker = Self.marker("utf8-sent")
            // Twice: the second transfer must see the EHLO answer of a connection of its own.
            for round in 1...2 {
                let result = await provider.attempt(Self.job(to: "jörg@bücher.test", subject: "\(marker)-\(round)"), recipientField: "email")
                #expect(result.outcome == .success, "\(round): \(result.error ?? "")")
                guard result.outcome == .success else { return }
                let received = Postfix.receivedHeader(try await Postfix.mail(containing: "\(marker)-\(round)"))
                #expect(received.contains("with UTF8SMTPS id"), "\(received)")
                #expect(received.contains("for <jörg@xn--bcher-kva.test>"), "\(received)")
            }
        }
    }
}

/// Multimedia (issue 8): files sent with a notification through the gateway, the queue, a worker and
/// the shipped `email` channel arrive at the real Postfix intact, read back by Python's own MIME parser.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct MailAttachmentTests {
    @Test func attachmentsArriveIntactThroughTheWholePipeline() async throws {
        let channel = PeerHarness.Channel(file: "email.yaml", replacing: [
            ("SMTP_PORT: {type: port, default: 587}", "SMTP_PORT: {type: port, default: \(Postfix.port)}"),
            (#"SMTP_CA_FILE: {type: file, default: ""}"#, #"SMTP_CA_FILE: {type: file, default: "\#(Postfix.caFile)"}"#),
        ])
        // The third file is given by URL: the worker fetches it from this server at send.
        let fetched = Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) })
        let files = FileServer(["/files/report.bin": .init(contentType: "application/octet-stream", bytes: Array(fetched))])
        try await files.serving { files in
            try await PeerHarness.with(channels: [channel], secrets: [
                "EMAIL_FROM": "Herald <herald@example.test>", "SMTP_USERNAME": "", "SMTP_PASSWORD": "",
            ]) { harness in
                let marker = MailServerTests.marker("attachment")
                let binary = Data((0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) })
                let text = Data("Zeile 1\r\nЗдравствуйте — ok\n".utf8)
                let request: JSONValue = [
                    "channel": .string(harness.channel("email")), "to": ["email": "files@example.test"],
                    "message": [
                        "subject": .string("Invoice \(marker)"), "text": "See the attached files.", "html": "<p>See the <b>attached</b> files.</p>",
                        "attachments": [
                            ["filename": "Счёт №1.pdf", "content_type": "application/pdf", "content": .string(binary.base64EncodedString())],
                            ["filename": "notes.txt", "content_type": "text/plain", "content": .string(text.base64EncodedString())],
                            ["filename": "report.bin", "content_type": "application/octet-stream",
                             "url": .string(files.url("/files/report.bin"))],
                        ],
                    ],
                ]
                let id = try await harness.accepted(request)
                let final = try await harness.wait(id: id, for: ["sent", "failed"])
                #expect(final.value(atPath: "deliveries.0.status") == "sent", "\(final)")
                let mail = try await Postfix.mail(containing: marker)
                // Python's email package, not ours, takes the message apart.
                let parts = try await runPython(
                    "import sys, json, email, email.policy, base64\n"
                        + "m = email.message_from_string(open(sys.argv[1]).read(), policy=email.policy.default)\n"
                        + "out = [{'filename': p.get_filename(), 'type': p.get_content_type(), 'content': base64.b64encode(p.get_payload(decode=True)).decode()}"
                        + " for p in m.iter_attachments()]\n"
                        + "body = m.get_body(preferencelist=('plain',))\n"
                        + "print(json.dumps({'attachments': out, 'text': body.get_content() if body else None, 'type': m.get_content_type()}))",
                    [try Self.write(mail)])
                let parsed = try JSONParser.parse(Array(parts.utf8))
                #expect(parsed["type"] == "multipart/mixed")
                #expect(parsed["text"]?.stringValue?.contains("See the attached files.") == true)
                let attachments = try #require(parsed["attachments"]?.arrayValue)
                #expect(attachments.count == 3)
                #expect(attachments.first?["filename"] == "Счёт №1.pdf")
                #expect(attachments.first?["type"] == "application/pdf")
                #expect(attachments.first?["content"] == .string(binary.base64EncodedString()))
                #expect(attachments.dropFirst().first?["filename"] == "notes.txt")
                #expect(attachments.dropFirst().first?["content"] == .string(text.base64EncodedString()))
                #expect(attachments.last?["filename"] == "report.bin")
                #expect(attachments.last?["content"] == .string(fetched.base64EncodedString()))

                // A file URL that answers 404 is a permanent failure naming the attachment: no mail without it.
                let missing = try await harness.accepted([
                    "channel": .string(harness.channel("email")), "to": ["email": "files@example.test"],
                    "message": ["subject": "missing file", "text": "t", "attachments": [
                        ["filename": "gone.pdf", "content_type": "application/pdf", "url": .string(files.url("/files/gone.pdf"))],
                    ]],
                ])
                let failed = try await harness.wait(id: missing, for: ["sent", "failed"])
                #expect(failed.value(atPath: "deliveries.0.status") == "failed")
                #expect(failed.value(atPath: "deliveries.0.attempt_count") == 1)
                #expect(failed.value(atPath: "deliveries.0.last_error")?.stringValue
                    == "fetching attachment 0 (gone.pdf): the URL answered HTTP 404")
            }
        }
    }

    @Test func attachmentsAreCheckedAtAcceptAndOnlyEmailCarriesThem() async throws {
        let channel = PeerHarness.Channel(file: "email.yaml")
        try await PeerHarness.with(channels: [channel, PeerHarness.Channel(file: "webhook.yaml")], secrets: [:]) { harness in
            func problem(_ message: JSONValue, channel: String = "email") async throws -> [String] {
                let (status, body) = try await harness.send(
                    ["channel": .string(harness.channel(channel)), "to": ["email": "a@example.test", "webhook_url": "https://example.com/h"],
                     "message": message])
                #expect(status == 422, "\(body)")
                return body["errors"]?.arrayValue?.compactMap { $0["field"]?.stringValue } ?? []
            }
            let good: JSONValue = ["filename": "a.txt", "content_type": "text/plain", "content": "aGk="]
            let cases: [(JSONValue, String, [String])] = [
                (["text": "t", "attachments": [good]], "webhook", ["message.attachments"]),
                (["text": "t", "attachments": [["filename": "a\nb", "content_type": "text/plain", "content": "aGk="]]], "email",
                 ["message.attachments.0.filename"]),
                (["text": "t", "attachments": [["filename": "a", "content_type": "text", "content": "aGk="]]], "email",
                 ["message.attachments.0.content_type"]),
                (["text": "t", "attachments": [["filename": "a", "content_type": "text/plain", "content": "not base64!"]]], "email",
                 ["message.attachments.0.content"]),
                (["text": "t", "attachments": [["filename": "a", "content_type": "text/plain",
                    "content": .string(String(repeating: "A", count: (RequestValidator.maximumAttachmentBytes / 3 + 2) * 4))]]], "email",
                 ["message.attachments"]),
                (["text": "t", "image_url": "http://user:pw@example.com/i.png"], "email", ["message.image_url"]),
                (["text": "t", "attachments": [["filename": "a", "content_type": "text/plain", "content": "aGk=",
                    "url": "https://example.com/a"]]], "email", ["message.attachments.0"]),
                (["text": "t", "attachments": [["filename": "a", "content_type": "text/plain",
                    "url": "https://user:pw@example.com/a"]]], "email", ["message.attachments.0.url"]),
                (["text": "t", "attachments": [["filename": "a", "content_type": "text/plain"]]], "email", ["message.attachments.0.content"]),
            ]
            for (message, channel, fields) in cases {
                let found = try await problem(message, channel: channel)
                #expect(found == fields, "\(message)")
            }
        }
    }

    static func write(_ mail: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("herald-mail-\(UUID().uuidString.prefix(8)).eml").path
        try mail.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
