import Foundation
import HTTPTypes
import HeraldCore
import HeraldGateway
import HeraldStore
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Keys, scopes, tenants and idempotency through the real gateway and PostgreSQL.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct APIAccessTests {
    typealias E2E = EndToEndTests

    @Test func keysScopesAndTenantsAreEnforced() async throws {
        let channel = DeliveryGuaranteesTests.channel()
        try await E2E.withHerald(channel: channel, receiver: WebhookReceiver()) { herald in
            let body = """
                {"channel": "\(channel.name)", "to": {"webhook_url": "\(herald.receiver.url)"}, "message": {"text": "x"}}
                """
            // No key, a malformed key, a forged key: 401 problem+json with a challenge.
            for token in ["", "nope", "hk_abcdefghijkl_" + String(repeating: "y", count: 43)] {
                let response = try await E2E.post(herald.client.with(token: token), body)
                #expect(response.status == .unauthorized)
                #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                #expect(response.headers[.contentType] == "application/problem+json")
            }
            let accepted = try await E2E.post(herald.client, body)
            #expect(accepted.status == .accepted)
            let id = try #require(try E2E.document(accepted)["id"]?.stringValue)

            // A read-only key of the same tenant may read but not send.
            let (readOnly, _) = try await TestServers.createKey(tenant: herald.key.tenant, scopes: [.read])
            #expect(try await E2E.post(herald.client.with(token: readOnly), body).status == .forbidden)
            #expect(try await herald.client.with(token: readOnly).execute(uri: "/v1/notifications/\(id)", method: .get).status == .ok)

            // Another tenant sees nothing of it: not found, not cancellable, not listed, no idempotency collision.
            let (other, _) = try await TestServers.createKey(scopes: [.send, .read])
            let stranger = herald.client.with(token: other)
            #expect(try await stranger.execute(uri: "/v1/notifications/\(id)", method: .get).status == .notFound)
            #expect(try await stranger.execute(uri: "/v1/notifications/\(id)/cancel", method: .post).status == .notFound)
            let deliveryID = try #require(try E2E.document(accepted).value(atPath: "deliveries.0.id")?.stringValue)
            #expect(try await stranger.execute(uri: "/v1/deliveries/\(deliveryID)/retry", method: .post).status == .notFound)
            let listed = try E2E.document(try await stranger.execute(uri: "/v1/notifications", method: .get))
            #expect(listed["items"]?.arrayValue?.isEmpty == true)
            let mine = try E2E.document(try await herald.client.execute(uri: "/v1/notifications?limit=10", method: .get))
            #expect(mine["items"]?.arrayValue?.first?["id"] == .string(id))

            // Revoked keys are refused (within the cache's lifetime; the test gateway's is 5 s).
            _ = try await TestServers.withDatabase { client in
                try await APIKeyStore(client: client, logger: TestServers.logger).revoke(prefix: String(readOnly.prefix(15)))
            }
            try await Task.sleep(for: .seconds(5.5))
            let revoked = try await herald.client.with(token: readOnly).execute(uri: "/v1/notifications/\(id)", method: .get)
            #expect(revoked.status == .unauthorized)
        }
    }

    @Test func idempotencyFollowsStripe() async throws {
        let channel = DeliveryGuaranteesTests.channel()
        try await E2E.withHerald(channel: channel, receiver: WebhookReceiver()) { herald in
            let key = "order-\(UUID().uuidString)"
            let body = """
                {"channel": "\(channel.name)", "to": {"webhook_url": "\(herald.receiver.url)"}, "message": {"text": "once"}}
                """
            @Sendable func post(_ text: String, client: any TestClientProtocol) async throws -> TestResponse {
                try await client.execute(
                    uri: "/v1/notifications", method: .post,
                    headers: [.contentType: "application/json", HTTPField.Name("Idempotency-Key")!: key], body: ByteBuffer(string: text))
            }
            // Concurrent duplicates: one notification, every answer the same.
            let client = herald.client
            let answers = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        let response = try await post(body, client: client)
                        return (response.status.code, try E2E.document(response)["id"]?.stringValue)
                    }
                }
                var answers: [(Int, String?)] = []
                for try await answer in group { answers.append(answer) }
                return answers
            }
            #expect(Set(answers.map(\.0)) == [202])
            #expect(Set(answers.compactMap(\.1)).count == 1)
            // Same key, different body: 409.
            let different = try await post(body.replacingOccurrences(of: "once", with: "twice"), client: client)
            #expect(different.status == .conflict)
            // Same key for another tenant: its own notification.
            let (other, _) = try await TestServers.createKey()
            let theirs = try await post(body, client: client.with(token: other))
            #expect(theirs.status == .accepted)
            #expect(try E2E.document(theirs)["id"]?.stringValue != answers.first?.1)
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    @Test func batchAndInputChecks() async throws {
        let channel = DeliveryGuaranteesTests.channel()
        try await E2E.withHerald(channel: channel, receiver: WebhookReceiver()) { herald in
            let good = #"{"channel": "\#(channel.name)", "to": {"webhook_url": "\#(herald.receiver.url)"}, "message": {"text": "b"}}"#
            let bad = #"{"channel": "\#(channel.name)", "to": {}, "message": {"text": "b"}}"#
            let batch = try await herald.client.execute(
                uri: "/v1/notifications/batch", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"notifications": [\#(good), \#(bad), \#(good)]}"#))
            #expect(batch.status == .accepted)
            let results = try #require(try E2E.document(batch)["results"]?.arrayValue)
            #expect(results.map { $0["status"] } == ["accepted", "rejected", "accepted"])
            #expect(results[1].value(atPath: "errors.0.field") == .string("notifications.1.to.webhook_url"))

            let plain = try await herald.client.execute(
                uri: "/v1/notifications", method: .post, headers: [.contentType: "text/plain"], body: ByteBuffer(string: good))
            #expect(plain.status == .unsupportedMediaType)
            let duplicateKeys = try await E2E.post(herald.client, #"{"channel": "a", "channel": "b"}"#)
            #expect(duplicateKeys.status == .badRequest)
            #expect(try E2E.document(duplicateKeys).value(atPath: "errors.0.field") == "channel")
            let userinfo = try await E2E.post(herald.client, good.replacingOccurrences(of: "http://", with: "http://user:pw@"))
            #expect(userinfo.status == .unprocessableContent)

            // The audit query route: the caller's own deliveries only, 422 naming the JSON pointer.
            @Sendable func audit(_ text: String, client: any TestClientProtocol) async throws -> TestResponse {
                try await client.execute(
                    uri: "/v1/audit/query", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: text))
            }
            let query = #"{"collection": "deliveries", "filter": {"channel": "\#(channel.name)"}, "limit": 10}"#
            let mine = try await audit(query, client: herald.client)
            #expect(mine.status == .ok)
            #expect(try E2E.document(mine)["items"]?.arrayValue?.count == 2)
            let (other, _) = try await TestServers.createKey()
            let theirs = try await audit(query, client: herald.client.with(token: other))
            #expect(try E2E.document(theirs)["items"]?.arrayValue?.isEmpty == true)
            let wrong = try await audit(#"{"collection": "deliveries", "filter": {"status": {"$nee": 1}}}"#, client: herald.client)
            #expect(wrong.status == .unprocessableContent)
        }
    }

    /// The served routes and openapi.yaml describe the same operations: a route without a description
    /// or a description without a route fails here. Every described operation is really answered
    /// (not the router's 404/405), and the document and the docs page are served without a key.
    @Test func routesAndTheOpenAPIDocumentAgree() async throws {
        let channel = DeliveryGuaranteesTests.channel()
        try await E2E.withHerald(channel: channel, receiver: WebhookReceiver()) { herald in
            #expect(Set(herald.components.routes) == Set(APIDocument.operations))
            #expect(herald.components.routes.count == APIDocument.operations.count)

            let unknownID = UUID().uuidString.lowercased()
            for operation in APIDocument.operations {
                let parts = operation.split(separator: " ").map(String.init)
                let path = parts[1].replacingOccurrences(of: "{id}", with: unknownID).replacingOccurrences(of: "{name}", with: "nope")
                    .replacingOccurrences(of: "{channel}", with: "nope").replacingOccurrences(of: "{provider}", with: "nope")
                let method = HTTPRequest.Method(parts[0])!
                let response = try await herald.client.execute(
                    uri: path, method: method, headers: [.contentType: "application/json"],
                    body: method == .post ? ByteBuffer(string: "{}") : nil)
                let type = response.status.code >= 400 ? try E2E.document(response)["type"]?.stringValue : nil
                #expect(type != "https://herald.dev/problems/http-404", "\(operation) is described but not routed")
                #expect(response.status != .methodNotAllowed, "\(operation)")
                #expect(response.status.code < 500, "\(operation) answered \(response.status)")
            }

            let open = herald.client.with(token: "")
            let yaml = try await open.execute(uri: "/openapi.yaml", method: .get)
            #expect(yaml.status == .ok)
            #expect(String(buffer: yaml.body) == APIDocument.yaml)
            let docs = try await open.execute(uri: "/docs", method: .get)
            #expect(docs.status == .ok)
            #expect(docs.headers[.contentType]?.hasPrefix("text/html") == true)
            // A query parameter with U+0000 is the client's error, not the database's (was a 500).
            for path in ["/v1/deadletters?channel=a%00b", "/v1/notifications?template=%00"] {
                let nul = try await herald.client.execute(uri: path, method: .get)
                #expect(nul.status == .badRequest, "\(path)")
            }
            // A described path asked with another method: 405 naming the methods it has.
            let wrong = try await herald.client.execute(uri: "/v1/notifications/batch", method: .get)
            #expect(wrong.status == .methodNotAllowed)
            #expect(wrong.headers[.allow] == "POST")
        }
    }
}
