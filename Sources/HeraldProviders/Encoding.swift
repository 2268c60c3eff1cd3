import Foundation
import HeraldCore
import HeraldTemplating

/// Byte and text encodings the providers need.
public enum ProviderEncoding {
    public static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 { Hex.encode(bytes) }

    /// RFC 4648 §5 base64url without padding (JWT).
    public static func base64URL<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        Base64URL.encode(bytes)
    }

    public static func base64URLDecode(_ text: String) -> Data? { Base64URL.decode(text) }

    /// `application/x-www-form-urlencoded`: RFC 3986 unreserved characters kept, space as `+`,
    /// every other byte of the UTF-8 form percent-encoded (`&`, `=`, `+`, `%` included).
    public static func formEncode(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        let hexDigits = Array("0123456789ABCDEF")
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: " "):
                out += "+"
            default:
                out.append("%")
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            }
        }
        return out
    }

    public static func formBody(_ fields: [(name: String, value: String)]) -> String {
        fields.map { formEncode($0.name) + "=" + formEncode($0.value) }.joined(separator: "&")
    }
}
