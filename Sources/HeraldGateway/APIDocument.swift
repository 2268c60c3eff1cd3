import Foundation
import HeraldCore
import HeraldTemplating
import Yams

/// The API's OpenAPI 3.1 description (`Sources/HeraldGateway/openapi.yaml`, embedded in the binary so
/// that every deployment serves the document of the code it runs) and the readable page made from it.
public enum APIDocument {
    /// `GET /openapi.yaml`.
    public static let yaml = String(decoding: PackageResources.openapi_yaml, as: UTF8.self)

    /// The document as JSON values, for tests and the docs page.
    public static let document: JSONValue = {
        guard let parsed = try? Yams.load(yaml: yaml) else { return .null }
        return json(parsed)
    }()

    /// Every operation the document describes, as `METHOD /path` (`GET /v1/notifications/{id}`).
    public static var operations: [String] {
        guard let paths = document["paths"]?.objectValue else { return [] }
        return paths.keys.sorted().flatMap { path in
            (paths[path]?.objectValue ?? [:]).keys.filter(httpMethods.contains).sorted().map { "\($0.uppercased()) \(path)" }
        }
    }

    static let httpMethods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options"]

    /// `GET /docs`: one HTML page listing every operation with its parameters, body and answers, and
    /// the schemas — rendered by the templating's HTML escaping, so no text from the document can
    /// become markup.
    public static let html: String = {
        do {
            let template = try CompiledTemplate(TemplateText(page, location: "APIDocument.page"), escaping: .html)
            return template.render(RenderContext(viewModel()))
        } catch {
            return "<!doctype html><title>Herald API</title><p>The API document could not be rendered: see /openapi.yaml</p>"
        }
    }()

    static func viewModel() -> [String: JSONValue] {
        let info = document["info"] ?? .object([:])
        var operations: [JSONValue] = []
        for entry in Self.operations {
            let parts = entry.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2, let operation = document["paths"]?[parts[1]]?[parts[0].lowercased()] else { continue }
            let parameters = (operation["parameters"]?.arrayValue ?? []).map(resolve).map { parameter -> JSONValue in
                .object([
                    "name": parameter["name"] ?? "", "in": parameter["in"] ?? "",
                    "required": .string(parameter["required"] == .bool(true) ? "required" : ""),
                    "type": .string(schemaSummary(parameter["schema"])),
                    "description": parameter["description"] ?? "",
                ])
            }
            let body = operation["requestBody"]?["content"]?.objectValue?.first.map { type, content in
                JSONValue.object(["type": .string(type), "schema": .string(schemaSummary(content["schema"]))])
            }
            let responses = (operation["responses"]?.objectValue ?? [:]).sorted { $0.key < $1.key }.map { status, value in
                let response = resolve(value)
                let content = response["content"]?.objectValue?.map { "\($0.key): \(schemaSummary($0.value["schema"]))" }.sorted()
                return JSONValue.object([
                    "status": .string(status), "description": response["description"] ?? "",
                    "content": .string((content ?? []).joined(separator: "; ")),
                ])
            }
            let open = operation["security"]?.arrayValue?.isEmpty == true
            operations.append(.object([
                "method": .string(parts[0]), "path": .string(parts[1]), "anchor": .string(operation["operationId"]?.stringValue ?? ""),
                "summary": operation["summary"] ?? "", "description": operation["description"] ?? "",
                "auth": .string(open ? "no key needed" : "API key"),
                "parameters": .array(parameters), "hasParameters": .bool(!parameters.isEmpty),
                "body": body ?? .bool(false), "responses": .array(responses),
            ]))
        }
        let schemas = (document["components"]?["schemas"]?.objectValue ?? [:]).keys.sorted().map { name -> JSONValue in
            let schema = document["components"]?["schemas"]?[name] ?? .null
            let required = Set((schema["required"]?.arrayValue ?? []).compactMap(\.stringValue))
            let properties = (schema["properties"]?.objectValue ?? [:]).keys.sorted().map { property -> JSONValue in
                let value = schema["properties"]?[property] ?? .null
                return .object([
                    "name": .string(property), "type": .string(schemaSummary(value)),
                    "required": .string(required.contains(property) ? "required" : ""),
                    "description": value["description"] ?? "",
                ])
            }
            return .object([
                "name": .string(name), "summary": .string(schemaSummary(schema, expand: false)),
                "description": schema["description"] ?? "", "properties": .array(properties),
                "hasProperties": .bool(!properties.isEmpty),
            ])
        }
        let scheme = document["components"]?["securitySchemes"]?["apiKey"] ?? .null
        return [
            "security": .object([
                "scheme": scheme["scheme"] ?? "", "format": scheme["bearerFormat"] ?? "", "description": scheme["description"] ?? "",
            ]),
            "title": info["title"] ?? "Herald", "version": info["version"] ?? "", "description": info["description"] ?? "",
            "operations": .array(operations), "schemas": .array(schemas),
        ]
    }

