import Foundation
import HeraldCore
import HeraldHTTPRuntime
import HeraldProviders

/// The built-in webhook channel's wire format: a Standard Webhooks POST of
/// `{"type": "notification.send", "timestamp": …, "data": {…}}` to `to.webhook_url`.
public struct WebhookSender: Sendable {
    public var signer: WebhookSigner?
    public var timeout: Duration
    /// Off only for local development and tests, where the receiver is on 127.0.0.1.
    public var restrictToPublicAddresses: Bool

    public init(signer: WebhookSigner?, timeout: Duration, restrictToPublicAddresses: Bool) {
        self.signer = signer
        self.timeout = timeout
        self.restrictToPublicAddresses = restrictToPublicAddresses
    }

    struct Payload: Encodable {
        struct Data: Encodable {
            var notificationId: String
            var deliveryId: String
            var attempt: Int
            var subject: String?
            var text: String?
            var html: String?
            var metadata: JSONValue

            enum CodingKeys: String, CodingKey {
                case notificationId = "notification_id", deliveryId = "delivery_id", attempt, subject, text, html, metadata
            }
        }
        var type = "notification.send"
        var timestamp: String
        var data: Data
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    public func request(for job: DeliveryJob, recipientField: String, now: Date = Date()) throws -> HTTPRequest {
        guard let url = job.to[recipientField]?.stringValue else {
            throw WorkerError(code: .invalidJob, message: "the job has no to.\(recipientField)")
        }
        let payload = Payload(
            timestamp: Timestamp.string(now),
            data: .init(
                notificationId: job.notificationID.lowercasedString, deliveryId: job.deliveryID.lowercasedString,
                attempt: job.attempt, subject: job.message.subject, text: job.message.text, html: job.message.html,
                metadata: job.metadata))
        let body = Array(try Self.encoder.encode(payload))
        // The id stays the same across retries so receivers can de-duplicate; the timestamp is this attempt's.
        let messageID = StandardWebhooks.messageID(deliveryID: job.deliveryID)
        let timestamp = Int(now.timeIntervalSince1970)
        var headers = [
            HTTPHeaderField("Content-Type", "application/json"),
            HTTPHeaderField("webhook-id", messageID),
            HTTPHeaderField("webhook-timestamp", String(timestamp)),
        ]
        if let signer {
            headers.append(HTTPHeaderField("webhook-signature", signer.signature(id: messageID, timestamp: timestamp, body: body)))
        }
        if let trace = job.traceparent.flatMap(TraceContext.init(traceparent:)) {
            headers.append(HTTPHeaderField("traceparent", trace.child().traceparent))
        }
        return HTTPRequest(
            method: "POST", url: url, headers: headers, body: body, timeout: timeout,
            restrictToPublicAddresses: restrictToPublicAddresses)
    }
}

public struct WorkerError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable { case invalidJob, unknownChannel, configuration }
    public var code: Code
    public var message: String
    public var description: String { "\(code.rawValue): \(message)" }
}
