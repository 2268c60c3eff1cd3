import Foundation
import HeraldCore
import Testing

/// Herald's own spellings of ids and its trimming, against Foundation's, which they replace on the hot path.
@Suite struct TextFormTests {
    @Test func idsAreSpelledAsFoundationSpellsThem() {
        var generator = SplitMix64(seed: 7)
        var ids = [UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
                   UUID(uuid: (255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255)), UUID.timeOrdered()]
        for _ in 0..<1_000 {
            let bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
            ids.append(UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8],
                                   bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15])))
        }
        for id in ids {
            #expect(id.lowercasedString == id.uuidString.lowercased())
            #expect(id.hexadecimal(dashes: false) == id.uuidString.lowercased().replacingOccurrences(of: "-", with: ""))
        }
    }

    @Test(arguments: [
        "", " ", "x", "https://hooks.example.com/a", " https://a.example ", "\thttps://a.example\n", "\r\n", "whsec_abc=",
        "\u{A0}x", "x\u{A0}", "\u{2028}x\u{2029}", "\u{3000}全角\u{3000}", "é", " é ", "\u{85}x", "x\u{7F}", "\u{7F}", "a b",
        "\u{1F44B}", "e\u{301}", "\u{200B}x\u{200B}",
    ])
    func trimmingIsFoundationsTrimming(text: String) {
        #expect(text.trimmedOfWhitespaceAndNewlines == text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
