import Crypto
import Foundation
import HeraldCore
import HeraldHTTPRuntime
import HeraldProviderModel
import HeraldTemplating

/// A `web_push` provider's templates, compiled once.
extension ProviderClient {
    /// The push request it would send (secrets resolved, payload encrypted), for tests and previews;
    /// web_push providers only. `salt` and `serverKey` are fresh per message unless given.
    public func buildWebPushRequest(
        for job: DeliveryJob, recipientField: String, now: Date, salt: [UInt8]? = nil,
        serverKey: P256.KeyAgreement.PrivateKey = P256.KeyAgreement.PrivateKey()
    ) throws(ProviderFailure) -> HTTPRequest {
        guard case .webPush(let push) = spec.transport else {
            throw ProviderFailure.permanent("provider \(name) is not a web_push provider")
        }
        return try buildWebPushRequest(push, job: job, recipientField: recipientField, now: now, salt: salt, serverKey: serverKey)
    }

    func buildWebPushRequest(
        _ push: WebPushProviderSpec, job: DeliveryJob, recipientField: String, now: Date, salt: [UInt8]? = nil,
        serverKey: P256.KeyAgreement.PrivateKey = P256.KeyAgreement.PrivateKey()
    ) throws(ProviderFailure) -> HTTPRequest {
        let subscription: WebPushSubscription
        switch WebPushSubscription.parse(job.to[recipientField] ?? .null, allowHTTP: !restrictToPublicAddresses) {
        case .success(let parsed): subscription = parsed
        case .failure(let invalid):
            let text = invalid.problems.map { "to.\(recipientField)\($0.member.isEmpty ? "" : ".\($0.member)") \($0.message)" }
            throw .permanent(text.joined(separator: "; "))
        }
        guard let audience = VAPID.audience(ofEndpoint: subscription.endpoint) else {
            throw .permanent("to.\(recipientField).endpoint has no origin for the VAPID audience")
        }
        let values = try context(for: job, now: now)
        let context = RenderContext(values)
        let subject = push.subject.render(context).trimmingCharacters(in: .whitespacesAndNewlines)
        let lowered = subject.lowercased()
        guard lowered.hasPrefix("mailto:") || lowered.hasPrefix("https:") else {
            throw .permanent("web_push: subject must be a mailto: or https: URI (RFC 8292 §2.1)")
        }
        var headers = [
            HTTPHeaderField("TTL", String(push.ttl.components.seconds)),
            HTTPHeaderField("Content-Encoding", "aes128gcm"),
            HTTPHeaderField("Content-Type", "application/octet-stream"),
        ]
        if let urgency = push.urgency { headers.append(HTTPHeaderField("Urgency", urgency.rawValue)) }
        if let topic = push.topic?.render(context).trimmingCharacters(in: .whitespaces), !topic.isEmpty {
            // RFC 8030 §5.4: at most 32 characters from the URL- and filename-safe base64 alphabet.
            guard topic.count <= 32, topic.unicodeScalars.allSatisfy({ $0.isASCII && (Self.base64URLScalar($0)) }) else {
                throw .permanent("web_push: topic must be at most 32 characters of A-Z a-z 0-9 - _, not '\(topic.prefix(40))'")
            }
            headers.append(HTTPHeaderField("Topic", topic))
        }
        let plaintext = Self.render(push.payload, context: context, values: values).bytes
        let body: [UInt8]
        do {
            let keyText = push.privateKey.render(context)
            let key = try VAPIDKey(keyText)
            body = try WebPushEncryption.encrypt(
                plaintext, userAgentPublicKey: subscription.p256dh, authSecret: subscription.auth, recordSize: push.recordSize,
                padTo: push.padTo, salt: salt, serverKey: serverKey)
            headers.append(HTTPHeaderField(
                "Authorization",
                try vapidTokens.authorization(
                    audience: audience, subject: subject, key: key, keyText: keyText, lifetime: push.tokenLifetime, now: now)))
        } catch {
            throw .permanent(error.description)
        }
        return HTTPRequest(
            method: "POST", url: subscription.endpoint, headers: headers, body: body, timeout: timeout,
            connectTimeout: min(timeout, .seconds(10)), restrictToPublicAddresses: restrictToPublicAddresses)
    }

    static func base64URLScalar(_ scalar: Unicode.Scalar) -> Bool {
        ("A"..."Z").contains(scalar) || ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "-" || scalar == "_"
    }

    func attemptWebPush(_ push: WebPushProviderSpec, job: DeliveryJob, recipientField: String, now: Date) async -> ProviderResult {
        let request: HTTPRequest
        do {
            request = try buildWebPushRequest(push, job: job, recipientField: recipientField, now: now)
        } catch {
            return error.result
        }
        do {
            return Self.classifyPushService(try await runtime.execute(request), now: Date())
        } catch {
            return ResponseClassifier.classify(error)
        }
    }

    /// A push service's answer (RFC 8030 §5, §8.3): 201 with the message's `Location` is success;
    /// 404 and 410 mean the subscription is gone for good (the application should delete it); 413 a
    /// payload too large; 429 and 5xx may pass (honouring `Retry-After`); any other 4xx (a bad request,
    /// a VAPID token refused) is permanent.
    public static func classifyPushService(_ response: HTTPResponse, now: Date) -> ProviderResult {
        var result = ResponseClassifier.classify(response, rules: HTTPProviderSpec.ResponseRules(), now: now)
        switch response.status {
        case 200...299:
            result.providerMessageID = response.header("Location").flatMap { $0.isEmpty ? nil : $0 }
        case 404, 410:
            result.outcome = .permanentFailure
            result.error = "the push subscription is gone (\(result.error ?? "HTTP \(response.status)")): it expired or the user "
                + "unsubscribed; delete it"
        case 413:
            result.outcome = .permanentFailure
            result.error = "the push service refused the payload as too large (\(result.error ?? "HTTP 413"))"
        default:
            break
        }
        return result
    }
}
