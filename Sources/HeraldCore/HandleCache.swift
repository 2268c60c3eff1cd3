import Synchronization

/// Handles made once per key and reused: metric handles on the hot paths (a `Counter(label:dimensions:)`
/// per attempt or request goes through the metrics factory's lock and its label lookup every time).
/// Keys must be bounded (channel, provider, outcome, route — never ids).
public final class HandleCache<Key: Hashable & Sendable, Handle: Sendable>: Sendable {
    private let handles = Mutex<[Key: Handle]>([:])
    private let make: @Sendable (Key) -> Handle

    public init(_ make: @escaping @Sendable (Key) -> Handle) {
        self.make = make
    }

    public subscript(_ key: Key) -> Handle {
        if let handle = handles.withLock({ $0[key] }) { return handle }
        let made = make(key)
        return handles.withLock { handles in
            if let existing = handles[key] { return existing }
            handles[key] = made
            return made
        }
    }
}
