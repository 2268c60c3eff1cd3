import Foundation
import HeraldCore
import Testing

struct IdentifierOrderTests {
    /// PostgreSQL compares uuids byte by byte, which is the order of their lower-case text.
    @Test func precedesIsPostgreSQLsOrder() {
        for _ in 0..<2_000 {
            let a = UUID(), b = Bool.random() ? UUID() : UUID.timeOrdered()
            #expect(UUID.precedes(a, b) == (a.lowercasedString < b.lowercasedString))
            #expect(!UUID.precedes(a, a))
        }
    }

    @Test func spanIsTheLowestAndHighest() throws {
        #expect(UUID.span([UUID]()) == nil)
        let ids = (0..<50).map { _ in UUID() }
        let span = try #require(UUID.span(ids))
        let sorted = ids.map(\.lowercasedString).sorted()
        #expect(span.lowest.lowercasedString == sorted.first && span.highest.lowercasedString == sorted.last)
    }

    @Test func theTimeFloorKeepsOnlyTheMillisecond() {
        let id = UUID.timeOrdered(now: Date(timeIntervalSince1970: 1_796_342_399.999))
        let floor = id.timeFloor
        #expect(floor.lowercasedString.hasPrefix(String(id.lowercasedString.prefix(13))))
        #expect(floor.lowercasedString.hasSuffix("-0000-0000-000000000000"))
        #expect(!UUID.precedes(id, floor))
    }
}
