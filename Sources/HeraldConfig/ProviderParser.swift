import Foundation
import HeraldCore
import HeraldProviderModel
import HeraldTemplating
import Yams

/// Reads one `providers:` entry into its compiled form: every template compiled here, once, with the
/// escaping of where its value lands, so errors surface at load time with their file:line:column.
enum ProviderParser {
    static func parse(_ item: YAMLValue) -> ProviderSpec? {
        guard case .mapping = item.node else {
            item.error("a provider must be a mapping, not \(item.kindName)")
            return nil
        }
        // The kind decides which keys are allowed: read it first.
        let kindText = item.mapping("a provider", allowed: [])?["kind"]
        switch kindText?.string("kind") {
        case "http"?: return parseHTTP(item)
        case "smtp"?: return parseSMTP(item)
        case "web_push"?: return parseWebPush(item)
        case let other?:
            kindText?.error("provider kind must be 'http', 'smtp' or 'web_push', not '\(other)'")
            return nil
        case nil:
            item.error("missing required key 'kind' in a provider (http, smtp or web_push)")
            return nil
        }
    }

    static let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]

    static func parseHTTP(_ item: YAMLValue) -> ProviderSpec? {
        guard let provider = item.mapping("an http provider", allowed: [
            "name", "kind", "method", "url", "headers", "auth", "body", "response", "ca_file", "sms", "receipts", "upload",
        ]) else { return nil }
        let name = provider.required("name")?.string("name")
        var method: String? = "POST"
        if let value = provider["method"], let text = value.string("method") {
            method = text.uppercased()
            if !methods.contains(text.uppercased()) {
                value.error("method must be one of \(methods.joined(separator: ", "))")
                method = nil
            }
        }
        let url = provider.required("url").flatMap { value -> CompiledTemplate? in
            guard let text = value.template("url"), let compiled = compileReporting(text, escaping: .url(for: text), value: value)
            else { return nil }
            let lowered = text.source.lowercased()
            if !text.isSingleValue && !lowered.hasPrefix("https://") && !lowered.hasPrefix("http://") {
                value.error("url must start with https:// or http://, or be exactly one value such as '{{to.webhook_url}}'")
                return nil
            }
            return compiled
        }
        var headers: [HTTPProviderSpec.Field] = []
        if let map = provider["headers"]?.mapping("headers", allowed: []) {
            for (headerName, keyNode, value) in map.entries {
                if headerName.isEmpty || headerName.contains(where: { !$0.isASCII || $0 == ":" || $0.isWhitespace }) {
                    map.node.child(keyNode).error("'\(headerName)' is not a valid header name")
                    continue
                }
                if let text = value.template("header \(headerName)"), let compiled = compileReporting(text, escaping: .header, value: value) {
                    headers.append(.init(name: headerName, value: compiled))
                }
            }
        }
        // nil: invalid (error recorded); .some(nil): not given.
        let auth: HTTPProviderSpec.Auth?? = provider["auth"].map { parseAuth($0).map(Optional.some) } ?? .some(nil)
        let body: HTTPProviderSpec.Body?? = provider["body"].map { parseBody($0).map(Optional.some) } ?? .some(nil)
        let response = provider["response"].map(parseResponse) ?? HTTPProviderSpec.ResponseRules()
        let sms: SMSProviderSettings?? = provider["sms"].map { parseSMS($0).map(Optional.some) } ?? .some(nil)
        let receipts: ReceiptSpec?? = provider["receipts"].map { parseReceipts($0).map(Optional.some) } ?? .some(nil)
        let caFile = parseCAFile(provider)
        let upload: HTTPProviderSpec.MediaUpload?? = provider["upload"].map { parseUpload($0).map(Optional.some) } ?? .some(nil)
        guard let name, let method, let url, let auth, let body, let response, let caFile, let sms, let receipts, let upload
        else { return nil }
        return ProviderSpec(
            name: name,
            transport: .http(
                HTTPProviderSpec(
                    method: method, url: url, headers: headers, body: body, auth: auth, response: response, caFile: caFile,
                    upload: upload)),
            sms: sms, receipts: receipts)
    }

    /// The most an `upload:` may fetch: a provider's own limits are lower (Synapse's default is 50 MiB).
    static let maxUploadBytes = 50 << 20

    /// `upload: {when: message.image_url, fetch: "{{message.image_url}}", max_bytes: 10485760, method: POST,
    /// url: "…/upload?filename={{upload.filename}}", result: content_uri, response: {…}}`.
    static func parseUpload(_ value: YAMLValue) -> HTTPProviderSpec.MediaUpload? {
        guard let upload = value.mapping("upload", allowed: ["when", "fetch", "max_bytes", "method", "url", "result", "response"])
        else { return nil }
        let when = upload.required("when")?.string("when")
        let fetch = upload.required("fetch").flatMap { node -> CompiledTemplate? in
            guard let text = node.template("fetch") else { return nil }
            return compileReporting(text, escaping: .url(for: text), value: node)
        }
        let url = upload.required("url").flatMap { node -> CompiledTemplate? in
            guard let text = node.template("upload url") else { return nil }
            let lowered = text.source.lowercased()
            guard lowered.hasPrefix("https://") || lowered.hasPrefix("http://") || lowered.hasPrefix("{{settings.") else {
                node.error("upload url must start with https://, http:// or a {{settings.…}} URL")
                return nil
            }
            return compileReporting(text, escaping: .url(for: text), value: node)
        }
        let maxBytes: Int? = upload["max_bytes"].map { $0.int("max_bytes", in: 1...maxUploadBytes) } ?? 10 << 20
        var method: String? = "POST"
        if let node = upload["method"], let text = node.string("method") {
            method = ["POST", "PUT"].contains(text.uppercased()) ? text.uppercased() : nil
            if method == nil { node.error("upload method must be POST or PUT") }
        }
        let result = upload.required("result")?.string("result")
        let response = upload["response"].map(parseResponse) ?? HTTPProviderSpec.ResponseRules()
        guard let when, let fetch, let url, let maxBytes, let method, let result, let response else { return nil }
        return .init(when: when, fetch: fetch, maxBytes: maxBytes, method: method, url: url, resultPath: result, response: response)
    }

    /// `sms: {max_parts: 10, coding: {gsm7: "0", ucs2: "2"}}`.
    static func parseSMS(_ value: YAMLValue) -> SMSProviderSettings? {
        guard let sms = value.mapping("sms", allowed: ["max_parts", "coding"]) else { return nil }
        let maxParts = sms.required("max_parts")?.int("max_parts", in: 1...255)
        var coding: [SMSEncoding: String] = [:]
        var valid = true
        if let map = sms["coding"]?.mapping("sms.coding", allowed: SMSEncoding.allCases.map(\.rawValue)) {
            for (key, _, text) in map.entries {
                if let encoding = SMSEncoding(rawValue: key), let string = text.string("sms.coding.\(key)") {
                    coding[encoding] = string
                } else {
                    valid = false
                }
            }
        } else if sms["coding"] != nil {
            valid = false
        }
        guard let maxParts, valid else { return nil }
        return SMSProviderSettings(maxParts: maxParts, coding: coding)
    }

    static let receiptVerifications = ["delivery_token", "twilio_signature", "standard_webhooks"]

    /// `receipts:` — how the provider's status callbacks are verified and read.
    static func parseReceipts(_ value: YAMLValue) -> ReceiptSpec? {
        guard let receipts = value.mapping("receipts", allowed: [
            "verify", "secret", "url_parameters", "status", "message_id", "delivery_id", "detail", "statuses",
        ]) else { return nil }
        var valid = true
        var verification: ReceiptSpec.Verification?
        if let verifyValue = receipts.required("verify"), let kind = verifyValue.string("verify") {
            switch kind {
            case "delivery_token":
                if let secret = receipts["secret"] {
                    secret.error("delivery_token needs no secret: the token Herald puts in the callback URL is the proof")
                    valid = false
                }
                verification = .deliveryToken
            case "twilio_signature", "standard_webhooks":
                if let secret = template(receipts, "secret") ?? nil {
                    verification = kind == "twilio_signature" ? .twilioSignature(authToken: secret) : .standardWebhooks(secret: secret)
                }
            default:
                verifyValue.error("verify must be one of: \(receiptVerifications.joined(separator: ", "))")
            }
        }
        var parameters: [ReceiptSpec.Parameter] = []
        if let map = receipts["url_parameters"]?.mapping("url_parameters", allowed: []) {
            for (name, keyNode, text) in map.entries {
                guard let string = text.string("url_parameters.\(name)") else {
                    valid = false
                    continue
                }
                if ["d", "t"].contains(name) {
                    map.node.child(keyNode).error("'\(name)' is Herald's own callback parameter (delivery id and token)")
                    valid = false
                }
                parameters.append(.init(name: name, value: string))
            }
        } else if receipts["url_parameters"] != nil {
            valid = false
        }
        let status = receipts.required("status")?.string("status")
        let messageID = receipts["message_id"]?.string("message_id")
        let deliveryID = receipts["delivery_id"]?.string("delivery_id")
        let detail = receipts["detail"]?.string("detail")
        var statuses: [String: ReceiptOutcome] = [:]
        if let map = receipts.required("statuses")?.mapping("statuses", allowed: ReceiptOutcome.allCases.map(\.rawValue)) {
            for (key, _, list) in map.entries {
                guard let outcome = ReceiptOutcome(rawValue: key) else { continue }
                let items: [YAMLValue] = if case .sequence = list.node { list.list("statuses.\(key)") ?? [] } else { [list] }
                for item in items {
                    guard let raw = item.string("statuses.\(key)") else {
                        valid = false
                        continue
                    }
                    if let earlier = statuses[raw] {
                        item.error("provider status '\(raw)' is already mapped to \(earlier.rawValue)")
                        valid = false
                    }
                    statuses[raw] = outcome
                }
            }
        }
        if statuses.isEmpty, let map = receipts["statuses"] {
            map.error("statuses must map at least one provider status to delivered, undelivered or failed")
            valid = false
        }
        guard valid, let verification, let status, !statuses.isEmpty else { return nil }
        return ReceiptSpec(
            verification: verification, urlParameters: parameters, statusField: status, messageIDField: messageID,
            deliveryIDField: deliveryID, detailField: detail, statuses: statuses)
    }

    /// The template at `key`, compiled. nil: invalid or missing when required (error recorded); .some(nil): not given.
    static func template(_ mapping: YAMLMapping, _ key: String, escaping: Escaping = .text, required: Bool = true) -> CompiledTemplate?? {
        guard let value = required ? mapping.required(key) : mapping[key] else { return required ? .none : .some(nil) }
        guard let text = value.template(key), let compiled = compileReporting(text, escaping: escaping, value: value) else { return .none }
        return .some(compiled)
    }

    /// One entry per auth kind: the keys it takes and how it is read.
    static let authKinds: [String: (keys: [String], parse: @Sendable (YAMLMapping) -> HTTPProviderSpec.Auth?)] = [
        "basic": (["username", "password"], { auth in
            guard let username = template(auth, "username") ?? nil, let password = template(auth, "password") ?? nil else { return nil }
            return .basic(username: username, password: password)
        }),
        "bearer": (["token"], { auth in
            (template(auth, "token") ?? nil).map { .bearer(token: $0) }
        }),
        "standard_webhooks": (["secret"], { auth in
            (template(auth, "secret") ?? nil).map { .standardWebhooks(secret: $0) }
        }),
        "google_service_account": (["credentials", "scope"], { auth in
            guard let credentials = template(auth, "credentials") ?? nil else { return nil }
            let scope = auth["scope"]?.string("scope") ?? "https://www.googleapis.com/auth/firebase.messaging"
            return .googleServiceAccount(credentials: credentials, scope: scope)
        }),
        "apns_jwt": (["key_id", "team_id", "private_key"], { auth in
            guard let keyID = template(auth, "key_id") ?? nil, let teamID = template(auth, "team_id") ?? nil,
                let privateKey = template(auth, "private_key") ?? nil
            else { return nil }
            return .apnsJWT(keyID: keyID, teamID: teamID, privateKey: privateKey)
        }),
        "hmac": (["header", "secret", "algorithm", "encoding", "prefix", "signed"], { auth in
            let header = auth.required("header")?.string("header")
            let secret = template(auth, "secret") ?? nil
            var algorithm: HTTPProviderSpec.HMACAuth.Algorithm? = .sha256
            if let value = auth["algorithm"], let text = value.string("algorithm") {
                algorithm = .init(rawValue: text)
                if algorithm == nil { value.error("algorithm must be sha1, sha256 or sha512") }
            }
            var encoding: HTTPProviderSpec.HMACAuth.Encoding? = .hex
            if let value = auth["encoding"], let text = value.string("encoding") {
                encoding = .init(rawValue: text)
                if encoding == nil { value.error("encoding must be hex or base64") }
            }
            let prefix = auth["prefix"]?.string("prefix") ?? ""
            let signed = template(auth, "signed", required: false)
            guard let header, let secret, let algorithm, let encoding, let signed else { return nil }
            return .hmac(.init(header: header, secret: secret, algorithm: algorithm, encoding: encoding, prefix: prefix, signed: signed))
        }),
    ]

    static func parseAuth(_ value: YAMLValue) -> HTTPProviderSpec.Auth? {
        let typeValue = value.mapping("auth", allowed: [])?["type"]
        let known = authKinds.keys.sorted().joined(separator: ", ")
        guard let type = typeValue?.string("type") else {
            if typeValue == nil, case .mapping = value.node {
                value.error("missing required key 'type' in auth; one of: \(known)")
            }
            return nil
        }
        guard let kind = authKinds[type] else {
            typeValue?.error("unknown auth type '\(type)'; one of: \(known)")
            return nil
        }
        return value.mapping("auth (\(type))", allowed: ["type"] + kind.keys).flatMap(kind.parse)
    }

    static func parseBody(_ value: YAMLValue) -> HTTPProviderSpec.Body? {
        guard let body = value.mapping("body", allowed: ["json", "form", "text", "content_type"]) else { return nil }
        let forms = ["json", "form", "text"].filter { body[$0] != nil }
        guard forms.count == 1, let form = forms.first, let content = body[form] else {
            value.error("body must have exactly one of: json, form, text")
            return nil
        }
        if form != "text", let contentType = body["content_type"] {
            contentType.error("content_type goes with body.text only; json and form set their own")
            return nil
        }
        switch form {
        case "json":
            return bodyValue(content).map { .json($0) }
        case "form":
            guard let fields = content.mapping("body.form", allowed: []) else { return nil }
            var parsed: [HTTPProviderSpec.Field] = []
            var valid = true
            for (name, _, fieldValue) in fields.entries {
                guard let text = fieldValue.template("form field \(name)"),
                    let compiled = compileReporting(text, escaping: .text, value: fieldValue)
                else {
                    valid = false
                    continue
                }
                parsed.append(.init(name: name, value: compiled))
            }
            return valid ? .form(parsed) : nil
        default:
            guard let contentType = body.required("content_type")?.string("content_type"),
                let text = content.template("body.text")
            else { return nil }
            guard let compiled = compileReporting(text, escaping: Escaping(contentType: contentType), value: content) else { return nil }
            return .text(compiled, contentType: contentType)
        }
    }

    /// A JSON body node: strings are templates, `{$value: path}` copies a context value, the rest is literal.
    static func bodyValue(_ value: YAMLValue) -> HTTPProviderSpec.BodyValue? {
        switch value.node {
        case .scalar:
            if value.node.tag.rawValue == Tag.Name.str.rawValue {
                guard let text = value.template("a body value") else { return nil }
                guard text.source.contains("{{") else { return .literal(.string(text.source)) }
                return compileReporting(text, escaping: .text, value: value).map { .template($0) }
            }
            return .literal(value.json())
        case .sequence(let sequence):
            let items = sequence.map { bodyValue(value.child($0)) }
            return items.contains { $0 == nil } ? nil : .array(items.compactMap { $0 })
        case .mapping:
            guard let mapping = value.mapping("a body object", allowed: []) else { return nil }
            if mapping.keys == ["$value"] {
                return mapping["$value"]?.string("$value").map { .contextValue(path: $0) }
            }
            if mapping.keys.contains("$if") {
                return conditional(value, mapping)
            }
            var members: [HTTPProviderSpec.BodyMember] = []
            var valid = true
            for (key, _, child) in mapping.entries {
                if let parsed = bodyValue(child) { members.append(.init(key: key, value: parsed)) } else { valid = false }
            }
            return valid ? .object(members) : nil
        case .alias:
            value.error("aliases are not supported in bodies")
            return nil
        }
    }

    /// `{$if: path, then: …, else: …}`, at least one branch.
    static func conditional(_ value: YAMLValue, _ mapping: YAMLMapping) -> HTTPProviderSpec.BodyValue? {
        guard let checked = value.mapping("a $if object", allowed: ["$if", "then", "else"]) else { return nil }
        guard let path = checked["$if"]?.string("$if") else { return nil }
        guard checked["then"] != nil || checked["else"] != nil else {
            value.error("$if needs then, else or both")
            return nil
        }
        var valid = true
        func branch(_ key: String) -> HTTPProviderSpec.BodyValue? {
            guard let node = checked[key] else { return nil }
            let parsed = bodyValue(node)
            if parsed == nil { valid = false }
            return parsed
        }
        let then = branch("then"), otherwise = branch("else")
        return valid ? .conditional(path: path, then: then, else: otherwise) : nil
    }

    static func parseResponse(_ value: YAMLValue) -> HTTPProviderSpec.ResponseRules? {
        guard let response = value.mapping("response", allowed: [
            "success", "transient", "throttled", "retry_after", "success_when", "message_id",
        ]) else {
            return nil
        }
        var rules = HTTPProviderSpec.ResponseRules()
        var valid = true
        if let success = response["success"] {
            if let set = statusSet(success, "success") { rules.success = set } else { valid = false }
        }
        if let transient = response["transient"] {
            if let set = statusSet(transient, "transient") { rules.transient = set } else { valid = false }
        }
        if let when = response["success_when"]?.mapping("success_when", allowed: ["path", "equals"]) {
            if let path = when.required("path")?.string("path"), let equals = when.required("equals") {
                rules.successWhen = (path, equals.json())
            } else {
                valid = false
            }
        }
        if let throttled = response["throttled"] {
            if let set = statusSet(throttled, "throttled") { rules.throttled = set } else { valid = false }
        }
        if let field = response["retry_after"]?.mapping("retry_after", allowed: ["path", "unit"]) {
            let path = field.required("path")?.string("path")
            let unit = field.required("unit")?.string("unit")
            if let unit, !["ms", "s"].contains(unit) { field["unit"]?.error("unit must be ms or s") }
            if let path, let unit, ["ms", "s"].contains(unit) {
                rules.retryAfterField = .init(path: path, milliseconds: unit == "ms")
            } else {
                valid = false
            }
        } else if response["retry_after"] != nil {
            valid = false
        }
        if let messageID = response["message_id"] { rules.messageIDPath = messageID.string("message_id") }
        return valid ? rules : nil
    }

    /// `[200-299, 304]` or a single `200-299`.
    static func statusSet(_ value: YAMLValue, _ what: String) -> StatusSet? {
        let items: [YAMLValue] = if case .sequence = value.node { value.list(what) ?? [] } else { [value] }
        var ranges: [ClosedRange<Int>] = []
        for item in items {
            guard let text = item.string(what) else { return nil }
            let bounds = text.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard (1...2).contains(bounds.count), let low = bounds.first ?? nil, let high = bounds.last ?? nil,
                (100...599).contains(low), (100...599).contains(high), low <= high
            else {
                item.error("\(what) takes HTTP statuses (100-599) and ranges such as 500-599, not '\(text)'")
                return nil
            }
            ranges.append(low...high)
        }
        return StatusSet(ranges)
    }

    static func parseSMTP(_ item: YAMLValue) -> ProviderSpec? {
        guard let provider = item.mapping("an smtp provider", allowed: [
            "name", "kind", "url", "starttls", "username", "password", "from", "ca_file",
        ]) else { return nil }
        let name = provider.required("name")?.string("name")
        let url = provider.required("url").flatMap { value -> CompiledTemplate? in
            guard let text = value.template("url"), let compiled = compileReporting(text, escaping: .text, value: value) else { return nil }
            let lowered = text.source.lowercased()
            guard lowered.hasPrefix("smtp://") || lowered.hasPrefix("smtps://") else {
                value.error("an smtp url must start with smtp:// or smtps://")
                return nil
            }
            return compiled
        }
        var startTLS: SMTPProviderSpec.StartTLS? = .required
        if let value = provider["starttls"], let text = value.string("starttls") {
            startTLS = .init(rawValue: text)
            if startTLS == nil { value.error("starttls must be required, opportunistic or none") }
        }
        let username = template(provider, "username", required: false)
        let password = template(provider, "password", required: false)
        let from = template(provider, "from") ?? nil
        let caFile = parseCAFile(provider)
        guard let name, let url, let startTLS, let username, let password, let from, let caFile else { return nil }
        return ProviderSpec(
            name: name,
            transport: .smtp(
                SMTPProviderSpec(url: url, startTLS: startTLS, username: username, password: password, from: from, caFile: caFile)))
    }

    /// `ca_file`: an absolute path to a readable PEM file with at least one certificate, checked at
    /// load so that a wrong path is a configuration error, not a failed attempt. Empty: not set.
    /// nil: invalid (error recorded); .some(nil): not set.
    static func parseCAFile(_ provider: YAMLMapping) -> String?? {
        guard let value = provider["ca_file"] else { return .some(nil) }
        guard let path = value.string("ca_file")?.trimmingCharacters(in: .whitespaces) else { return .none }
        if path.isEmpty { return .some(nil) }
        guard path.hasPrefix("/") else {
            value.error("ca_file must be an absolute path, not '\(path)'")
            return .none
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            value.error("ca_file '\(path)' cannot be read")
            return .none
        }
        guard String(decoding: data, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
            value.error("ca_file '\(path)' has no PEM certificate (-----BEGIN CERTIFICATE-----)")
            return .none
        }
        return .some(path)
    }
}
