import Foundation
import HeraldCore
import HeraldTemplating

/// A provider's templates, compiled once with the escaping of the place each value lands.
enum CompiledTransport: Sendable {
    case http(CompiledHTTP)
    case smtp(CompiledSMTP)
    case webPush(CompiledWebPush)
}

struct CompiledHeader: Sendable {
    var name: String
    var value: CompiledTemplate
}

struct CompiledHTTP: Sendable {
    var method: String
    var url: CompiledTemplate
    /// The URL is exactly one value (`{{to.webhook_url}}`): taken whole, not percent-encoded.
    var urlIsSingleValue: Bool
    var headers: [CompiledHeader]
    var body: CompiledBody?
    var auth: CompiledAuth?
    var response: HTTPProviderSpec.ResponseRules
    var caFile: String?
}

enum CompiledBody: Sendable {
    case json(CompiledBodyValue)
    case form([CompiledHeader])
    case text(CompiledTemplate, contentType: String)
}

indirect enum CompiledBodyValue: Sendable {
    case template(CompiledTemplate)
    case contextValue(path: String)
    case literal(JSONValue)
    case array([CompiledBodyValue])
    case object([(key: String, value: CompiledBodyValue)])
}

enum CompiledAuth: Sendable {
    case basic(username: CompiledTemplate, password: CompiledTemplate)
    case bearer(token: CompiledTemplate)
    case hmac(HTTPProviderSpec.HMACAuth, secret: CompiledTemplate, signed: CompiledTemplate?)
    case standardWebhooks(secret: CompiledTemplate)
    case googleServiceAccount(credentials: CompiledTemplate, scope: String)
    case apnsJWT(keyID: CompiledTemplate, teamID: CompiledTemplate, privateKey: CompiledTemplate)
}

struct CompiledSMTP: Sendable {
    var url: CompiledTemplate
    var startTLS: SMTPProviderSpec.StartTLS
    var username: CompiledTemplate?
    var password: CompiledTemplate?
    var from: CompiledTemplate
    var caFile: String?
}

extension CompiledTransport {
    init(_ transport: ProviderSpec.Transport) throws(TemplateError) {
        switch transport {
        case .http(let spec):
            let single = Self.isSingleValue(spec.url.source)
            self = .http(
                CompiledHTTP(
                    method: spec.method,
                    url: try CompiledTemplate(spec.url, escaping: single ? .text : .url),
                    urlIsSingleValue: single,
                    headers: try spec.headers.map { header throws(TemplateError) in
                        CompiledHeader(name: header.name, value: try CompiledTemplate(header.value, escaping: .header))
                    },
                    body: try spec.body.map { body throws(TemplateError) in try Self.compile(body) },
                    auth: try spec.auth.map { auth throws(TemplateError) in try Self.compile(auth) },
                    response: spec.response,
                    caFile: spec.caFile))
        case .smtp(let spec):
            self = .smtp(
                CompiledSMTP(
                    url: try CompiledTemplate(spec.url, escaping: .text),
                    startTLS: spec.startTLS,
                    username: try spec.username.map { text throws(TemplateError) in try CompiledTemplate(text, escaping: .text) },
                    password: try spec.password.map { text throws(TemplateError) in try CompiledTemplate(text, escaping: .text) },
                    from: try CompiledTemplate(spec.from, escaping: .text),
                    caFile: spec.caFile))
        case .webPush(let spec):
            self = .webPush(try CompiledWebPush(spec))
        }
    }

    /// The same rule as the configuration parser: the whole URL is one `{{value}}`.
    static func isSingleValue(_ source: String) -> Bool {
        let trimmed = source.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasPrefix("{{"), trimmed.hasSuffix("}}") else { return false }
        let inner = trimmed.dropFirst(2).dropLast(2)
        return !inner.contains("{") && !inner.contains("}") && !inner.isEmpty
    }

    /// The escaping `body.text` gets from its content type.
    static func escaping(forContentType contentType: String) -> Escaping {
        let lowered = contentType.lowercased().trimmingCharacters(in: .whitespaces)
        if lowered.hasPrefix("application/json") || (lowered.hasPrefix("application/") && lowered.contains("+json")) {
            return .jsonString
        }
        return lowered.hasPrefix("text/html") ? .html : .text
    }

