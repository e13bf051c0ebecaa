import AgentryCore
import AgentryStore
import Foundation
import Testing

/// `webhook_deliveries` and `webhook_sources` on a database of their own (the counts must be exact).
@Suite("Webhook store")
struct WebhookStoreTests {
    @Test("a refused delivery's id does not keep the genuine delivery from being accepted; an accepted id is accepted once")
    func acceptedOnce() async throws {
        try await TestEnvironment.withFreshDatabase("wh") { db, _ in
            let store = WebhookStore(database: db, logger: TestEnvironment.logger)
            let refused = WebhookStore.Delivery(
                source: "gh", deliveryID: "d-1", eventID: nil, outcome: .refused, reason: "bad_signature", detail: "no", remote: "10.0.0.9")
            #expect(try await store.record(refused))
            #expect(try await store.acceptedEvent(source: "gh", deliveryID: "d-1") == nil)
            let accepted = WebhookStore.Delivery(source: "gh", deliveryID: "d-1", eventID: "e-1", outcome: .accepted, remote: "10.0.0.1")
            #expect(try await store.record(accepted))
            var again = accepted
            again.eventID = "e-2"
            let second = try await store.record(again)
            #expect(!second)
            #expect(try await store.acceptedEvent(source: "gh", deliveryID: "d-1") == "e-1")
            #expect(try await store.acceptedEvent(source: "gl", deliveryID: "d-1") == nil)
            let recent = try await store.recentDeliveries(limit: 10)
            #expect(recent.map(\.outcome) == [.accepted, .refused])
            #expect(recent.last?.reason == "bad_signature" && recent.last?.remote == "10.0.0.9")
        }
    }

    @Test("pruning deletes deliveries older than the age given, and refused ones beyond the newest N")
    func prune() async throws {
        try await TestEnvironment.withFreshDatabase("wh") { db, _ in
            let store = WebhookStore(database: db, logger: TestEnvironment.logger)
            let old = Date().addingTimeInterval(-8 * 86_400)
            try await store.record(.init(source: "gh", deliveryID: "old", receivedAt: old, eventID: "e-0", outcome: .accepted, remote: nil))
            try await store.record(.init(source: "gh", deliveryID: "new", eventID: "e-1", outcome: .accepted, remote: nil))
            for index in 0..<5 {
                try await store.record(
                    .init(source: "x", deliveryID: "r\(index)", eventID: nil, outcome: .refused, reason: "unknown_source", remote: nil))
            }
            let deleted = try await store.prune(olderThan: .seconds(7 * 86_400), keepRefused: 2)
            #expect(deleted == 4)
            let left = try await store.recentDeliveries(limit: 100).map { $0.deliveryID ?? "" }
            #expect(left == ["r4", "r3", "new"])
        }
    }

    @Test("sources stored through the API read back as they were put; delete says whether there was one")
    func sources() async throws {
        try await TestEnvironment.withFreshDatabase("wh") { db, _ in
            let store = WebhookStore(database: db, logger: TestEnvironment.logger)
            let source = WebhookSource(
                name: "billing", secretEnv: "BILLING_SECRET", scheme: .hmacSHA256, type: "billing.{{payload.kind}}", priority: .high,
                payload: ["amount": "{{payload.amount}}"], signatureHeader: "X-Sig", maxBodyKB: 64)
            #expect(try await store.put(source))
            let replaced = try await store.put(source)
            #expect(!replaced)
            #expect(try await store.source(named: "billing") == source)
            #expect(try await store.sources() == [source])
            #expect(try await store.delete(named: "billing"))
            let again = try await store.delete(named: "billing")
            #expect(!again)
            #expect(try await store.source(named: "billing") == nil)
        }
    }
}
