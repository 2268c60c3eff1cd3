import Foundation
import HeraldCore
import HeraldProviders
import Testing

/// The shipped `sms-kannel` channel against a real Kannel (bearerbox + smsbox + fakesmsc, started by
/// `scripts/services start kannel`): the coding follows the text, long texts go as concatenated parts
/// that arrive whole, a text Kannel would cut is refused, and Kannel's delivery reports (DLRs) move
/// the delivery to `delivered` through `/v1/receipts`. What reached the "network" is read back from
/// the fake SMSC's log.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct KannelTests {
    static let environment = ProcessInfo.processInfo.environment
    static let sendsmsPort = environment["HERALD_KANNEL_SENDSMS_PORT"] ?? "10002"
    static let directory = environment["HERALD_KANNEL_DIR"] ?? "/var/tmp/herald-kannel-\(sendsmsPort)"

    static func withKannel(_ body: @Sendable (PeerHarness) async throws -> Void) async throws {
        guard canConnect(port: Int(sendsmsPort) ?? 0) else {
            throw HarnessError("no Kannel on 127.0.0.1:\(sendsmsPort): run scripts/services start kannel (scripts/test does)")
        }
        try await PeerHarness.with(
            channels: [.init(file: "sms-kannel.yaml", replacing: [("http://kannel:13013", "http://127.0.0.1:\(sendsmsPort)")])],
            secrets: [
                "KANNEL_USERNAME": environment["HERALD_KANNEL_USERNAME"] ?? "herald",
                "KANNEL_PASSWORD": environment["HERALD_KANNEL_PASSWORD"] ?? "herald-kannel-test", "KANNEL_FROM": "Herald",
            ], body)
    }

    /// A phone number no other run uses, so its lines in the fake SMSC's log are this test's.
    static func uniquePhone() -> String { "+1555" + String(format: "%07d", Int.random(in: 0..<10_000_000)) }

    static func request(_ harness: PeerHarness, phone: String, text: String) -> JSONValue {
        ["channel": .string(harness.channel("sms-kannel")), "to": ["phone": .string(phone)], "message": ["text": .string(text)]]
    }

    @Test func aGSMTextGoesAsConcatenatedGSM7PartsAndItsDeliveryReportMakesItDelivered() async throws {
        try await Self.withKannel { harness in
            // The issue's 216 characters: cut to 70 (one UCS-2 part) before, with Herald recording `sent`.
            let text = String(String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 5).prefix(216)) + "€[x]"
            let phone = Self.uniquePhone()
            let id = try await harness.accepted(Self.request(harness, phone: phone, text: text))
            let final = try await harness.wait(id: id, for: ["delivered"])
            #expect(final["status"] == "delivered")
            #expect(final.value(atPath: "deliveries.0.attempt_count") == 1)

            let expected = SMSSegmentation(text)
            #expect(expected.encoding == .gsm7)
            #expect(expected.partCount == 2)
            let parts = try await FakeSMSC.parts(in: Self.directory, to: phone, count: expected.partCount)
            #expect(parts.map(\.coding) == Array(repeating: "gsm7", count: expected.partCount))
            #expect(parts.map(\.text) == expected.parts.map(\.text), "each part as Herald counted it")
            #expect(parts.map(\.text).joined() == text)
            #expect(Set(parts.compactMap(\.reference)).count == 1, "one concatenated message")

            // Kannel's reports: 8 (the SMSC accepted it) is recorded without a change, 1 makes it delivered.
            let events = final.value(atPath: "deliveries.0.events")?.arrayValue ?? []
            let delivered = events.filter { $0["provider_status"] == "1" }
            #expect(delivered.count == 1, "one event per distinct report, however many parts reported it: \(events)")
            #expect(delivered.first?["status"] == "delivered")
            #expect(delivered.first?["provider"] == "kannel")
            #expect(events.allSatisfy { $0["type"] == "receipt" })
            try await Task.sleep(for: .milliseconds(500))
            let later = try await harness.document(id: id)
            #expect(later.value(atPath: "deliveries.0.status") == "delivered", "later reports don't move it back")
        }
    }

    @Test func aTextOutsideGSMGoesAsUCS2PartsThatArriveIntact() async throws {
        try await Self.withKannel { harness in
            let text = String(repeating: "Привет, мир! ", count: 6) + "👋🏽 ok"
            let phone = Self.uniquePhone()
            let id = try await harness.accepted(Self.request(harness, phone: phone, text: text))
            _ = try await harness.wait(id: id, for: ["sent", "delivered"])
            let expected = SMSSegmentation(text)
            #expect(expected.encoding == .ucs2)
            #expect(expected.units == text.utf16.count)
            let parts = try await FakeSMSC.parts(in: Self.directory, to: phone, count: expected.partCount)
            #expect(parts.map(\.coding) == Array(repeating: "ucs2", count: expected.partCount))
            #expect(parts.map(\.text).joined() == text)
        }
    }

    @Test func aTextKannelWouldCutIsRefusedInsteadOfReportedSent() async throws {
        try await Self.withKannel { harness in
            // 11 GSM-7 parts; Kannel's user sends at most 10 and would answer "Accepted" for the first 10.
            let phone = Self.uniquePhone()
            let (status, body) = try await harness.send(Self.request(harness, phone: phone, text: String(repeating: "x", count: 1531)))
            #expect(status == 422)
            #expect(body.value(atPath: "errors.0.field") == "message.text")
            #expect(body.value(atPath: "errors.0.message")?.stringValue?.contains("needs 11 SMS parts") == true, "\(body)")
            // The longest text that fits goes whole.
            let fits = String(repeating: "y", count: 1530)
            let id = try await harness.accepted(Self.request(harness, phone: phone, text: fits))
            _ = try await harness.wait(id: id, for: ["sent", "delivered"])
            let parts = try await FakeSMSC.parts(in: Self.directory, to: phone, count: 10)
            #expect(parts.map(\.text).joined() == fits)
        }
    }

    @Test func aReportWithAForgedTokenIsRefused() async throws {
        try await Self.withKannel { harness in
            let phone = Self.uniquePhone()
            let id = try await harness.accepted(Self.request(harness, phone: phone, text: "hello"))
            let sent = try await harness.wait(id: id, for: ["delivered"])
            let deliveryID = try #require(sent.value(atPath: "deliveries.0.id")?.stringValue)
            let path = "/v1/receipts/\(harness.channel("sms-kannel"))/kannel"
            // Right delivery, token of another one: 403 problem, nothing recorded.
            let otherToken = harness.links.token(channel: harness.channel("sms-kannel"), provider: "kannel", deliveryID: UUID())
            let forged = try await harness.receipt("\(path)?d=\(deliveryID)&t=\(otherToken)&status=2", method: "GET")
            #expect(forged.status == 403)
            #expect(forged.contentType == "application/problem+json")
            let bare = try await harness.receipt("\(path)?status=2", method: "GET")
            #expect(bare.status == 403)
            let after = try await harness.document(id: id)
            #expect(after.value(atPath: "deliveries.0.status") == "delivered")
            #expect(after.value(atPath: "deliveries.0.events")?.arrayValue?.contains { $0["provider_status"] == "2" } == false)
        }
    }
}

