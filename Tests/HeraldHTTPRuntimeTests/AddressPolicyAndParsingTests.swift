import Testing

@testable import HeraldHTTPRuntime

@Suite("AddressPolicy")
struct AddressPolicyTests {
    @Test(arguments: [
        "127.0.0.1", "127.255.255.254", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255",
        "192.168.1.1", "100.64.0.1", "100.127.255.255", "169.254.169.254", "0.0.0.0", "0.1.2.3",
        "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1", "192.0.2.10", "198.18.0.1",
        "::", "::1", "fe80::1", "fe80::1%eth0", "febf::1", "fc00::1", "fd12:3456::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254", "::127.0.0.1",
        "64:ff9b::10.0.0.1", "2002:7f00:0001::1", "2001:db8::1", "fec0::1",
    ])
    func restrictedAddresses(_ address: String) {
        #expect(AddressPolicy.isRestricted(address) == true, "\(address)")
    }

    @Test(arguments: [
        "1.1.1.1", "8.8.8.8", "93.184.216.34", "172.15.255.255", "172.32.0.1", "100.63.255.255",
        "100.128.0.1", "169.253.1.1", "11.0.0.1", "192.169.0.1", "223.255.255.255",
        "2606:4700:4700::1111", "2a00:1450:4001:82b::200e", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8",
        "2002:0808:0808::1",
    ])
    func publicAddresses(_ address: String) {
        #expect(AddressPolicy.isRestricted(address) == false, "\(address)")
    }

    @Test func nonLiteralsAreNotClassified() {
        #expect(AddressPolicy.isRestricted("example.com") == nil)
        #expect(AddressPolicy.isRestricted("") == nil)
        #expect(AddressPolicy.isRestricted("1.2.3") == nil)
    }
}

@Suite("HeaderParser")
struct HeaderParserTests {
    @Test func parsesFinalBlock() {
        let raw = Array(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Folded: one\r\n  two\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nEmpty:\r\nnocolon\r\n\r\n"
                .utf8
        )
        let fields = HeaderParser.parse(raw)
        #expect(
            fields == [
                HTTPHeaderField("Content-Type", "text/plain"),
                HTTPHeaderField("X-Folded", "one two"),
                HTTPHeaderField("Set-Cookie", "a=1"),
                HTTPHeaderField("Set-Cookie", "b=2"),
                HTTPHeaderField("Empty", ""),
            ]
        )
        let response = HTTPResponse(status: 200, headers: fields)
        #expect(response.header("content-type") == "text/plain")
        #expect(response.header("SET-COOKIE") == "a=1")
        #expect(response.headers(named: "set-cookie") == ["a=1", "b=2"])
        #expect(response.header("missing") == nil)
    }

    @Test func caseInsensitiveComparisonIsASCIIOnly() {
        #expect(asciiCaseInsensitiveEquals("Content-Type", "cONTENT-tYPE"))
        #expect(!asciiCaseInsensitiveEquals("a-b", "a\rb"))  // '-' | 0x20 == '\r' | 0x20 must not match
        #expect(!asciiCaseInsensitiveEquals("ab", "abc"))
        #expect(!asciiCaseInsensitiveEquals("@", "`"))
    }

    @Test func durationsBecomePositiveMilliseconds() {
        #expect(Duration.seconds(30).clampedMilliseconds == 30_000)
        #expect(Duration.milliseconds(1500).clampedMilliseconds == 1500)
        #expect(Duration.microseconds(10).clampedMilliseconds == 1)
        #expect(Duration.zero.clampedMilliseconds == 1)
        #expect(Duration.seconds(-5).clampedMilliseconds == 1)
    }
}
