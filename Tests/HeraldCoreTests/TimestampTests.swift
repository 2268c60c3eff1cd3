import Foundation
import HeraldCore
import Testing

@Suite struct TimestampTests {
    @Test(arguments: [
        ("2026-12-01T09:30:00Z", 1_796_117_400.0),
        ("2026-12-01t09:30:00z", 1_796_117_400.0),
        ("2026-12-01 09:30:00Z", 1_796_117_400.0),
        ("2026-12-01T10:30:00+01:00", 1_796_117_400.0),
        ("2026-12-01T04:00:00-05:30", 1_796_117_400.0),
        ("2026-12-01T09:30:00.250Z", 1_796_117_400.25),
        ("1970-01-01T00:00:00Z", 0.0),
        ("2000-02-29T00:00:00Z", 951_782_400.0),
        ("1969-12-31T23:59:59Z", -1.0),
    ])
    func readsRFC3339(text: String, seconds: Double) throws {
        let date = try #require(Timestamp.parse(text))
        #expect(abs(date.timeIntervalSince1970 - seconds) < 0.000_5)
    }

    @Test(arguments: [
        "2024-01-01T12:99:00Z",  // found by schemathesis: minute 99 was read as 13:39
        "2024-01-01T24:00:00Z", "2024-13-01T00:00:00Z", "2024-00-10T00:00:00Z", "2024-04-31T00:00:00Z",
        "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2024-01-01T00:00:61Z", "2024-01-01T00:00:00",
        "2024-01-01T00:00:00+25:00", "2024-01-01T00:00:00+01", "2024-01-01", "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00Zjunk", "２０２４-01-01T00:00:00Z", "",
    ])
    func refusesWhatIsNotAValidDateTime(text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test func roundTripsWhatItWrites() {
        let date = Date(timeIntervalSince1970: 1_796_117_400.123)
        let read = Timestamp.parse(Timestamp.string(date))
        #expect(read.map { abs($0.timeIntervalSince(date)) < 0.001 } == true)
    }
}