/// Reads what the fake SMSC received: `Got message N: <from to type [udh] payload>` lines.
enum FakeSMSC {
    struct Part: Sendable, Hashable {
        var coding: String
        var text: String
        /// The concatenation reference of a multi-part message.
        var reference: Int?
        var sequence: Int
    }

    /// The data codings bearerbox sent the messages to `phone` with, from its access log (one `Sent SMS`
    /// line per message, before it is split: `[to:…] [flags:mclass:coding:mwi:compress:dlrmask]`,
    /// coding 0 = GSM-7, 2 = UCS-2).
    static func codings(in directory: String, to phone: String) -> [String] {
        let log = (try? String(contentsOfFile: directory + "/access.log", encoding: .utf8)) ?? ""
        return log.split(separator: "\n").compactMap { line -> String? in
            guard line.contains("Sent SMS"), line.contains("[to:\(phone)]"), let flags = line.range(of: "[flags:") else { return nil }
            let values = line[flags.upperBound...].prefix { $0 != "]" }.split(separator: ":", omittingEmptySubsequences: false)
            guard values.count >= 2 else { return nil }
            switch values[1] {
            case "0", "-1": return "gsm7"
            case "1": return "8bit"
            case "2": return "ucs2"
            default: return String(values[1])
            }
        }
    }

