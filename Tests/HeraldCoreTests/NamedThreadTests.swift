import Foundation
import HeraldCore
import Synchronization
import Testing

@Suite struct NamedThreadTests {
    /// The name the OS thread carries, read from inside it.
    private func nameSeenInside(_ name: String) async -> String? {
        await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
            NamedThread.start(name) { continuation.resume(returning: NamedThread.currentName()) }
        }
    }

    @Test func theOSThreadCarriesTheName() async {
        #expect(await nameSeenInside("herald-curl") == "herald-curl")
        #expect(await nameSeenInside("amqp-publisher") == "amqp-publisher")
    }

    @Test func aLongNameIsCutToWhatLinuxKeeps() async {
        #expect(await nameSeenInside("herald-amqp-consumer") == "herald-amqp-con")
        #expect(NamedThread.osName("herald-amqp-consumer").utf8.count == NamedThread.maximumNameBytes)
    }

    @Test func aNameIsCutAtACharacterBoundary() {
        // 14 ASCII bytes, then a two-byte character that does not fit.
        #expect(NamedThread.osName("abcdefghijklmné") == "abcdefghijklmn")
        #expect(NamedThread.osName("") == "")
    }
}
