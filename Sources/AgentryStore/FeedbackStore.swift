public import AgentryCore
public import Foundation
public import Logging
import PostgresNIO

/// One piece of feedback on a run, as `run_feedback` keeps it.
public struct FeedbackRecord: Sendable, Hashable {
    public var feedbackID: UUID
    public var runID: UUID
    public var agentID: String
    public var agentVersion: String
    public var rating: Int?
    public var label: RunFeedback.Label?
    public var comment: String?
    /// Who gave it: `$USER (agentry runs feedback)`, `admin API (<authority>)`, or a `run.feedback` event's `by` (else
    /// its source).
    public var by: String
    /// The `run.feedback` event it came from, or nil.
    public var eventID: String?
    public var createdAt: Date
}

/// Feedback that cannot be recorded, and why: the run does not exist, has not finished, or its agent version does not
/// collect feedback (`config.feedback_collection: false`).
public struct FeedbackRefused: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: String, Sendable, Hashable {
        case unknownRun = "unknown_run"
        case notFinished = "not_finished"
        case collectionOff = "collection_off"
    }
    public var reason: Reason
    public var message: String
    public var description: String { message }
}

/// `run_feedback`: feedback on finished runs, checked against the run and its agent version's `feedback_collection`.
public struct FeedbackStore: Sendable {
    let database: Database
    let logger: Logger

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// Records feedback on a run. Throws ``FeedbackRefused`` when the run does not exist, is not finished, or its agent
    /// version has `feedback_collection` false. With `eventID` (a `run.feedback` event), an event recorded already
    /// records nothing and returns nil.
    @discardableResult
    public func record(_ feedback: RunFeedback, runID: UUID, by: String, eventID: String? = nil) async throws -> FeedbackRecord? {
        let run = runID.uuidString.lowercased()
        var found: (state: String, agentID: String, version: String, collects: Bool)?
        try await database.each(
            "read run \(run) for its feedback",
            """
            SELECT t.state, t.agent_id, t.agent_version,
                   coalesce((r.definition #>> '{config,feedback_collection}')::boolean, true)
            FROM task_runs t LEFT JOIN agent_registry r ON r.agent_id = t.agent_id AND r.version = t.agent_version
            WHERE t.run_id = \(runID)
            """, logger: logger
        ) { row in
            let (state, agent, version, collects) = try row.decode((String, String, String, Bool).self)
            found = (state, agent, version, collects)
        }
        guard let found else {
            throw FeedbackRefused(reason: .unknownRun, message: "no run \(run): feedback is taken only on runs that exist")
        }
        guard TaskRun.State(rawValue: found.state)?.isFinished ?? false else {
            throw FeedbackRefused(
                reason: .notFinished, message: "run \(run) is \(found.state), not finished: feedback is taken once a run has finished")
        }
        guard found.collects else {
            throw FeedbackRefused(
                reason: .collectionOff,
                message: "\(found.agentID) \(found.version) does not collect feedback (config.feedback_collection is false); run \(run) takes none")
        }
        let id = UUID()
        let label = feedback.label?.rawValue
        let rating = feedback.rating.map(Int16.init)
        var recorded: FeedbackRecord?
        try await database.each(
            "record feedback on run \(run)", writes: true,
            """
            INSERT INTO run_feedback (feedback_id, run_id, agent_id, agent_version, rating, label, comment, given_by, event_id)
            VALUES (\(id), \(runID), \(found.agentID), \(found.version), \(rating), \(label), \(feedback.comment), \(String(by.prefix(255))), \(eventID))
            ON CONFLICT (event_id) DO NOTHING
            RETURNING \(unescaped: Self.columns)
            """, logger: logger
        ) { row in recorded = try Self.record(row) }
        return recorded
    }

    /// The feedback on a run, oldest first; throws ``FeedbackRefused`` (`unknownRun`) when the run does not exist.
    public func feedback(onRun runID: UUID) async throws -> [FeedbackRecord] {
        var exists = false
        try await database.each("read run \(runID)", "SELECT 1 FROM task_runs WHERE run_id = \(runID)", logger: logger) { _ in exists = true }
        guard exists else {
            throw FeedbackRefused(reason: .unknownRun, message: "no run \(runID.uuidString.lowercased())")
        }
        var result: [FeedbackRecord] = []
        try await database.each(
            "read the feedback on run \(runID)",
            "SELECT \(unescaped: Self.columns) FROM run_feedback WHERE run_id = \(runID) ORDER BY created_at, feedback_id", logger: logger
        ) { row in result.append(try Self.record(row)) }
        return result
    }

    static let columns =
        "feedback_id, run_id, agent_id, agent_version, rating::int4, label, comment, given_by, event_id, extract(epoch FROM created_at)::float8"

    static func record(_ row: PostgresRow) throws -> FeedbackRecord {
        let (id, run, agent, version, rating, label, comment, by, event, created) = try row.decode(
            (UUID, UUID, String, String, Int32?, String?, String?, String, String?, Double).self)
        return FeedbackRecord(
            feedbackID: id, runID: run, agentID: agent, agentVersion: version, rating: rating.map(Int.init),
            label: label.flatMap(RunFeedback.Label.init(rawValue:)), comment: comment, by: by, eventID: event,
            createdAt: Date(timeIntervalSince1970: created))
    }
}

extension RuntimeStore {
    /// The feedback on runs of the same database.
    public var feedback: FeedbackStore { FeedbackStore(database: database, logger: logger) }
}