    /// A `$ref` replaced by what it names (one level: the document's refs point into components).
    static func resolve(_ value: JSONValue) -> JSONValue {
        guard let reference = value["$ref"]?.stringValue, reference.hasPrefix("#/") else { return value }
        return reference.dropFirst(2).split(separator: "/").reduce(document) { $0[String($1)] ?? .null }
    }

    /// A short type description: `string (date-time)`, `array of Delivery`, `one of: a, b`.
    static func schemaSummary(_ schema: JSONValue?, expand: Bool = true) -> String {
        guard let schema else { return "" }
        if let reference = schema["$ref"]?.stringValue { return String(reference.split(separator: "/").last ?? "") }
        if let values = schema["enum"]?.arrayValue {
            return "one of: " + values.map { $0.stringValue ?? "\($0)" }.joined(separator: ", ")
        }
        let type: String
        switch schema["type"] {
        case .string(let name)?: type = name
        case .array(let names)?: type = names.compactMap(\.stringValue).joined(separator: " or ")
        default: type = "any"
        }
        if type.hasPrefix("array") { return "array of " + schemaSummary(schema["items"]) }
        if let format = schema["format"]?.stringValue { return "\(type) (\(format))" }
        return type
    }

    static func json(_ value: Any) -> JSONValue {
        switch value {
        case let dictionary as [String: Any]: .object(dictionary.mapValues(json))
        case let dictionary as [AnyHashable: Any]:
            .object(Dictionary(dictionary.map { ("\($0.key)", json($0.value)) }, uniquingKeysWith: { first, _ in first }))
        case let array as [Any]: .array(array.map(json))
        case let bool as Bool: .bool(bool)
        case let int as Int: .integer(Int64(int))
        case let double as Double: .double(double)
        case let string as String: .string(string)
        default: .null
        }
    }

    static let page = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} API {{version}}</title>
        <style>
        body{font:15px/1.5 system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;color:#222}
        code,.path{font-family:ui-monospace,monospace}.op{border-top:1px solid #ddd;padding:.5rem 0 1rem}
        .method{display:inline-block;min-width:3.5rem;font-weight:700;color:#fff;background:#446;border-radius:3px;padding:0 .4rem;text-align:center}
        table{border-collapse:collapse;margin:.3rem 0}td,th{border:1px solid #ddd;padding:.15rem .5rem;text-align:left;vertical-align:top}
        .desc{white-space:pre-wrap}nav a{display:block}
        </style></head><body>
        <h1>{{title}} API <small>version {{version}}</small></h1>
        <p class="desc">{{description}}</p>
        <p>Machine-readable: <a href="/openapi.yaml">/openapi.yaml</a> (OpenAPI 3.1).</p>
        {{#security}}<p>Authentication: <code>Authorization: {{scheme}} {{format}}</code> — {{description}}</p>{{/security}}
        <nav><h2>Operations</h2>{{#operations}}<a href="#{{anchor}}"><code>{{method}} {{path}}</code> — {{summary}}</a>{{/operations}}</nav>
        {{#operations}}<section class="op" id="{{anchor}}">
        <h3><span class="method">{{method}}</span> <span class="path">{{path}}</span></h3>
        <p><strong>{{summary}}</strong> ({{auth}})</p><p class="desc">{{description}}</p>
        {{#hasParameters}}<table><tr><th>Parameter</th><th>In</th><th>Type</th><th></th><th>Description</th></tr>
        {{#parameters}}<tr><td><code>{{name}}</code></td><td>{{in}}</td><td>{{type}}</td><td>{{required}}</td><td>{{description}}</td></tr>{{/parameters}}
        </table>{{/hasParameters}}
        {{#body}}<p>Body: <code>{{type}}</code> — {{schema}}</p>{{/body}}
        <table><tr><th>Status</th><th>Meaning</th><th>Body</th></tr>
        {{#responses}}<tr><td>{{status}}</td><td>{{description}}</td><td>{{content}}</td></tr>{{/responses}}
        </table></section>{{/operations}}
        <h2>Schemas</h2>
        {{#schemas}}<section class="op" id="schema-{{name}}"><h3>{{name}} <small>{{summary}}</small></h3><p class="desc">{{description}}</p>
        {{#hasProperties}}<table><tr><th>Field</th><th>Type</th><th></th><th>Description</th></tr>
        {{#properties}}<tr><td><code>{{name}}</code></td><td>{{type}}</td><td>{{required}}</td><td>{{description}}</td></tr>{{/properties}}
        </table>{{/hasProperties}}</section>{{/schemas}}
        </body></html>
        """
}
