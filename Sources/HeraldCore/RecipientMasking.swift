import Foundation

extension RecipientField {
    /// `value` as a log line may show it: enough to tell recipients apart while investigating
    /// (the domain of an address, the host of a URL), never enough to contact them. A URL keeps its
    /// scheme and host only: webhook URLs (Slack's, Discord's, Teams') carry their secret in the
    /// path or query.
    ///
    /// - email `jane.doe@example.com` → `j***@example.com`
    /// - phone `+15551234567` → `+1*********67`
    /// - url `https://hooks.example.com/T0/B0/secret` → `https://hooks.example.com/…`; a Web Push
    ///   subscription's endpoint (a capability URL too) the same way
    /// - anything else (device tokens, chat ids) → at most its first 4 characters, then `…`
    public func masked(_ value: String) -> String {
        switch format {
        case .email:
            guard let at = value.lastIndex(of: "@"), at != value.startIndex else { return Self.prefixMasked(value) }
            return "\(value[value.startIndex])***\(value[at...])"
        case .phone:
            guard value.count > 6 else { return String(repeating: "*", count: value.count) }
            return "\(value.prefix(2))\(String(repeating: "*", count: value.count - 4))\(value.suffix(2))"
        case .url, .webPushSubscription:
            guard let scheme = value.range(of: "://") else { return Self.prefixMasked(value) }
            let rest = value[scheme.upperBound...]
            let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
            // Whatever stands before an '@' is a user name or password: never shown.
            let host = authority.split(separator: "@", omittingEmptySubsequences: false).last ?? ""
            return "\(value[..<scheme.upperBound])\(host)/…"
        case .any:
            return Self.prefixMasked(value)
        }
    }

    /// The first quarter of `value`, at most 4 characters, then `…`.
    static func prefixMasked(_ value: String) -> String {
        "\(value.prefix(min(4, value.count / 4)))…"
    }
}
