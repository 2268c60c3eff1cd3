import HeraldCore
import HeraldProviderModel
import HeraldTemplating

extension ProviderParser {
    /// `kind: web_push`: VAPID identity, the payload the service worker receives, and the push headers.
    static func parseWebPush(_ item: YAMLValue) -> ProviderSpec? {
        guard let provider = item.mapping("a web_push provider", allowed: [
            "name", "kind", "subject", "private_key", "payload", "ttl", "urgency", "topic", "record_size", "pad_to",
            "token_lifetime",
        ]) else { return nil }
        let name = provider.required("name")?.string("name")
        let subject = template(provider, "subject") ?? nil
        if let value = provider["subject"], let text = value.string("subject"), !text.contains("{{") {
            let lowered = text.lowercased()
            if !lowered.hasPrefix("mailto:") && !lowered.hasPrefix("https:") {
                value.error("subject must be a mailto: or https: URI (RFC 8292 §2.1), not '\(text)'")
            }
        }
        let privateKey = template(provider, "private_key") ?? nil
        let payload: HTTPProviderSpec.Body? = provider.required("payload").flatMap { value in
            guard let body = parseBody(value) else { return nil }
            if case .form = body {
                value.error("payload takes json or text (with content_type); a service worker reads no form")
                return nil
            }
            return body
        }
        let ttl: Duration?? = provider["ttl"].map { value -> Duration?? in
            guard let duration = value.duration("ttl") else { return .none }
            guard duration <= .seconds(Int64(Int32.max)), duration.components.attoseconds == 0 else {
                value.error("ttl must be whole seconds (it is sent as the TTL header)")
                return .none
            }
            return .some(duration)
        } ?? .some(nil)
        let urgency: WebPushProviderSpec.Urgency?? = provider["urgency"].map { value -> WebPushProviderSpec.Urgency?? in
            guard let text = value.string("urgency") else { return .none }
            guard let urgency = WebPushProviderSpec.Urgency(rawValue: text) else {
                value.error("urgency must be one of: \(WebPushProviderSpec.Urgency.allCases.map(\.rawValue).joined(separator: ", "))")
                return .none
            }
            return .some(urgency)
        } ?? .some(nil)
        let topic = template(provider, "topic", escaping: .header, required: false)
        let recordSize = provider["record_size"].map { $0.int("record_size", in: 18...WebPushProviderSpec.defaultRecordSize) }
            ?? WebPushProviderSpec.defaultRecordSize
        let padTo = provider["pad_to"].map { $0.int("pad_to", in: 0...WebPushProviderSpec.maximumPlaintext) } ?? 0
        let tokenLifetime: Duration? = provider["token_lifetime"].map { value -> Duration? in
            guard let duration = value.duration("token_lifetime") else { return nil }
            guard duration >= .seconds(60), duration <= WebPushProviderSpec.maximumTokenLifetime else {
                value.error("token_lifetime must be between 1m and 24h (RFC 8292 §2: exp at most 24 hours ahead)")
                return nil
            }
            return duration
        } ?? .seconds(12 * 3600)
        if let recordSize, let padTo, padTo + 17 > recordSize {
            provider["pad_to"]?.error("pad_to \(padTo) does not fit a record of \(recordSize) bytes (the delimiter and the 16-byte tag take 17)")
            return nil
        }
        guard let name, let subject, let privateKey, let payload, let ttl, let urgency, let topic, let recordSize, let padTo,
            let tokenLifetime
        else { return nil }
        var spec = WebPushProviderSpec(
            subject: subject, privateKey: privateKey, payload: payload, urgency: urgency, topic: topic, recordSize: recordSize,
            padTo: padTo, tokenLifetime: tokenLifetime)
        if let ttl { spec.ttl = ttl }
        return ProviderSpec(name: name, transport: .webPush(spec))
    }
}
