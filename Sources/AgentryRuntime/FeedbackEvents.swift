import AgentryBus
public import AgentryCore
public import AgentryStore
import Foundation
public import Logging

/// `run.feedback` events: feedback that other agents (or anything that publishes events) give on a run, with the
/// payload `{"run_id", "rating", "label", "comment", "by"}`. The event log service records them as it logs them, once
/// per event id (a redelivered event records nothing twice). One that cannot be taken (a payload that does not read, a
/// run that does not exist, is not finished or does not collect feedback) is logged as a warning and counted in
/// `agentry_feedback_refused_total`, and the log goes on.
public struct FeedbackEvents: Sendable {
    public static let eventType = "run.feedback"

    let store: FeedbackStore
    let logger: Logger

    public init(store: FeedbackStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// Records the feedback of the `run.feedback` events among `events`. Throws only when the database fails (the
    /// batch is then tried again, which records nothing twice).
    public func record(_ events: [Event]) async throws {
        for event in events where event.type == Self.eventType {
            let refuse = { (reason: String, message: String) in
                AgentryMetrics.feedbackRefused(reason: reason)
                logger.warning(
                    "refusing the feedback of a run.feedback event: \(message)",
                    metadata: [
                        "agentry.event.id": "\(event.id)", "agentry.event.source": "\(event.source ?? "-")", "agentry.feedback.refused": "\(reason)",
                    ])
            }
            let read: RunFeedback.FromEvent
            switch RunFeedback.fromEvent(event.payload) {
            case .success(let value): read = value
            case .failure(let problem):
                refuse("invalid", problem.message)
                continue
            }
            let by = read.by ?? event.source ?? "run.feedback event \(event.id.rawValue)"
            do {
                if try await store.record(read.feedback, runID: read.runID, by: by, eventID: event.id.rawValue) != nil {
                    AgentryMetrics.feedbackRecorded(from: "event")
                }
            } catch let refused as FeedbackRefused {
                refuse(refused.reason.rawValue, refused.message)
            } catch let error as StoreError where error.isDataError {
                refuse("invalid", "the database refuses it: \(error.message)")
            }
        }
    }
}