    /// The parts sent to `phone`, in part order, once `count` have arrived, each decoded by the coding
    /// bearerbox sent it with.
    static func parts(in directory: String, to phone: String, count: Int) async throws -> [Part] {
        try await eventually(timeout: .seconds(20), "\(count) SMS parts to \(phone) in the fake SMSC's log") {
            let codings = codings(in: directory, to: phone)
            guard let coding = codings.first, Set(codings).count == 1 else { return nil }
            let log = (try? String(contentsOfFile: directory + "/fakesmsc.log", encoding: .utf8)) ?? ""
            let parts = log.split(separator: "\n").compactMap { line -> Part? in
                guard let open = line.range(of: "Got message "), let start = line.range(of: ": <", range: open.upperBound..<line.endIndex),
                    line.hasSuffix(">")
                else { return nil }
                let fields = line[start.upperBound..<line.index(before: line.endIndex)].split(separator: " ", maxSplits: 3)
                guard fields.count >= 3, fields[1] == phone else { return nil }
                return parse(type: String(fields[2]), rest: fields.count > 3 ? String(fields[3]) : "", coding: coding)
            }
            guard parts.count >= count else { return nil }
            return parts.sorted { $0.sequence < $1.sequence }
        }
    }

    static func parse(type: String, rest: String, coding: String) -> Part? {
        switch type {
        case "text":
            return Part(coding: "gsm7", text: rest, reference: nil, sequence: 1)
        case "udh":
            // `%05%00%03<ref><total><seq> data <url-encoded text>` (8-bit reference concatenation IE).
            let pieces = rest.split(separator: " ", maxSplits: 2)
            guard pieces.count == 3, let udh = percentBytes(String(pieces[0])), udh.count == 6, udh[1] == 0 else { return nil }
            // fakesmsc shows both codings' parts as `data`: UCS-2 as UTF-16 bytes, GSM-7 as the text.
            let payload = percentBytes(String(pieces[2])) ?? []
            return Part(
                coding: coding, text: coding == "ucs2" ? utf16(payload) : String(decoding: payload, as: UTF8.self),
                reference: Int(udh[3]), sequence: Int(udh[5]))
        case "ucs-2":
            return Part(coding: "ucs2", text: utf16(percentBytes(rest) ?? []), reference: nil, sequence: 1)
        default:
            return nil
        }
    }

    /// fakesmsc's url-encoding (`+` for space).
    static func percentBytes(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        var bytes: [UInt8] = []
        var position = 0
        while position < utf8.count {
            let byte = utf8[position]
            if byte == UInt8(ascii: "%") {
                guard position + 2 < utf8.count,
                    let value = UInt8(String(decoding: utf8[(position + 1)...(position + 2)], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
                position += 3
            } else {
                bytes.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                position += 1
            }
        }
        return bytes
    }

    /// Big-endian UTF-16.
    static func utf16(_ bytes: [UInt8]) -> String {
        var units: [UInt16] = []
        var position = 0
        while position + 1 < bytes.count {
            units.append(UInt16(bytes[position]) << 8 | UInt16(bytes[position + 1]))
            position += 2
        }
        return String(decoding: units, as: UTF16.self)
    }
}
