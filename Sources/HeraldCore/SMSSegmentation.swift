/// How an SMS text is coded on the air interface (3GPP TS 23.038).
public enum SMSEncoding: String, Sendable, Hashable, CaseIterable {
    /// The GSM 7-bit default alphabet and its extension table: 160 septets in one message, 153 in
    /// each part of a concatenated one (the user data header takes 7).
    case gsm7
    /// UCS-2 (sent as UTF-16): 70 code units in one message, 67 in each part.
    case ucs2

    /// Units (septets or UTF-16 code units) that fit in a message of one part.
    public var singleLimit: Int { self == .gsm7 ? 160 : 70 }
    /// Units that fit in each part of a concatenated message.
    public var partLimit: Int { self == .gsm7 ? 153 : 67 }
}

/// An SMS text split as the network carries it: the coding its characters need, how many units
/// it takes, and the parts of a concatenated message. The one place Herald counts SMS: the gateway
/// refuses a text no provider of the channel can send whole, and providers render the coding and
/// part count from it (`{{sms.coding}}`, `{{sms.parts}}`).
///
/// GSM-7 is chosen when every character is in the default alphabet or its extension table (the
/// extension characters `^ { } \ [ ~ ] | €` and form feed take two septets: escape and code); an
/// escape pair is never split across parts. Anything else is UCS-2, counted in UTF-16 code units
/// (an emoji takes two), and a surrogate pair is never split either, so every part is valid text
/// on its own. Kannel splits UCS-2 blindly at 67 units: for a text whose pair would straddle a part
/// boundary it may need one part fewer than counted here, never more.
public struct SMSSegmentation: Sendable, Hashable {
    public struct Part: Sendable, Hashable {
        public var text: String
        /// Septets (GSM-7) or UTF-16 code units (UCS-2).
        public var units: Int
    }

    public var encoding: SMSEncoding
    /// Septets (GSM-7) or UTF-16 code units (UCS-2) of the whole text.
    public var units: Int
    /// One part for a text that fits in a single message (an empty text is one empty part).
    public var parts: [Part]

    public var partCount: Int { parts.count }

    public init(_ text: String) {
        let gsm = text.unicodeScalars.allSatisfy { GSM7.septets($0) != nil }
        encoding = gsm ? .gsm7 : .ucs2
        // Each character and its width, in order.
        let pieces: [(text: Unicode.Scalar, units: Int)] = text.unicodeScalars.map { scalar in
            (scalar, gsm ? GSM7.septets(scalar)! : scalar.utf16.count)
        }
        units = pieces.reduce(0) { $0 + $1.units }
        guard units > encoding.singleLimit else {
            parts = [Part(text: text, units: units)]
            return
        }
        var split: [Part] = []
        var current = ""
        var currentUnits = 0
        for piece in pieces {
            if currentUnits + piece.units > encoding.partLimit {
                split.append(Part(text: current, units: currentUnits))
                current = ""
                currentUnits = 0
            }
            current.unicodeScalars.append(piece.text)
            currentUnits += piece.units
        }
        split.append(Part(text: current, units: currentUnits))
        parts = split
    }
}

/// The GSM 03.38 default alphabet and its extension table, as Unicode scalars.
public enum GSM7 {
    /// The 128 characters of the default alphabet, in code order (0x1B, the escape to the
    /// extension table, is not a character and stands as NUL here).
    static let basic: [Unicode.Scalar] = Array(
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{0}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
            .unicodeScalars)
    /// Reached through the escape: each takes two septets.
    static let extensionCharacters: Set<Unicode.Scalar> = ["\u{0C}", "^", "{", "}", "\\", "[", "~", "]", "|", "€"]
    static let basicSet: Set<Unicode.Scalar> = Set(basic.filter { $0 != "\u{0}" })

    /// Septets the character takes: 1 in the default alphabet, 2 in the extension table, nil when GSM-7 can't carry it.
    public static func septets(_ scalar: Unicode.Scalar) -> Int? {
        if basicSet.contains(scalar) { return 1 }
        if extensionCharacters.contains(scalar) { return 2 }
        return nil
    }
}

/// What an SMS provider says about the messages it sends (`sms:` of a provider).
public struct SMSProviderSettings: Sendable, Hashable {
    /// Parts of a concatenated message it sends at most. Kannel cuts a longer text to its sendsms-user's
    /// `max-messages` and still answers "Accepted": a text over this is refused instead of sent cut.
    public var maxParts: Int
    /// What `{{sms.coding}}` renders for each encoding (Kannel `coding`: 0 and 2; Vonage `type`: text and unicode).
    public var coding: [SMSEncoding: String]

    public init(maxParts: Int, coding: [SMSEncoding: String]) {
        self.maxParts = maxParts
        self.coding = coding
    }

    /// Why `text` can't be sent whole through this provider, or nil when it can.
    public func problem(with segmentation: SMSSegmentation) -> String? {
        guard segmentation.partCount > maxParts else { return nil }
        let unit = segmentation.encoding == .gsm7 ? "septets" : "UTF-16 units"
        return "the text needs \(segmentation.partCount) SMS parts (\(segmentation.encoding.rawValue), \(segmentation.units) \(unit)); "
            + "this provider sends at most \(maxParts)"
    }
}
