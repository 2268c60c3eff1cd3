import Crypto
import Foundation
import HeraldCore
import HeraldProviderModel

/// The callback URLs Herald gives providers for delivery receipts, and the per-delivery tokens in them.
///
/// `{{receipts.url}}` is `<public URL>/v1/receipts/<channel>/<provider>?d=<delivery id>&t=<token>`
/// followed by the provider's `url_parameters` (Kannel fills in `%d`). The token is an HMAC-SHA256
/// (keyed with `HERALD_RECEIPT_SECRET`) of the channel, provider and delivery id, cut to 128 bits: a
/// receipt for a delivery can only come from someone Herald gave that delivery's URL to, so
/// receipts can't be forged by guessing ids, and one delivery's URL says nothing about another's.
/// Gateway and workers must share the secret (the workers mint, the gateway checks).
public struct ReceiptLinks: Sendable {
    /// The gateway's address as providers reach it, without a trailing slash (`https://herald.example.com`).
    public let publicURL: String
    private let key: SymmetricKey

    /// Shortest secret accepted, in bytes.
    public static let minimumSecretLength = 16

    public init(publicURL: String, secret: String) throws(ReceiptLinkError) {
        var base = publicURL.trimmingCharacters(in: .whitespaces)
        while base.hasSuffix("/") { base.removeLast() }
        let lowered = base.lowercased()
        guard lowered.hasPrefix("https://") || lowered.hasPrefix("http://"), URLComponents(string: base)?.host?.isEmpty == false,
            URLComponents(string: base)?.query == nil
        else {
            throw ReceiptLinkError(description: "HERALD_PUBLIC_URL must be the gateway's absolute http(s) URL without a query, not '\(publicURL)'")
        }
        guard secret.utf8.count >= Self.minimumSecretLength else {
            throw ReceiptLinkError(description: "HERALD_RECEIPT_SECRET must be at least \(Self.minimumSecretLength) bytes")
        }
        self.publicURL = base
        key = SymmetricKey(data: Array(secret.utf8))
    }

    public static func path(channel: String, provider: String) -> String {
        "/v1/receipts/\(channel)/\(provider)"
    }

    /// The callback URL for one delivery. The provider's parameters are appended as written: they are
    /// configuration, and placeholders such as Kannel's `%d` must reach the provider unencoded.
    public func url(channel: String, provider: String, deliveryID: UUID, parameters: [ReceiptSpec.Parameter] = []) -> String {
        var url = publicURL + Self.path(channel: channel, provider: provider)
        url += "?d=" + deliveryID.lowercasedString + "&t=" + token(channel: channel, provider: provider, deliveryID: deliveryID)
        for parameter in parameters {
            url += "&" + ProviderEncoding.formEncode(parameter.name) + "=" + parameter.value
        }
        return url
    }

    public func token(channel: String, provider: String, deliveryID: UUID) -> String {
        ProviderEncoding.base64URL(mac(channel: channel, provider: provider, deliveryID: deliveryID))
    }

    /// Whether `token` is the one `url` put in this delivery's callback (compared in constant time).
    public func verify(token: String, channel: String, provider: String, deliveryID: UUID) -> Bool {
        guard let given = ProviderEncoding.base64URLDecode(token) else { return false }
        let expected = mac(channel: channel, provider: provider, deliveryID: deliveryID)
        return ConstantTime.equal(Array(given), expected)
    }

    private func mac(channel: String, provider: String, deliveryID: UUID) -> [UInt8] {
        let message = Array("herald-receipt\n\(channel)\n\(provider)\n\(deliveryID.lowercasedString)".utf8)
        return Array(Array(HMAC<SHA256>.authenticationCode(for: message, using: key)).prefix(16))
    }
}

public struct ReceiptLinkError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Comparison whose time does not depend on where the bytes differ (signatures, tokens).
public enum ConstantTime {
    public static func equal(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }
}
