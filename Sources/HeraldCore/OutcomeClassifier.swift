/// How a transport failure relates to the provider having seen the request.
public enum TransportFailure: Sendable, Hashable {
    /// Never reached the provider (DNS, connection refused, TLS handshake): safe to resend.
    case notSent
    /// May have reached it (timeout or reset after sending).
    case mayHaveBeenSent
    /// Refused by Herald itself: blocked address (SSRF guard) or a request that cannot be built.
    case refused
}

/// Turns what a provider answered into an `AttemptOutcome`.
public struct OutcomeClassifier: Sendable, Hashable {
    public var successStatuses: ClosedRange<Int>
    /// Statuses worth retrying; every other non-success status is permanent.
    public var transientStatuses: Set<Int>

    public init(successStatuses: ClosedRange<Int> = 200...299, transientStatuses: Set<Int> = Self.defaultTransient) {
        self.successStatuses = successStatuses
        self.transientStatuses = transientStatuses
    }

    public static let defaultTransient: Set<Int> = Set([408, 425, 429]).union(500...599)

    public func classify(status: Int) -> AttemptOutcome {
        if successStatuses.contains(status) { return .success }
        return transientStatuses.contains(status) ? .transientFailure : .permanentFailure
    }

    public func classify(failure: TransportFailure) -> AttemptOutcome {
        switch failure {
        case .notSent: .transientFailure
        case .mayHaveBeenSent: .ambiguous
        case .refused: .permanentFailure
        }
    }
}
