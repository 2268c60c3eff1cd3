/// One HTTP header line. Names compare case-sensitively here; use
/// ``HTTPResponse/header(_:)`` for case-insensitive lookup.
public struct HTTPHeaderField: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// A request executed by ``CurlRuntime/execute(_:)``. Redirects are never followed.
public struct HTTPRequest: Sendable {
    /// "GET", "POST", … (an RFC 9110 token).
    public var method: String
    /// An absolute `http://` or `https://` URL.
    public var url: String
    public var headers: [HTTPHeaderField]
    public var body: [UInt8]
    /// Limit for the whole transfer (connect, send, wait, receive).
    public var timeout: Duration
    /// Limit for establishing the connection (TCP + TLS).
    public var connectTimeout: Duration
    /// SSRF guard: refuse to connect to (or reuse a connection to) loopback,
    /// private, link-local, unique-local, multicast and other non-public addresses.
    /// The check applies to the address actually connected to, so DNS
    /// rebinding cannot bypass it.
    public var restrictToPublicAddresses: Bool
    /// PEM file of the certificate authorities trusted for `https://` (instead of
    /// ``CurlRuntime/Configuration/defaultCAFile`` and the system's bundle).
    public var caFile: String?
    /// This request's cap on the response body (a media download); nil: the runtime's
    /// ``CurlRuntime/Configuration/maxResponseBodyBytes``.
    public var maxResponseBodyBytes: Int?

    public init(
        method: String = "GET",
        url: String,
        headers: [HTTPHeaderField] = [],
        body: [UInt8] = [],
        timeout: Duration = .seconds(30),
        connectTimeout: Duration = .seconds(10),
        restrictToPublicAddresses: Bool = true,
        caFile: String? = nil,
        maxResponseBodyBytes: Int? = nil
    ) {
        self.maxResponseBodyBytes = maxResponseBodyBytes
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.restrictToPublicAddresses = restrictToPublicAddresses
        self.caFile = caFile
    }
}

/// A response of any status (a 5xx is a response, not an error).
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header fields of the final response, in the order received.
    public var headers: [HTTPHeaderField]
    /// At most ``CurlRuntime/Configuration/maxResponseBodyBytes`` bytes.
    public var body: [UInt8]
    public var totalTime: Duration
    /// `true` when the body exceeded the configured cap: `body` holds its first
    /// bytes and the rest was not read (the connection was closed).
    public var bodyTruncated: Bool

    public init(
        status: Int,
        headers: [HTTPHeaderField] = [],
        body: [UInt8] = [],
        totalTime: Duration = .zero,
        bodyTruncated: Bool = false
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.totalTime = totalTime
        self.bodyTruncated = bodyTruncated
    }

    /// Value of the first header named `name`, compared case-insensitively (ASCII).
    public func header(_ name: String) -> String? {
        self.headers.first { asciiCaseInsensitiveEquals($0.name, name) }?.value
    }

    /// Values of all headers named `name`, compared case-insensitively (ASCII).
    public func headers(named name: String) -> [String] {
        self.headers.filter { asciiCaseInsensitiveEquals($0.name, name) }.map(\.value)
    }
}

func asciiCaseInsensitiveEquals(_ lhs: String, _ rhs: String) -> Bool {
    let a = lhs.utf8
    let b = rhs.utf8
    guard a.count == b.count else { return false }
    return zip(a, b).allSatisfy { x, y in
        x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= UInt8(ascii: "a") && (x | 0x20) <= UInt8(ascii: "z"))
    }
}
