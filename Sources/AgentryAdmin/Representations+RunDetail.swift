public import AgentryCore
import AgentryRuntime
public import AgentryStore
import Foundation

/// Everything a run's page shows, gathered by `GET /api/runs/{run_id}`.
public struct RunDetail: Sendable {
    public var run: TaskRun
    public var children: [ChildRecord]
    /// Its event (nil when neither the log nor its runs keep it).
    public var event: Event?
    public var facts: RuntimeStore.AttemptFacts
    public var locks: [RunLock]
    public var followUps: [Event]

    public init(run: TaskRun, children: [ChildRecord], event: Event?, facts: RuntimeStore.AttemptFacts, locks: [RunLock], followUps: [Event]) {
        self.run = run
        self.children = children
        self.event = event
        self.facts = facts
        self.locks = locks
        self.followUps = followUps
    }
}

extension Representation {
    /// How much of a run's output and of its stderr the detail carries (characters): a page refreshed while the run
    /// goes on stays light, and the whole is one link away (`GET /api/runs/{run_id}/output`).
    public static let detailTextLimit = 16_384

    /// `GET /api/runs/{run_id}`: the run, its tree's next level, its event, its attempts, its timings, its output and
    /// stderr cut at ``detailTextLimit``, its locks, its follow-up events and what may be done with it.
    public static func runDetail(_ detail: RunDetail) -> JSONValue {
        guard case .object(var object) = run(detail.run, children: detail.children) else { return run(detail.run, children: detail.children) }
        object["event"] = detail.event.map(event) ?? .null
        object["attempts"] = .array(detail.facts.attempts.map(attempt))
        object["timings"] = timings(detail.run.timings)
        for (field, text) in [("output", detail.run.output), ("stderr", detail.run.stderr)] {
            let size = text?.count ?? 0
            object[field] = text.map { .string(size > detailTextLimit ? String($0.prefix(detailTextLimit)) : $0) } ?? .null
            object["\(field)_cut"] = .bool(size > detailTextLimit)
            object["\(field)_size"] = .int(Int64(size))
        }
        object["locks"] = .array(detail.locks.map(\.jsonValue))
        object["follow_ups"] = .array(detail.followUps.map(event))
        let decision = RunRetry.decide(detail.run, detail.facts)
        var retryAs: JSONValue = .null
        var refused: JSONValue = .null
        switch decision {
        case .attempt: retryAs = "attempt"
        case .copy: retryAs = "copy"
        case .refused(let why): refused = .string(why)
        }
        object["actions"] = .object([
            "cancel": .bool(RunRetry.cancellable(detail.run, detail.facts)), "retry": .bool(refused == .null), "retry_as": retryAs,
            "retry_refused": refused,
        ])
        return .object(object)
    }

    /// One attempt in a run's detail: the run without its result, output and stderr.
    static func attempt(_ attempt: TaskRun) -> JSONValue {
        guard case .object(var object) = run(attempt) else { return run(attempt) }
        for field in ["result", "output", "stderr"] { object[field] = .null }
        return .object(object)
    }

    static func timings(_ t: RunTimings) -> JSONValue {
        func ms(_ seconds: TimeInterval?) -> JSONValue { seconds.map { .double(($0 * 10_000).rounded() / 10) } ?? .null }
        return .object([
            "published_at": time(t.published), "received_at": time(t.received), "started_at": time(t.started), "finished_at": time(t.finished),
            "broker_ms": ms(t.inBroker), "worker_ms": ms(t.inWorker), "run_ms": ms(t.running),
        ])
    }
}
