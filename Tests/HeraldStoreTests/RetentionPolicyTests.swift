import Foundation
import HeraldStore
import Testing

struct RetentionPolicyTests {
    static func day(_ text: String) -> Date { UTCDay.start(of: text)! }

    @Test func partitionNamesAreReadStrictly() throws {
        let day = try #require(DayPartition(notificationsPartition: "notifications_p20261204"))
        #expect(day.kind == .day && day.day == "20261204" && day.suffix == "p20261204")
        #expect(day.end == Self.day("20261205"))
        let before = try #require(DayPartition(notificationsPartition: "notifications_before_20261204"))
        #expect(before.kind == .before && before.end == Self.day("20261204") && before.suffix == "before_20261204")
        for name in ["notifications_default", "notifications_p2026120", "notifications_p20261304", "notifications_p20260230",
                     "deliveries_p20261204", "notifications_p2026120x", "notifications_p20261204; DROP TABLE x", "notifications_p２0261204"] {
            #expect(DayPartition(notificationsPartition: name) == nil, "\(name)")
        }
    }

    @Test func aDayExpiresOnlyWhenAllOfItIsOlderThanTheKeptDays() {
        let names = ["notifications_p20261203", "notifications_p20261125", "notifications_p20261126", "notifications_before_20261120",
                     "notifications_p20261205"]
        let partitions = names.compactMap(DayPartition.init(notificationsPartition:))
        // Keeping 7 full days on 4 December (any time of it) keeps 27 November onwards.
        for now in [Self.day("20261204"), Self.day("20261204").addingTimeInterval(86_399.999)] {
            #expect(RetentionPolicy.cutoff(now: now, keepDays: 7) == Self.day("20261127"))
            #expect(RetentionPolicy.expired(partitions, now: now, keepDays: 7).map(\.suffix) == ["before_20261120", "p20261125", "p20261126"])
        }
        #expect(RetentionPolicy.expired(partitions, now: Self.day("20261204"), keepDays: 8).map(\.suffix) == ["before_20261120", "p20261125"])
        #expect(RetentionPolicy.expired(partitions, now: Self.day("20261204"), keepDays: 30).isEmpty)
    }

    @Test func partitionsAreKeptAWeekAhead() {
        let days = RetentionPolicy.daysAhead(now: Self.day("20261230").addingTimeInterval(3600), ahead: 7)
        #expect(days.first == "2026-12-30" && days.last == "2027-01-06")
    }
}
