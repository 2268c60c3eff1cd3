import HeraldCore
import HeraldFilter

/// The documents every in-memory test runs against (ids 1…8).
enum Fixtures {
    static let documents: [Int: JSONValue] = [
        1: [
            "channel": "sms", "to": ["phone": "+15550001", "email": "a@example.com"], "priority": 5, "amount": 10.5,
            "tags": ["urgent", "billing"],
            "data": ["items": [["sku": "A1", "qty": 2], ["sku": "B2", "qty": 1]], "country": "DE"], "active": true,
        ],
        2: [
            "channel": "email", "to": ["email": "Bob@Example.com"], "priority": 1, "amount": 10, "tags": ["billing"],
            "data": ["items": [["sku": "C3", "qty": 5]], "country": "FR"], "active": false, "note": .null,
        ],
        3: [
            "channel": "webhook", "priority": 10.0, "amount": -3, "tags": [], "data": ["country": "de"],
            "note": "ünïcode ÉCOLE", "scores": [1, 5.5, [7, 8], "9"],
        ],
        4: [
            "channel": "sms", "to": ["phone": "+15550002"], "priority": "high", "tags": "urgent", "data": ["items": []],
            "note": "e\u{301}cole",  // decomposed é
        ],
        5: [
            "channel": "Email", "priority": .null, "amount": 1e20, "tags": ["URGENT", .null],
            "nested": ["a": ["b": ["c": [1, 2, 3]]]], "note": "\u{E9}cole",  // precomposed é
        ],
        6: [:],
        7: [
            "channel": "push", "priority": 7, "amount": .integer(Int64.max), "tags": [["urgent"], "x"],
            "data": ["items": ["0": ["sku": "obj-key"]]],
            "weird": ["-1": "neg", " 1": "space", "01": "zero-one"], "arr": ["a", "b", "c"],
        ],
        8: [
            "channel": "sms\n", "priority": 0.5, "amount": 0.1, "tags": ["a.b"], "to": ["phone": .null],
            "data": ["items": [["sku": "A1", "qty": 2.0]], "meta": ["k": [1, 2]]],
        ],
    ]

    static let allIDs: Set<Int> = Set(documents.keys)

    static func matchingIDs(_ filter: Filter) -> Set<Int> {
        Set(documents.filter { filter.matches($0.value) }.map(\.key))
    }
}
