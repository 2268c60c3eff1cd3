import Foundation

/// How a channel retries. Named policies come from configuration; the defaults here are what a
/// channel gets when it names none.
public struct RetryPolicy: Sendable, Hashable {
    public var name: String
    /// Attempts in all, the first included.
    public var maxAttempts: Int
    public var initialDelay: Duration
    public var multiplier: Double
    public var maxDelay: Duration
    /// Whether an attempt that may have reached the provider (timeout after sending) is retried.
    /// Off for SMS and chat: a resend costs money and shows the recipient a duplicate.
    public var retryAmbiguous: Bool
    /// Up to this fraction of each delay is taken off at random, so retries of a burst spread out.
    public var jitter: Double

    public init(
        name: String, maxAttempts: Int, initialDelay: Duration, multiplier: Double, maxDelay: Duration,
        retryAmbiguous: Bool, jitter: Double = 0
    ) {
        self.jitter = jitter
        self.name = name
        self.maxAttempts = maxAttempts
        self.initialDelay = initialDelay
        self.multiplier = multiplier
        self.maxDelay = maxDelay
        self.retryAmbiguous = retryAmbiguous
    }

    /// 5 attempts, waiting 1 s, 4 s, 16 s, 64 s between them; ambiguous outcomes retried.
    public static let standard = RetryPolicy(
        name: "standard", maxAttempts: 5, initialDelay: .seconds(1), multiplier: 4, maxDelay: .seconds(600),
        retryAmbiguous: true)

    /// The wait after attempt `attempt` (1-based) failed.
    public func delay(afterAttempt attempt: Int) -> Duration {
        let factor = pow(multiplier, Double(max(0, attempt - 1)))
        let milliseconds = min(Double(initialDelay.milliseconds) * factor, Double(maxDelay.milliseconds))
        return .milliseconds(Int64(milliseconds.rounded()))
    }

    /// What to do after an attempt with `outcome`.
    public func decide(outcome: AttemptOutcome, attempt: Int) -> RetryDecision {
        switch outcome {
        case .success:
            return .finish(.sent)
        case .permanentFailure:
            return .finish(.failed)
        case .ambiguous where !retryAmbiguous:
            return .finish(.failed)
        case .transientFailure, .ambiguous, .throttled:
            return attempt < maxAttempts ? .retry(after: delay(afterAttempt: attempt)) : .finish(.failed)
        }
    }
}

public enum RetryDecision: Sendable, Hashable {
    case finish(DeliveryStatus)
    case retry(after: Duration)

    public var resultingStatus: DeliveryStatus {
        switch self {
        case .finish(let status): status
        case .retry: .retrying
        }
    }
}

extension Duration {
    /// As fractional seconds (for `Date` arithmetic and SQL intervals).
    public var timeInterval: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// Whole milliseconds, rounded down.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// A recipient field a channel needs in `to`, with the check its values must pass.
public struct RecipientField: Sendable, Hashable {
    public var name: String
    public var format: Format

    public enum Format: String, Sendable, Hashable {
        case any, email, phone, url
        /// A Web Push subscription object (`{endpoint, keys: {p256dh, auth}}`), not a string.
        case webPushSubscription = "web_push_subscription"
    }

    public init(name: String, format: Format) {
        self.name = name
        self.format = format
    }

    /// Why `value` is not acceptable, or nil when it is.
    public func problem(with value: String) -> String? {
        if value.isEmpty { return "must not be empty" }
        switch format {
        case .any:
            return nil
        case .webPushSubscription:
            return "must be a push subscription object {endpoint, keys: {p256dh, auth}}, not a string"
        case .email:
            let parts = value.split(separator: "@", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !value.contains(where: \.isWhitespace)
            else { return "must be an e-mail address such as user@example.com" }
            return nil
        case .phone:
            let digits = value.dropFirst()
            guard value.first == "+", (7...15).contains(digits.count), digits.allSatisfy(\.isASCII),
                digits.allSatisfy(\.isNumber), digits.first != "0"
            else { return "must be an E.164 phone number such as +15551234567" }
            return nil
        case .url:
            let lowered = value.lowercased()
            guard lowered.hasPrefix("https://") || lowered.hasPrefix("http://"),
                !value.contains(where: { $0.isWhitespace || $0.isNewline }),
                value.count <= 2048
            else { return "must be an absolute http(s) URL" }
            guard let components = URLComponents(string: value), let host = components.host, !host.isEmpty else {
                return "must be an absolute http(s) URL with a host"
            }
            if components.user != nil || components.password != nil {
                return "must not carry a user name or password (user:password@); use the channel's authentication"
            }
            return nil
        }
    }
}

/// One channel as the gateway and its worker see it. Its providers, compiled, are in the
/// configuration snapshot (`ConfigSnapshot.providers(for:)`).
public struct ChannelDefinition: Sendable, Hashable {
    public var name: String
    /// Which part of a template this channel renders.
    public var category: ChannelCategory
    public var recipient: RecipientField
    /// Attempts a worker replica runs at once.
    public var concurrency: Int
    /// Attempts a worker replica starts per period, at most.
    public var rateLimit: RateLimit?
    /// Total time one attempt may take.
    public var timeout: Duration
    public var retry: RetryPolicy
    /// Attempts a worker replica runs at once towards one destination host (`host:port` of a URL
    /// recipient), so that one slow or hanging host can't take every slot; nil: no bound. Default
    /// for URL recipients: a quarter of `concurrency` (at least 1); for other channels none, since
    /// their providers' hosts are fixed and `concurrency` already bounds them.
    public var maxInFlightPerHost: Int?
    /// The circuit breaker each of the channel's providers gets on each replica; nil: `breaker: off`.
    public var breaker: BreakerSettings?
    /// Whether every provider of the channel sends `message.attachments` (SMTP providers do; the
    /// HTTP e-mail APIs as shipped don't), so a request naming only channels that would drop them
    /// is refused at accept. Default: e-mail channels.
    public var carriesAttachments: Bool