    static func compile(_ body: HTTPProviderSpec.Body) throws(TemplateError) -> CompiledBody {
        switch body {
        case .json(let value): return .json(try compile(value))
        case .form(let fields):
            return .form(
                try fields.map { field throws(TemplateError) in
                    CompiledHeader(name: field.name, value: try CompiledTemplate(field.value, escaping: .text))
                })
        case .text(let text, let contentType):
            return .text(try CompiledTemplate(text, escaping: escaping(forContentType: contentType)), contentType: contentType)
        }
    }

    static func compile(_ value: HTTPProviderSpec.BodyValue) throws(TemplateError) -> CompiledBodyValue {
        switch value {
        case .template(let text): return .template(try CompiledTemplate(text, escaping: .text))
        case .contextValue(let path): return .contextValue(path: path)
        case .literal(let json): return .literal(json)
        case .array(let elements): return .array(try elements.map { element throws(TemplateError) in try compile(element) })
        case .object(let members):
            return .object(try members.map { member throws(TemplateError) in (member.key, try compile(member.value)) })
        }
    }

    static func compile(_ auth: HTTPProviderSpec.Auth) throws(TemplateError) -> CompiledAuth {
        func text(_ template: TemplateText) throws(TemplateError) -> CompiledTemplate {
            try CompiledTemplate(template, escaping: .text)
        }
        switch auth {
        case .basic(let username, let password): return .basic(username: try text(username), password: try text(password))
        case .bearer(let token): return .bearer(token: try text(token))
        case .hmac(let hmac):
            return .hmac(hmac, secret: try text(hmac.secret), signed: try hmac.signed.map { signed throws(TemplateError) in try text(signed) })
        case .standardWebhooks(let secret): return .standardWebhooks(secret: try text(secret))
        case .googleServiceAccount(let credentials, let scope):
            return .googleServiceAccount(credentials: try text(credentials), scope: scope)
        case .apnsJWT(let keyID, let teamID, let privateKey):
            return .apnsJWT(keyID: try text(keyID), teamID: try text(teamID), privateKey: try text(privateKey))
        }
    }

    /// `secrets.NAME` references inside `{{…}}` tags.
    static func secretNamesInTags(_ source: String) -> Set<String> {
        var names = Set<String>()
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else { break }
            var tag = rest[open.upperBound..<close.lowerBound]
            while let found = tag.range(of: "secrets.") {
                let before = tag[..<found.lowerBound].last
                let name = tag[found.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" }
                if !name.isEmpty, before.map({ !($0.isLetter || $0.isNumber || $0 == "_" || $0 == ".") }) ?? true {
                    names.insert(String(name))
                }
                tag = tag[found.upperBound...]
            }
            rest = rest[close.upperBound...]
        }
        return names
    }

    /// Every secret a template (or a `{$value: secrets.X}`) of this provider refers to.
    var secretNames: Set<String> {
        var names = Set<String>()
        func add(_ template: CompiledTemplate?) {
            // `secretNames` also counts literal text such as `https://secrets.example.com`: keep the names a tag uses.
            if let template { names.formUnion(template.secretNames.intersection(Self.secretNamesInTags(template.source.source))) }
        }
        func add(_ value: CompiledBodyValue) {
            switch value {
            case .template(let template): add(template)
            case .contextValue(let path):
                let parts = path.split(separator: ".", omittingEmptySubsequences: false)
                if parts.count >= 2, parts[0] == "secrets" { names.insert(String(parts[1])) }
            case .literal: break
            case .array(let elements): elements.forEach(add)
            case .object(let members): members.forEach { add($0.value) }
            }
        }
        func add(_ body: CompiledBody?) {
            switch body {
            case .json(let value)?: add(value)
            case .form(let fields)?: fields.forEach { add($0.value) }
            case .text(let template, _)?: add(template)
            case nil: break
            }
        }
        switch self {
        case .http(let http):
            add(http.url)
            http.headers.forEach { add($0.value) }
            add(http.body)
            switch http.auth {
            case .basic(let username, let password)?: add(username); add(password)
            case .bearer(let token)?: add(token)
            case .hmac(_, let secret, let signed)?: add(secret); add(signed)
            case .standardWebhooks(let secret)?: add(secret)
            case .googleServiceAccount(let credentials, _)?: add(credentials)
            case .apnsJWT(let keyID, let teamID, let privateKey)?: add(keyID); add(teamID); add(privateKey)
            case nil: break
            }
        case .smtp(let smtp):
            add(smtp.url); add(smtp.username); add(smtp.password); add(smtp.from)
        case .webPush(let push):
            add(push.subject); add(push.privateKey); add(push.topic); add(push.payload)
        }
        return names
    }
}
