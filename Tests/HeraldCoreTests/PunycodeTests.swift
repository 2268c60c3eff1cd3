import HeraldCore
import Testing

@Suite("Punycode and IDNA")
struct PunycodeTests {
    /// RFC 3492 §7.1 sample strings (H, the long Korean one, and F, Hindi, left out); (I) is
    /// written there with mixed-case annotation, compared here in lower case.
    static let vectors: [(String, String, String)] = [
        ("A Arabic", "\u{0644}\u{064A}\u{0647}\u{0645}\u{0627}\u{0628}\u{062A}\u{0643}\u{0644}\u{0645}\u{0648}\u{0634}\u{0639}\u{0631}\u{0628}\u{064A}\u{061F}", "egbpdaj6bu4bxfgehfvwxn"),
        ("B Chinese (simplified)", "他们为什么不说中文", "ihqwcrb4cv8a8dqg056pqjye"),
        ("C Chinese (traditional)", "他們爲什麽不說中文", "ihqwctvzc91f659drss3x8bo0yb"),
        ("D Czech", "Pročprostěnemluvíčesky", "Proprostnemluvesky-uyb24dma41a"),
        ("E Hebrew", "למההםפשוטלאמדבריםעברית", "4dbcagdahymbxekheh6e0a7fei0b"),
        ("G Japanese", "なぜみんな日本語を話してくれないのか", "n8jok5ay5dzabd5bym9f0cm5685rrjetr6pdxa"),
        ("I Russian", "почемужеонинеговорятпорусски", "b1abfaaepdrnnbgefbadotcwatmq2g4l"),
        ("J Spanish", "PorquénopuedensimplementehablarenEspañol", "PorqunopuedensimplementehablarenEspaol-fmd56a"),
        ("K Vietnamese", "TạisaohọkhôngthểchỉnóitiếngViệt", "TisaohkhngthchnitingVit-kjcr8268qyxafd2f1b9g"),
        ("L", "3年B組金八先生", "3B-ww4c5e180e575a65lsy2b"),
        ("M", "安室奈美恵-with-SUPER-MONKEYS", "-with-SUPER-MONKEYS-pc58ag80a8qai00g7n9n"),
        ("N", "Hello-Another-Way-それぞれの場所", "Hello-Another-Way--fc4qua05auwb3674vfr0b"),
        ("O", "ひとつ屋根の下2", "2-u9tlzr9756bt3uc0v"),
        ("P", "MajiでKoiする5秒前", "MajiKoi5-783gue6qz075azm5e"),
        ("Q", "パフィーdeルンバ", "de-jg4avhby1noc0d"),
        ("R", "そのスピードで", "d9juau41awczczp"),
        ("S", "-> $1.00 <-", "-> $1.00 <--"),
    ]

    @Test("RFC 3492 sample strings encode and decode", arguments: vectors)
    func rfcVectors(name: String, unicode: String, punycode: String) {
        #expect(Punycode.encode(unicode) == punycode, "\(name)")
        #expect(Punycode.decode(punycode) == unicode, "\(name)")
        #expect(Punycode.decode(punycode.uppercased())?.lowercased() == unicode.lowercased(), "\(name): digits are case-insensitive")
    }

    @Test("invalid Punycode is refused")
    func invalidPunycode() {
        #expect(Punycode.decode("ü-abc") == nil)  // not ASCII
        #expect(Punycode.decode("abc-9") == nil)  // a variable-length integer cut short
        #expect(Punycode.decode("99999999999999999999") == nil)  // overflow
    }

    @Test("domains become A-labels")
    func domains() throws {
        #expect(try IDNA.toASCII("bücher.test") == "xn--bcher-kva.test")
        #expect(try IDNA.toASCII("München.DE") == "xn--mnchen-3ya.DE")  // ASCII labels unchanged, U-labels lower-cased
        #expect(try IDNA.toASCII("例え。テスト") == "xn--r8jz45g.xn--zckzah")  // ideographic full stop
        #expect(try IDNA.toASCII("example.com") == "example.com")
        // NFC: u + COMBINING DIAERESIS is the same label as ü.
        #expect(try IDNA.toASCII("bu\u{0308}cher.test") == "xn--bcher-kva.test")
        #expect(try IDNA.addressToASCIIDomain("jörg@bücher.test") == "jörg@xn--bcher-kva.test")
    }

    @Test("labels a host name can't have are refused", arguments: ["bü cher.test", "bü@cher.test", "-bü.test", "bü..test", "\u{0308}b.test", "bü☃.test"])
    func refused(domain: String) {
        #expect(throws: IDNA.Failure.self) { try IDNA.toASCII(domain) }
    }

    @Test("labels longer than 63 characters as ASCII are refused")
    func tooLong() {
        #expect(throws: IDNA.Failure.self) { try IDNA.toASCII(String(repeating: "ü", count: 60) + ".test") }
    }
}
