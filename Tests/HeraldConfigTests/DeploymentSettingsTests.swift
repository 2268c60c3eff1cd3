import Foundation
import HeraldConfig
import HeraldCore
import HeraldProviderModel
import HeraldTemplating
import Testing

/// Channel settings (issue 8, defect 3): the shipped channels are pointed at a server through the
/// environment or secret files, with working defaults, and bad values are errors at file:line:col.
@Suite struct DeploymentSettingsTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// The shipped configuration, loaded with `environment` as where settings come from.
    static func shipped(_ environment: [String: String], secretsDirectory: String = "") -> Result<ConfigSnapshot, ConfigErrors> {
        ConfigLoader(directory: repositoryRoot, settings: SecretResolver(environment: environment, secretsDirectory: secretsDirectory))
            .load()
    }

    struct NoSMTPProvider: Error {}

    static func smtp(_ snapshot: ConfigSnapshot) throws -> SMTPProviderSpec {
        guard case .smtp(let spec)? = snapshot.providers(for: "email").first?.transport else { throw NoSMTPProvider() }
        return spec
    }

    static func httpURL(_ snapshot: ConfigSnapshot, _ channel: String) -> String? {
        guard case .http(let spec)? = snapshot.providers(for: channel).first?.transport else { return nil }
        return spec.url.source.source
    }

    static func errors(_ result: Result<ConfigSnapshot, ConfigErrors>) -> [String] {
        guard case .failure(let errors) = result else { return [] }
        return errors.errors.map(\.description)
    }

    @Test("the shipped channels load with their defaults")
    func defaults() throws {
        let snapshot = try Self.shipped([:]).get()
        let smtp = try Self.smtp(snapshot)
        #expect(smtp.url.source.source == "smtp://localhost:587")
        #expect(smtp.startTLS == .required)
        #expect(smtp.caFile == nil)
        #expect(Self.httpURL(snapshot, "matrix")?.hasPrefix("https://matrix-client.matrix.org/_matrix/client/v3/rooms/") == true)
        #expect(Self.httpURL(snapshot, "sms-kannel")?.hasPrefix("http://kannel:13013/cgi-bin/sendsms?") == true)
    }

    @Test("email, matrix and sms-kannel are pointed at a server without editing them")
    func pointed() throws {
        let ca = NSTemporaryDirectory() + "herald-ca-\(UUID().uuidString).pem"
        try "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".write(toFile: ca, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: ca) }
        let snapshot = try Self.shipped([
            "SMTP_HOST": "127.0.0.1", "SMTP_PORT": "2525", "SMTP_STARTTLS": "opportunistic", "SMTP_CA_FILE": ca,
            "MATRIX_HOMESERVER_URL": "https://matrix.bücher.test:8448/", "KANNEL_URL": "http://10.0.0.7:13013",
        ]).get()
        let smtp = try Self.smtp(snapshot)
        #expect(smtp.url.source.source == "smtp://127.0.0.1:2525")
        #expect(smtp.startTLS == .opportunistic)
        #expect(smtp.caFile == ca)
        // A trailing slash is dropped; a non-ASCII host becomes its A-label.
        #expect(Self.httpURL(snapshot, "matrix")?.hasPrefix("https://matrix.xn--bcher-kva.test:8448/_matrix/client/v3/rooms/") == true)
        #expect(Self.httpURL(snapshot, "sms-kannel")?.hasPrefix("http://10.0.0.7:13013/cgi-bin/sendsms?") == true)
        // IPv6 hosts are bracketed.
        #expect(try Self.smtp(try Self.shipped(["SMTP_HOST": "::1"]).get()).url.source.source == "smtp://[::1]:587")
    }

    @Test("settings come from the secrets directory and NAME_FILE too; a change is a new version")
    func sources() throws {
        let directory = NSTemporaryDirectory() + "herald-secrets-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "mail.internal\n".write(toFile: directory + "/SMTP_HOST", atomically: true, encoding: .utf8)
        try "465\n".write(toFile: directory + "/port", atomically: true, encoding: .utf8)
        let first = try Self.shipped(["SMTP_PORT_FILE": directory + "/port", "SMTP_SCHEME": "smtps"], secretsDirectory: directory).get()
        #expect(try Self.smtp(first).url.source.source == "smtps://mail.internal:465")
        try "mail2.internal\n".write(toFile: directory + "/SMTP_HOST", atomically: true, encoding: .utf8)
        let second = try Self.shipped(["SMTP_PORT_FILE": directory + "/port", "SMTP_SCHEME": "smtps"], secretsDirectory: directory).get()
        #expect(try Self.smtp(second).url.source.source == "smtps://mail2.internal:465")
        #expect(first.version != second.version)
    }

    @Test(
        "bad values are errors at the setting, naming where the value came from",
        arguments: [
            ("SMTP_HOST", "127.0.0.1:2525", "channels.d/email.yaml:12:", "it has a port (':2525'): a host setting takes the host alone; set the port in SMTP_PORT"),
            ("SMTP_HOST", "mail_server", "channels.d/email.yaml:12:", "is not a host name"),
            ("SMTP_PORT", "587a", "channels.d/email.yaml:13:", "setting SMTP_PORT from environment variable SMTP_PORT is not a valid port"),
            ("SMTP_PORT", "70000", "channels.d/email.yaml:13:", "a port is 1-65535"),
            ("SMTP_STARTTLS", "yes", "channels.d/email.yaml:15:", "expected required, opportunistic, none"),
            ("SMTP_CA_FILE", "certs/ca.pem", "channels.d/email.yaml:16:", "a file must be an absolute path"),
            ("MATRIX_HOMESERVER_URL", "matrix.example.org", "channels.d/matrix.yaml:", "a url starts with https:// or http://"),
            ("MATRIX_HOMESERVER_URL", "https://example.org/?x={{secrets.MATRIX_ACCESS_TOKEN}}", "channels.d/matrix.yaml:", "brace"),
            ("KANNEL_URL", "http://user:pw@kannel:13013", "channels.d/sms-kannel.yaml:", "no user info"),
        ])
    func badValues(name: String, value: String, location: String, message: String) {
        let errors = Self.errors(Self.shipped([name: value]))
        // One error, at the setting: the providers that use it are not read (no echoes).
        #expect(errors.count == 1, "\(errors)")
        #expect(errors.first?.hasPrefix(location) == true, "\(errors)")
        #expect(errors.first?.contains(message) == true, "\(errors)")
    }

    @Test("undeclared settings, bad declarations and ca_file problems are located")
    func declarations() throws {
        let notPEM = NSTemporaryDirectory() + "herald-notpem-\(UUID().uuidString)"
        try "hello".write(toFile: notPEM, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: notPEM) }
        let directory = try ConfigDirectory([
            "channels.d/bad.yaml": """
                name: bad
                recipient: email
                settings:
                  WHAT: {type: hostname, default: x}
                  NO_DEFAULT: {type: port}
                  BAD_DEFAULT: {type: port, default: none}
                providers:
                  - name: relay
                    kind: smtp
                    url: "smtp://{{settings.WHAT}}"
                    from: "a@example.com"

                """,
            "channels.d/mail.yaml": """
                name: mail
                recipient: email
                settings:
                  HOST: {type: host, default: localhost}
                  OTHER: {type: [a, b], default: a}
                providers:
                  - name: relay
                    kind: smtp
                    url: "smtp://{{settings.HOST}}:{{settings.PORT}}"
                    from: "a@example.com"
                  - name: relay2
                    kind: smtp
                    url: "smtp://{{settings.HOST}}"
                    ca_file: relative.pem
                    from: "a@example.com"
                  - name: relay3
                    kind: smtp
                    url: "smtp://{{settings.HOST}}"
                    ca_file: /nonexistent/ca.pem
                    from: "a@example.com"
                  - name: relay4
                    kind: smtp
                    url: "smtp://{{settings.HOST}}"
                    ca_file: \(notPEM)
                    from: "a@example.com"

                """
        ])
        let errors = directory.errors()
        #expect(errors.contains("channels.d/bad.yaml:4:16: type of WHAT must be host, port, url, file or a list of words, not 'hostname'"), "\(errors)")
        #expect(errors.contains("channels.d/bad.yaml:5:15: missing required key 'default' in setting NO_DEFAULT"), "\(errors)")
        #expect(errors.contains("channels.d/bad.yaml:6:38: the default of BAD_DEFAULT is not a valid port: a port is 1-65535"), "\(errors)")
        #expect(errors.filter { $0.hasPrefix("channels.d/bad.yaml") }.count == 3, "\(errors)")
        #expect(errors.contains("channels.d/mail.yaml:9:10: settings.PORT is not declared in this channel's settings; declared: HOST, OTHER"), "\(errors)")
        #expect(errors.contains("channels.d/mail.yaml:14:14: ca_file must be an absolute path, not 'relative.pem'"), "\(errors)")
        #expect(errors.contains("channels.d/mail.yaml:19:14: ca_file '/nonexistent/ca.pem' cannot be read"), "\(errors)")
        #expect(errors.contains("channels.d/mail.yaml:24:14: ca_file '\(notPEM)' has no PEM certificate (-----BEGIN CERTIFICATE-----)"), "\(errors)")
    }
}