    public init(
        name: String, category: ChannelCategory = .webhook, recipient: RecipientField, concurrency: Int,
        rateLimit: RateLimit? = nil, timeout: Duration, retry: RetryPolicy,
        maxInFlightPerHost: Int?? = .none, breaker: BreakerSettings? = .standard, carriesAttachments: Bool? = nil
    ) {
        self.carriesAttachments = carriesAttachments ?? (category == .email)
        self.breaker = breaker
        self.maxInFlightPerHost = maxInFlightPerHost ?? Self.defaultMaxInFlightPerHost(recipient: recipient, concurrency: concurrency)
        self.name = name
        self.category = category
        self.recipient = recipient
        self.concurrency = concurrency
        self.rateLimit = rateLimit
        self.timeout = timeout
        self.retry = retry
    }

    public static func defaultMaxInFlightPerHost(recipient: RecipientField, concurrency: Int) -> Int? {
        recipient.format == .url ? max(1, concurrency / 4) : nil
    }

    /// The generic webhook channel: POSTs the notification as JSON to `to.webhook_url`.
    public static func webhook(retry: RetryPolicy = .standard, concurrency: Int = 64) -> ChannelDefinition {
        ChannelDefinition(
            name: "webhook", category: .webhook, recipient: RecipientField(name: "webhook_url", format: .url),
            concurrency: concurrency, timeout: .seconds(15), retry: retry)
    }
}

/// The channels in force: an immutable snapshot, swapped whole when configuration reloads.
public struct ChannelRegistry: Sendable, Hashable {
    public private(set) var channels: [String: ChannelDefinition]

    public init(_ channels: [ChannelDefinition]) {
        self.channels = Dictionary(channels.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
    }

    public subscript(name: String) -> ChannelDefinition? { channels[name] }

    public var names: [String] { channels.keys.sorted() }
}

/// What a channel renders from a template: which part of a template it uses.
public enum ChannelCategory: String, Sendable, Hashable, CaseIterable {
    case email, sms, push, chat, webhook
}

/// A request rate, e.g. `30/s`, with the burst allowed after a quiet spell (`rate_burst`; default 1:
/// attempts evenly spaced).
public struct RateLimit: Sendable, Hashable, CustomStringConvertible {
    public var count: Int
    public var per: Duration
    public var burst: Int
    public init(count: Int, per: Duration, burst: Int = 1) {
        self.count = count
        self.per = per
        self.burst = max(1, burst)
    }
    /// Attempts a second.
    public var perSecond: Double { Double(count) / per.timeInterval }
    public var description: String { "\(count)/\(per)" + (burst > 1 ? " (burst \(burst))" : "") }
}

/// A channel's `breaker:` (applied to each of its providers). Defaults: 50 % failures over 30 s in
/// 10 buckets, with at least 10 outcomes; open for 30 s; 1 probe.
public struct BreakerSettings: Sendable, Hashable {
    /// Share of failures (0–1) that opens the circuit.
    public var failureRate: Double
    /// The sliding window the rate is measured over.
    public var window: Duration
    /// Time buckets the window is made of (old ones expire whole).
    public var buckets: Int
    /// Outcomes the window must hold before the rate counts.
    public var minRequests: Int
    /// How long the circuit stays open before probing (doubled per failed probe, up to 8×).
    public var openFor: Duration
    /// Probes that must succeed, in half-open, to close the circuit.
    public var probes: Int

    public init(
        failureRate: Double = 0.5, window: Duration = .seconds(30), buckets: Int = 10, minRequests: Int = 10,
        openFor: Duration = .seconds(30), probes: Int = 1
    ) {
        self.failureRate = failureRate
        self.window = window
        self.buckets = max(1, buckets)
        self.minRequests = max(1, minRequests)
        self.openFor = openFor
        self.probes = max(1, probes)
    }

    public static let standard = BreakerSettings()
}
