import Foundation

extension UUID {
    /// A version 7 UUID (RFC 9562): 48 bits of Unix milliseconds, then random bits. Time-ordered
    /// ids keep B-tree inserts at the right edge of the index instead of scattered.
    public static func timeOrdered(now: Date = Date()) -> UUID {
        var generator = SystemRandomNumberGenerator()
        let milliseconds = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in 0..<6 { bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (8 * (5 - UInt64(index)))) }
        let random = generator.next() as UInt64
        let random2 = generator.next() as UInt64
        for index in 6..<16 {
            let source = index < 14 ? random : random2
            bytes[index] = UInt8(truncatingIfNeeded: source >> (8 * UInt64(index % 8)))
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x70  // version 7
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }

    /// The smallest UUIDv7 of this id's millisecond (the random bits zeroed). Rows of one notification
    /// have ids at or after its own id's floor: a query adding `id >= floor` skips the day partitions
    /// before it.
    public var timeFloor: UUID {
        var bytes = uuid
        withUnsafeMutableBytes(of: &bytes) { raw in
            for index in 6..<16 { raw[index] = 0 }
        }
        return UUID(uuid: bytes)
    }

    /// PostgreSQL's order of uuids: byte by byte.
    public static func precedes(_ lhs: UUID, _ rhs: UUID) -> Bool {
        withUnsafeBytes(of: lhs.uuid) { left in
            withUnsafeBytes(of: rhs.uuid) { right in left.lexicographicallyPrecedes(right) }
        }
    }

    /// The smallest and largest of `ids` in PostgreSQL's order (nil for none). A statement that joins
    /// a batch of ids to a day-partitioned table adds `BETWEEN` these, so that the planner reads only
    /// the days the batch touches (it can't prune through a join).
    public static func span(_ ids: some Collection<UUID>) -> (lowest: UUID, highest: UUID)? {
        guard var lowest = ids.first else { return nil }
        var highest = lowest
        for id in ids.dropFirst() {
            if precedes(id, lowest) { lowest = id }
            if precedes(highest, id) { highest = id }
        }
        return (lowest, highest)
    }

    /// Lower-case canonical text, as Herald shows ids: written from the bytes (Foundation's
    /// `uuidString` formats with snprintf, and `lowercased()` makes a second string).
    public var lowercasedString: String { hexadecimal(dashes: true) }

    /// The 32 lower-case hexadecimal digits, with the canonical dashes (8-4-4-4-12) or without.
    public func hexadecimal(dashes: Bool) -> String {
        let digits: StaticString = "0123456789abcdef"
        return withUnsafeBytes(of: uuid) { bytes in
            String(unsafeUninitializedCapacity: 36) { out in
                digits.withUTF8Buffer { hex in
                    var count = 0
                    for (index, byte) in bytes.enumerated() {
                        if dashes, index == 4 || index == 6 || index == 8 || index == 10 {
                            out[count] = UInt8(ascii: "-")
                            count += 1
                        }
                        out[count] = hex[Int(byte >> 4)]
                        out[count + 1] = hex[Int(byte & 0x0F)]
                        count += 2
                    }
                    return count
                }
            }
        }
    }
}

/// Herald's one way of writing instants: ISO 8601 in UTC with milliseconds.
public enum Timestamp {
    public static func string(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// Reads an RFC 3339 date-time (`2026-12-01T09:30:00Z`, `2026-12-01t09:30:00.25+01:00`): with or
    /// without fractional seconds, `Z` or a numeric offset. Strict: every field in its range (no
    /// `12:99:00`, no 31 April), so what the API accepts is what it means. A leap second (`:60`) is
    /// read as the last instant of its minute.
    public static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes.count <= 40 else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else { return nil }
                value = value * 10 + Int(bytes[index] - UInt8(ascii: "0"))
            }
            return value
        }
        func byte(_ index: Int, _ allowed: String) -> Bool { index < bytes.count && allowed.utf8.contains(bytes[index]) }
        guard let year = number(0..<4), byte(4, "-"), let month = number(5..<7), byte(7, "-"), let day = number(8..<10),
            byte(10, "Tt "), let hour = number(11..<13), byte(13, ":"), let minute = number(14..<16), byte(16, ":"),
            let second = number(17..<19)
        else { return nil }
        var index = 19
        var fraction = 0.0
        if byte(index, ".") {
            index += 1
            var scale = 0.1
            let start = index
            while let digit = number(index..<(index + 1)) {
                fraction += Double(digit) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        var offset = 0
        if byte(index, "Zz") {
            index += 1
        } else if byte(index, "+-") {
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            guard let hours = number((index + 1)..<(index + 3)), byte(index + 3, ":"), let minutes = number((index + 4)..<(index + 6)),
                hours < 24, minutes < 60
            else { return nil }
            offset = sign * (hours * 3600 + minutes * 60)
            index += 6
        } else {
            return nil
        }
        guard index == bytes.count, (1...12).contains(month), hour < 24, minute < 60, second <= 60 else { return nil }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let daysInMonth = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        guard (1...daysInMonth).contains(day) else { return nil }
        // Days from 1970-01-01 to the civil date (Howard Hinnant's days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        let seconds = Double(days * 86_400 + hour * 3600 + minute * 60 + min(second, 59) - offset)
        let leapFraction = second == 60 ? 0.999_999 : fraction
        return Date(timeIntervalSince1970: seconds + leapFraction)
    }
}

extension String {
    /// `trimmingCharacters(in: .whitespacesAndNewlines)`, without Foundation's bridging for the usual
    /// text that starts and ends with a visible ASCII character (a URL, a secret): that text is itself.
    public var trimmedOfWhitespaceAndNewlines: String {
        func isPlainASCII(_ scalar: Unicode.Scalar?) -> Bool {
            guard let scalar else { return false }
            return scalar.isASCII && scalar.value > 0x20
        }
        if isPlainASCII(unicodeScalars.first), isPlainASCII(unicodeScalars.last) { return self }
        return trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
