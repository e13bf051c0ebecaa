public import AgentryCore
public import Foundation
public import Logging
import PostgresNIO

/// Webhook sources added through the admin API (`webhook_sources`) and the deliveries received
/// (`webhook_deliveries`).
public struct WebhookStore: Sendable {
    let database: Database
    let logger: Logger

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    // MARK: Sources

    /// The stored source with this name, if any.
    public func source(named name: String) async throws -> WebhookSource? {
        do {
            for try await text in try await database.query("SELECT definition::text FROM webhook_sources WHERE name = \(name)", logger: logger)
                .decode(String.self)
            {
                return try Self.read(name: name, text)
            }
            return nil
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.query, "cannot read webhook source '\(name)'", cause: error)
        }
    }

    /// Every stored source, by name.
    public func sources() async throws -> [WebhookSource] {
        var result: [WebhookSource] = []
        do {
            for try await (name, text) in try await database.query("SELECT name, definition::text FROM webhook_sources ORDER BY name", logger: logger)
                .decode((String, String).self)
            {
                result.append(try Self.read(name: name, text))
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.query, "cannot read the webhook sources", cause: error)
        }
        return result
    }

    /// Stores a source, replacing the one of that name. - Returns: whether it was new.
    @discardableResult
    public func put(_ source: WebhookSource) async throws -> Bool {
        let text = source.jsonValue().jsonText
        do {
            for try await created in try await database.write(
                """
                INSERT INTO webhook_sources (name, definition) VALUES (\(source.name), \(text)::jsonb)
                ON CONFLICT (name) DO UPDATE SET definition = EXCLUDED.definition, updated_at = now()
                RETURNING (xmax = 0)
                """, logger: logger
            ).decode(Bool.self) {
                return created
            }
            return false
        } catch {
            throw StoreError(.query, "cannot store webhook source '\(source.name)'", cause: error)
        }
    }

    /// Deletes a stored source. - Returns: whether there was one.
    public func delete(named name: String) async throws -> Bool {
        do {
            var deleted = false
            for try await _ in try await database.write("DELETE FROM webhook_sources WHERE name = \(name) RETURNING name", logger: logger).decode(
                String.self)
            {
                deleted = true
            }
            return deleted
        } catch {
            throw StoreError(.query, "cannot delete webhook source '\(name)'", cause: error)
        }
    }

    private static func read(name: String, _ text: String) throws -> WebhookSource {
        do {
            return try WebhookSource.parse(yaml: text, name: name)
        } catch {
            throw StoreError(.query, "webhook source '\(name)' as stored no longer reads: \(error.description)")
        }
    }

    // MARK: Deliveries

    /// One request received.
    public struct Delivery: Sendable, Hashable {
        public enum Outcome: String, Sendable {
            case accepted, duplicate, refused
        }
        public var source: String
        public var deliveryID: String?
        public var receivedAt: Date
        public var eventID: String?
        public var outcome: Outcome
        /// For refusals: `bad_signature`, `missing_signature`, … (docs/webhooks.md).
        public var reason: String?
        public var detail: String?
        public var remote: String?

        public init(
            source: String, deliveryID: String?, receivedAt: Date = Date(), eventID: String?, outcome: Outcome, reason: String? = nil,
            detail: String? = nil, remote: String?
        ) {
            self.source = source
            self.deliveryID = deliveryID
            self.receivedAt = receivedAt
            self.eventID = eventID
            self.outcome = outcome
            self.reason = reason
            self.detail = detail
            self.remote = remote
        }
    }

    /// The event id of the accepted delivery with this id, if there was one.
    public func acceptedEvent(source: String, deliveryID: String) async throws -> String? {
        do {
            for try await id in try await database.query(
                "SELECT event_id FROM webhook_deliveries WHERE source = \(source) AND delivery_id = \(deliveryID) AND outcome = 'accepted'",
                logger: logger
            ).decode(String?.self) {
                return id
            }
            return nil
        } catch {
            throw StoreError(.query, "cannot look up webhook delivery '\(deliveryID)' of '\(source)'", cause: error)
        }
    }

    /// Records a delivery. An accepted one whose id was accepted before is not recorded again.
    /// - Returns: false when an accepted delivery with that id was recorded already.
    @discardableResult
    public func record(_ delivery: Delivery) async throws -> Bool {
        let deliveryID = delivery.deliveryID.map { String($0.prefix(255)) }
        let detail = delivery.detail.map { String($0.prefix(1000)) }
        let remote = delivery.remote.map { String($0.prefix(255)) }
        do {
            var inserted = false
            for try await _ in try await database.write(
                """
                INSERT INTO webhook_deliveries (source, delivery_id, received_at, event_id, outcome, reason, detail, remote)
                VALUES (\(String(delivery.source.prefix(63))), \(deliveryID), to_timestamp(\(delivery.receivedAt.timeIntervalSince1970)),
                        \(delivery.eventID), \(delivery.outcome.rawValue), \(delivery.reason), \(detail), \(remote))
                ON CONFLICT (source, delivery_id) WHERE outcome = 'accepted' DO NOTHING
                RETURNING id
                """, logger: logger
            ).decode(Int64.self) {
                inserted = true
            }
            return inserted
        } catch {
            throw StoreError(.query, "cannot record a webhook delivery of '\(delivery.source)'", cause: error)
        }
    }

    /// Deletes deliveries older than `maxAge`, and refused ones beyond the newest `keepRefused`.
    /// - Returns: how many rows went.
    @discardableResult
    public func prune(olderThan maxAge: Duration = .seconds(7 * 86_400), keepRefused: Int = 10_000) async throws -> Int {
        let seconds = Double(maxAge.components.seconds)
        do {
            var count = 0
            let statements: [PostgresQuery] = [
                "DELETE FROM webhook_deliveries WHERE received_at < now() - make_interval(secs => \(seconds)) RETURNING 1",
                """
                DELETE FROM webhook_deliveries WHERE outcome = 'refused' AND id <= (
                    SELECT id FROM webhook_deliveries WHERE outcome = 'refused' ORDER BY id DESC OFFSET \(keepRefused) LIMIT 1
                ) RETURNING 1
                """,
            ]
            for statement in statements {
                for try await _ in try await database.write(statement, logger: logger).decode(Int32.self) { count += 1 }
            }
            return count
        } catch {
            throw StoreError(.query, "cannot prune webhook_deliveries", cause: error)
        }
    }

    /// The last deliveries received, newest first.
    public func recentDeliveries(limit: Int = 50) async throws -> [Delivery] {
        var result: [Delivery] = []
        do {
            let rows = try await database.query(
                """
                SELECT source, delivery_id, extract(epoch FROM received_at)::float8, event_id, outcome, reason, detail, remote
                FROM webhook_deliveries ORDER BY id DESC LIMIT \(limit)
                """, logger: logger)
            for try await (source, deliveryID, received, eventID, outcome, reason, detail, remote) in rows.decode(
                (String, String?, Double, String?, String, String?, String?, String?).self)
            {
                result.append(
                    Delivery(
                        source: source, deliveryID: deliveryID, receivedAt: Date(timeIntervalSince1970: received), eventID: eventID,
                        outcome: Delivery.Outcome(rawValue: outcome) ?? .refused, reason: reason, detail: detail, remote: remote))
            }
        } catch {
            throw StoreError(.query, "cannot read webhook_deliveries", cause: error)
        }
        return result
    }
}
