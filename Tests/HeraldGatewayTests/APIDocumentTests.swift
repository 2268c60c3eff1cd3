import HeraldCore
import Testing

@testable import HeraldGateway

@Suite struct APIDocumentTests {
    @Test func theEmbeddedDocumentIsOpenAPI31WithEveryOperationDescribed() throws {
        let document = APIDocument.document
        #expect(document["openapi"] == "3.1.0")
        #expect(APIDocument.operations.contains("POST /v1/notifications"))
        #expect(APIDocument.operations.contains("GET /v1/notifications/{id}"))
        // Every operation names an id, a summary and its answers; every /v1 one the security scheme.
        for operation in APIDocument.operations {
            let parts = operation.split(separator: " ").map(String.init)
            let described = try #require(document["paths"]?[parts[1]]?[parts[0].lowercased()], "\(operation)")
            #expect(described["operationId"]?.stringValue?.isEmpty == false, "\(operation)")
            #expect(described["summary"]?.stringValue?.isEmpty == false, "\(operation)")
            #expect(described["responses"]?.objectValue?.isEmpty == false, "\(operation)")
            // Providers' receipt callbacks carry their own proof instead of an API key (docs/delivery.md).
            if parts[1].hasPrefix("/v1/") && !parts[1].hasPrefix("/v1/receipts/") {
                #expect(described["security"] == nil, "\(operation) must use the document's API key security")
                #expect(described["responses"]?["401"] != nil, "\(operation) must describe 401")
            } else {
                #expect(described["security"] == .array([]), "\(operation) is open and must say so")
            }
        }
        #expect(document.value(atPath: "components.securitySchemes.apiKey.scheme") == "bearer")
    }

    @Test func everyReferenceResolves() {
        var unresolved: [String] = []
        func walk(_ value: JSONValue, _ path: String) {
            switch value {
            case .object(let members):
                if let reference = members["$ref"]?.stringValue, APIDocument.resolve(value) == .null {
                    unresolved.append("\(path): \(reference)")
                }
                for (key, member) in members { walk(member, "\(path)/\(key)") }
            case .array(let elements):
                for (index, element) in elements.enumerated() { walk(element, "\(path)/\(index)") }
            default: break
            }
        }
        walk(APIDocument.document, "")
        #expect(unresolved == [])
    }

    @Test func theStatusEnumsAreTheCodes() {
        let statuses = APIDocument.document.value(atPath: "components.schemas.DeliveryStatus.enum")?.arrayValue?.compactMap(\.stringValue)
        #expect(statuses == DeliveryStatus.allCases.map(\.rawValue))
        let aggregate = APIDocument.document.value(atPath: "components.schemas.NotificationStatus.enum")?.arrayValue?
            .compactMap(\.stringValue)
        // Every word aggregateStatus can answer is in the document.
        let samples: [[DeliveryStatus]] = [
            [.scheduled], [.queued], [.sending], [.sent], [.sent, .failed], [.failed], [.cancelled], [.expired], [.delivered],
        ]
        for sample in samples {
            #expect(aggregate?.contains(NotificationResponse.aggregateStatus(sample)) == true, "\(sample)")
        }
    }

    @Test func theDocsPageListsEveryOperationAndEscapesText() {
        let html = APIDocument.html
        #expect(html.hasPrefix("<!doctype html>"))
        for operation in APIDocument.operations {
            let parts = operation.split(separator: " ")
            #expect(html.contains("<span class=\"path\">\(parts[1])</span>"), "\(operation)")
        }
        // The document's text arrives as text, not markup: the key format's angle brackets are escaped.
        #expect(html.contains("Bearer hk_…"))
        #expect(html.contains("bearer hk_&lt;12-character prefix&gt;_&lt;secret&gt;"))
        #expect(!html.contains("<secret>"))
    }
}

@Suite struct RouteTableTests {
    let table = RouteTable([
        "GET /v1/notifications", "POST /v1/notifications", "POST /v1/notifications/batch", "GET /v1/notifications/{id}",
        "POST /v1/notifications/{id}/cancel", "GET /healthz",
    ])

    @Test func aKnownPathGetsItsMethods() {
        #expect(table.methods(for: "/v1/notifications") == ["GET", "POST"])
        #expect(table.methods(for: "/v1/notifications/0b7c9e5e-1111-4111-8111-111111111111") == ["GET"])
        #expect(table.methods(for: "/v1/notifications/x/cancel") == ["POST"])
        #expect(table.methods(for: "/healthz/") == ["GET"])
    }

    @Test func aLiteralSegmentWinsOverACapture() {
        // As in the router: GET /v1/notifications/batch is not GET /v1/notifications/{id}.
        #expect(table.methods(for: "/v1/notifications/batch") == ["POST"])
    }

    @Test func anUnknownPathHasNone() {
        #expect(table.methods(for: "/v1/nothing") == [])
        #expect(table.methods(for: "/v1/notifications/a/b") == [])
        #expect(table.methods(for: "/") == [])
    }
}
