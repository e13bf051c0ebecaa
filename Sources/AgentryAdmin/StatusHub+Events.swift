import AgentryCore
import NIOConcurrencyHelpers

/// Forwarded events in batches: however fast events are published, clients get at most one `events` message every
/// 100 ms (the flush loop's pace), so that a flood neither fills their outboxes (which would drop them) nor makes
/// a browser handle a message per event.
extension StatusHub {
    /// Events a batch carries at most, and their bytes at most: past either, the oldest of the batch are left out
    /// and counted in `omitted` (the page lists the newest few; counts over time come from the event log, not
    /// from here).
    static let eventBatchLimit = 500
    static let eventBatchBytes = 1 << 20

    /// Adds a forwarded event to the next batch.
    func enqueue(_ event: JSONValue) {
        let text = JSON.serialize(event)
        state.withLockedValue { s in
            s.eventBatch.append(text)
            s.eventBatchBytes += text.utf8.count
            var drop = 0
            while s.eventBatch.count - drop > 1,
                s.eventBatch.count - drop > Self.eventBatchLimit || s.eventBatchBytes > Self.eventBatchBytes
            {
                s.eventBatchBytes -= s.eventBatch[drop].utf8.count
                drop += 1
            }
            if drop > 0 {
                s.eventBatch.removeFirst(drop)
                s.eventsOmitted += drop
            }
        }
    }

    /// Sends the events gathered since the last flush as one `events` message (oldest first), if there are any.
    func flushEvents() {
        let (events, omitted) = state.withLockedValue { s -> ([String], Int) in
            defer {
                s.eventBatch = []
                s.eventBatchBytes = 0
                s.eventsOmitted = 0
            }
            return s.clients.isEmpty ? ([], 0) : (s.eventBatch, s.eventsOmitted)
        }
        guard !events.isEmpty else { return }
        // The events are serialized once, as they arrive; the batch is put together around them.
        broadcast("{\"type\":\"events\",\"omitted\":\(omitted),\"events\":[" + events.joined(separator: ",") + "]}")
    }
}
