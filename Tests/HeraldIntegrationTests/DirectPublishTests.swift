import Foundation
import HeraldCore
import HeraldGateway
import HeraldMessaging
import HeraldStore
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing

/// The gateway publishes a delivery due now itself, right after its commit; the outbox row, written due
/// a grace period later, stays the guarantee. Real gateway, worker, PostgreSQL and RabbitMQ.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct DirectPublishTests {
    static func outboxRows(_ store: NotificationStore, notification id: String) async throws -> Int {
        var rows = 0
        for try await count in try await store.client.query(
            """
            SELECT count(*)::int FROM outbox o JOIN deliveries d ON d.id = o.delivery_id
            WHERE d.notification_id = \(UUID(uuidString: id)!)
            """
        ).decode(Int.self) { rows = count }
        return rows
    }

    static func firstAttemptDelay(_ document: JSONValue) throws -> Double {
        let created = try #require(document["created_at"]?.stringValue.flatMap(Timestamp.parse))
        let started = try #require(document.value(atPath: "deliveries.0.attempts.0.started_at")?.stringValue.flatMap(Timestamp.parse))
        return started.timeIntervalSince(created)
    }

    /// With a grace of a minute, only the gateway's own publish can deliver within the test; its row is
    /// removed once the broker confirmed it.
    @Test func aDeliveryDueNowIsPublishedAtOnceAndItsOutboxRowRemoved() async throws {
        let channel = EndToEndTests.channel()
        try await EndToEndTests.withHerald(
            channel: channel, receiver: WebhookReceiver(), gateway: { $0.directPublishGrace = .seconds(60) }
        ) { herald in
            let accepted = try await EndToEndTests.post(herald.client, """
                {"channel": "\(channel.name)", "to": {"webhook_url": "\(herald.receiver.url)"}, "message": {"text": "now"}}
                """)
            #expect(accepted.status == .accepted)
            let id = try #require(try EndToEndTests.document(accepted)["id"]?.stringValue)
            let final = try await EndToEndTests.waitForTerminal(herald.client, id: id)
            #expect(final.value(atPath: "deliveries.0.status") == "sent")
            #expect(try Self.firstAttemptDelay(final) < 5)
            _ = try await eventually("the published row to leave the outbox") {
                try await Self.outboxRows(herald.store, notification: id) == 0 ? true : nil
            }
        }
    }

    /// A delivery the gateway did not publish (here: its direct publisher takes nothing, as after a
    /// crash right after the commit) is published by the relay once the grace period is over.
    @Test func aDeliveryTheGatewayDidNotPublishGoesOutThroughTheRelayAfterTheGrace() async throws {
        let channel = EndToEndTests.channel()
        try await EndToEndTests.withHerald(
            channel: channel, receiver: WebhookReceiver(),
            gateway: {
                $0.directPublishGrace = .seconds(2)
                $0.directPublisher.capacity = 0
            }
        ) { herald in
            let accepted = try await EndToEndTests.post(herald.client, """
                {"channel": "\(channel.name)", "to": {"webhook_url": "\(herald.receiver.url)"}, "message": {"text": "later"}}
                """)
            #expect(accepted.status == .accepted)
            let id = try #require(try EndToEndTests.document(accepted)["id"]?.stringValue)
            #expect(try await Self.outboxRows(herald.store, notification: id) == 1)
            let final = try await EndToEndTests.waitForTerminal(herald.client, id: id)
            #expect(final.value(atPath: "deliveries.0.status") == "sent")
            #expect(herald.receiver.requests.count == 1)
            let delay = try Self.firstAttemptDelay(final)
            #expect(delay >= 1.9, "the relay published it after \(delay) s, before the grace period was over")
            #expect(try await Self.outboxRows(herald.store, notification: id) == 0)
        }
    }
}
