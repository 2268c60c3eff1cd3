import Foundation
import HeraldProviderModel
import HeraldCore
import HeraldProviders
import Testing

@Suite("Secrets")
struct SecretResolverTests {
    @Test("directory file, then NAME_FILE, then NAME")
    func order() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-secrets-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "from-dir\n".write(to: directory.appendingPathComponent("A"), atomically: true, encoding: .utf8)
        let other = directory.appendingPathComponent("elsewhere")
        try "from-file\r\n".write(to: other, atomically: true, encoding: .utf8)

        let environment = ["A": "env-a", "B_FILE": other.path, "B": "env-b", "C": "env-c", "HERALD_SECRETS_DIR": directory.path]
        let resolver = SecretResolver(environment: environment)
        #expect(resolver.value("A") == "from-dir")
        #expect(resolver.value("B") == "from-file")
        #expect(resolver.value("C") == "env-c")
        #expect(resolver.value("D") == nil)
        // A name can't reach outside the directory.
        #expect(resolver.value("../elsewhere") == nil)

        let explicit = SecretResolver(environment: ["A": "env-a"], secretsDirectory: directory.path)
        #expect(explicit.value("A") == "from-dir")
        let noDirectory = SecretResolver(environment: ["A": "env-a"], secretsDirectory: nil)
        #expect(noDirectory.value("A") == "env-a")
    }

    @Test("a multi-line value (a PEM key) keeps its inner line breaks")
    func multiline() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("herald-secret-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        try "-----BEGIN X-----\nabc\n-----END X-----\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(SecretResolver(environment: ["KEY_FILE": file.path]).value("KEY") == "-----BEGIN X-----\nabc\n-----END X-----")
    }
}
