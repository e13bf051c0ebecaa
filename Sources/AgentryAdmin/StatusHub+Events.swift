import AgentryCore
import NIOConcurrencyHelpers

/// Forwarded events in batches: however fast events are published, clients get at most one `events` message every
/// 100 ms (the flush loop's pace), so that a flood neither fills their outboxes (which would drop them) nor makes
/// a browser handle a message per event.
extension StatusHub {
    /// Events a batch carries at most: past that the oldest of the batch are left out and counted in `omitted`
    /// (the page lists the newest few; counts over time come from the `stats` and `/api/stats`, not from here).
    static let eventBatchLimit = 500

    /// Adds a forwarded event to the next batch.
    func enqueue(_ event: JSONValue) {
        state.withLockedValue { s in
            s.eventBatch.append(event)
            if s.eventBatch.count > Self.eventBatchLimit {
                s.eventBatch.removeFirst(s.eventBatch.count - Self.eventBatchLimit)
                s.eventsOmitted += 1
            }
        }
    }

    /// Sends the events gathered since the last flush as one `events` message (oldest first), if there are any.
    func flushEvents() {
        let (events, omitted) = state.withLockedValue { s -> ([JSONValue], Int) in
            defer {
                s.eventBatch = []
                s.eventsOmitted = 0
            }
            return s.clients.isEmpty ? ([], 0) : (s.eventBatch, s.eventsOmitted)
        }
        guard !events.isEmpty else { return }
        broadcast(JSON.serialize(.object(["type": "events", "events": .array(events), "omitted": .int(Int64(omitted))])))
    }
}
