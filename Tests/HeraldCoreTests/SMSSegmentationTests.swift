import HeraldCore
import Testing

/// The one SMS count: coding by content, septets or UTF-16 units, concatenated parts.
struct SMSSegmentationTests {
    @Test func theDefaultAlphabetIsGSM0338InCodeOrder() {
        #expect(GSM7.septets("@") == 1)
        #expect(GSM7.septets("¤") == 1)  // 0x24: the GSM set has no '$' there ($ is 0x02)
        #expect(GSM7.septets("$") == 1)
        #expect(GSM7.septets("¡") == 1)
        #expect(GSM7.septets("§") == 1)
        #expect(GSM7.septets("¿") == 1)
        #expect(GSM7.septets("à") == 1)
        #expect(GSM7.septets("\u{1B}") == nil, "the escape is not a character")
        for character in ["^", "{", "}", "\\", "[", "~", "]", "|", "€", "\u{0C}"] as [Unicode.Scalar] {
            #expect(GSM7.septets(character) == 2, "\(character) is in the extension table")
        }
        for character in ["á", "`", "ç", "Ж", "ş", "\t", "\u{00A0}"] as [Unicode.Scalar] {
            #expect(GSM7.septets(character) == nil, "\(character) is not GSM-7")
        }
    }

    @Test func gsmTextUpTo160SeptetsIsOnePart() {
        let text = String(repeating: "a", count: 160)
        let segmentation = SMSSegmentation(text)
        #expect(segmentation.encoding == .gsm7)
        #expect(segmentation.units == 160)
        #expect(segmentation.partCount == 1)
        #expect(SMSSegmentation(text + "b").partCount == 2)
        #expect(SMSSegmentation("").partCount == 1)
    }

    @Test func extensionCharactersCountTwoSeptetsAndAreNeverSplit() {
        // 159 + € = 161 septets: two parts, the second with the last 6 a and €.
        let over = SMSSegmentation(String(repeating: "a", count: 159) + "€")
        #expect(over.encoding == .gsm7)
        #expect(over.units == 161)
        #expect(over.parts.map(\.units) == [153, 8])
        // € (two septets) would straddle the 153-septet boundary: it starts the second part.
        let straddle = SMSSegmentation(String(repeating: "a", count: 152) + "€bcdefgh")
        #expect(straddle.parts.map(\.text) == [String(repeating: "a", count: 152), "€bcdefgh"])
        #expect(straddle.parts.map(\.units) == [152, 9])
    }

    @Test func theIssues216CharacterTextIsTwoGSMParts() {
        // The text Kannel cut to 70 characters when every SMS went as UCS-2.
        let text = String(String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 5).prefix(216))
        let segmentation = SMSSegmentation(text)
        #expect(segmentation.encoding == .gsm7)
        #expect(segmentation.parts.map(\.units) == [153, 63])
        #expect(segmentation.parts.map(\.text).joined() == text)
    }

    @Test func anyCharacterOutsideGSMMakesItUCS2CountedInUTF16Units() {
        let cyrillic = SMSSegmentation("Привет")
        #expect(cyrillic.encoding == .ucs2)
        #expect(cyrillic.units == 6)
        let emoji = SMSSegmentation("hi 👋")
        #expect(emoji.encoding == .ucs2)
        #expect(emoji.units == 5, "the emoji is a surrogate pair: two units")
        #expect(SMSSegmentation(String(repeating: "Ж", count: 70)).partCount == 1)
        let long = SMSSegmentation(String(repeating: "Ж", count: 71))
        #expect(long.parts.map(\.units) == [67, 4])
    }

    @Test func aSurrogatePairIsNeverSplit() {
        let text = String(repeating: "Ж", count: 66) + "👋" + String(repeating: "Ж", count: 5)
        let segmentation = SMSSegmentation(text)
        #expect(segmentation.units == 73)
        #expect(segmentation.parts.map(\.units) == [66, 7])
        #expect(segmentation.parts[1].text.hasPrefix("👋"))
        #expect(segmentation.parts.map(\.text).joined() == text)
    }

    @Test func providerLimitsSayWhyATextCantBeSentWhole() {
        let settings = SMSProviderSettings(maxParts: 10, coding: [.gsm7: "0", .ucs2: "2"])
        #expect(settings.problem(with: SMSSegmentation(String(repeating: "x", count: 1530))) == nil)
        let problem = settings.problem(with: SMSSegmentation(String(repeating: "x", count: 1531)))
        #expect(problem == "the text needs 11 SMS parts (gsm7, 1531 septets); this provider sends at most 10")
    }
}

/// What a delivery receipt may do to a delivery's status.
struct ReceiptTransitionTests {
    @Test func aReceiptMovesAnAttemptedDeliveryOn() {
        for status in [DeliveryStatus.sending, .retrying, .sent] {
            #expect(status.afterReceipt(.delivered) == .delivered)
            #expect(status.afterReceipt(.undelivered) == .undelivered)
            #expect(status.afterReceipt(.failed) == .failed)
        }
    }

    @Test func theFirstFinalReceiptStands() {
        for status in [DeliveryStatus.delivered, .undelivered] {
            for outcome in ReceiptOutcome.allCases { #expect(status.afterReceipt(outcome) == nil) }
        }
    }

    @Test func onlyDeliveredOverridesAFailedOrExpiredGuess() {
        for status in [DeliveryStatus.failed, .expired] {
            #expect(status.afterReceipt(.delivered) == .delivered)
            #expect(status.afterReceipt(.undelivered) == nil)
            #expect(status.afterReceipt(.failed) == nil)
        }
    }

    @Test func neverAttemptedOrCancelledDeliveriesAreNotMoved() {
        for status in [DeliveryStatus.pending, .scheduled, .queued, .cancelled] {
            for outcome in ReceiptOutcome.allCases { #expect(status.afterReceipt(outcome) == nil) }
        }
    }

    @Test func everyStatusIsDecided() {
        // A new status must be placed in these rules on purpose.
        #expect(Set(DeliveryStatus.allCases) == [
            .pending, .scheduled, .queued, .sending, .retrying, .sent, .delivered, .undelivered, .failed, .cancelled, .expired,
        ])
        #expect(DeliveryStatus.undelivered.isTerminal)
    }
}
