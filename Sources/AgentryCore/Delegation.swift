/// What a handler's result asks of its subagents: tasks to delegate and, optionally, to wait for.
///
/// In a result (exec's stdout, http's response, the `delegate` builtin):
///
/// ```json
/// {"delegate": [{"task": "reboot_device", "payload": {"device": "tv-1"}, "priority": "high"}],
///  "await": {"deadline_seconds": 600, "on_failure": "continue"}}
/// ```
///
/// Each task goes to the subagent whose `delegate_for` lists it (see ``SubagentResolution``) and runs there as a child
/// run of this one. Without `await` the run succeeds and its children run on their own; with `await` (an object, or
/// `true` for the defaults) the run waits, holding no slot, until every child has ended or the deadline passed, and its
/// handler is called again with the children's results.
public struct Delegation: Sendable, Hashable {
    public struct Task: Sendable, Hashable {
        /// The task's name, as a subagent's `delegate_for` lists it; the child's event type is `task.<name>`.
        public var name: String
        public var payload: JSONObject
        /// nil: the parent's event's priority. A task may raise it, never lower it.
        public var priority: Priority?

        public init(name: String, payload: JSONObject = [:], priority: Priority? = nil) {
            self.name = name
            self.payload = payload
            self.priority = priority
        }

        /// The child's event type.
        public var eventType: String { "task.\(name)" }
    }

    /// What a failed child does to a waiting parent.
    public enum FailurePolicy: String, Sendable, Hashable, CaseIterable {
        /// The parent fails as soon as a child fails (its handler is not called again).
        case fail
        /// The parent waits for every child and is called with each one's state.
        case `continue`
    }

    public struct Await: Sendable, Hashable {
        public var deadlineSeconds: Int
        public var onFailure: FailurePolicy

        public static let defaultDeadlineSeconds = 3600
        /// A week.
        public static let maxDeadlineSeconds = 604_800

        public init(deadlineSeconds: Int = Self.defaultDeadlineSeconds, onFailure: FailurePolicy = .fail) {
            self.deadlineSeconds = deadlineSeconds
            self.onFailure = onFailure
        }
    }

    public var tasks: [Task]
    /// How the run waits for its children; nil: it does not (fire and forget).
    public var awaiting: Await?

    public init(tasks: [Task], awaiting: Await? = nil) {
        self.tasks = tasks
        self.awaiting = awaiting
    }

    /// The delegation a result asks for: nil when it has no `delegate` key; a problem naming the bad field otherwise.
    public static func from(result: JSONObject) -> Result<Delegation, DelegationProblem>? {
        guard let value = result["delegate"] else { return nil }
        return parse(value, awaitValue: result["await"])
    }

    static func parse(_ value: JSONValue, awaitValue: JSONValue?) -> Result<Delegation, DelegationProblem> {
        let items: [JSONValue]
        switch value {
        case .array(let list): items = list
        case .object: items = [value]
        default: return .failure(DelegationProblem("'delegate' must be a list of tasks ({\"task\": …, \"payload\": {…}}), not \(value.kindName)"))
        }
        if items.isEmpty { return .failure(DelegationProblem("'delegate' lists no task")) }
        var tasks: [Task] = []
        for (index, item) in items.enumerated() {
            guard case .object(let object) = item else {
                return .failure(DelegationProblem("delegate[\(index)] must be an object with task and payload, not \(item.kindName)"))
            }
            guard let name = object["task"]?.stringValue, !name.isEmpty else {
                return .failure(DelegationProblem("delegate[\(index)] has no 'task' (the name a subagent's delegate_for lists)"))
            }
            if let problem = EventType.problem(with: "task.\(name)") {
                return .failure(DelegationProblem("delegate[\(index)].task '\(name)': \(problem)"))
            }
            var payload: JSONObject = [:]
            if let p = object["payload"] {
                guard case .object(let o) = p else { return .failure(DelegationProblem("delegate[\(index)].payload must be an object")) }
                payload = o
            }
            var priority: Priority?
            if let p = object["priority"] {
                guard let text = p.stringValue, let level = Priority(name: text) else {
                    return .failure(DelegationProblem("delegate[\(index)].priority must be one of critical, high, normal, low"))
                }
                priority = level
            }
            let known: Set<String> = ["task", "payload", "priority"]
            if let extra = object.keys.sorted().first(where: { !known.contains($0) }) {
                return .failure(DelegationProblem("delegate[\(index)] has an unknown key '\(extra)'; expected task, payload, priority"))
            }
            tasks.append(Task(name: name, payload: payload, priority: priority))
        }
        var policy: Await?
        switch awaitValue {
        case nil, .null?, .bool(false)?: policy = nil
        case .bool(true)?: policy = Await()
        case .object(let object)?:
            var wait = Await()
            if let d = object["deadline_seconds"] {
                guard let seconds = d.numberValue, seconds >= 1, seconds <= Double(Await.maxDeadlineSeconds), seconds == seconds.rounded() else {
                    return .failure(
                        DelegationProblem("await.deadline_seconds must be a whole number of seconds from 1 to \(Await.maxDeadlineSeconds)"))
                }
                wait.deadlineSeconds = Int(seconds)
            }
            if let f = object["on_failure"] {
                guard let text = f.stringValue, let policy = FailurePolicy(rawValue: text) else {
                    return .failure(DelegationProblem("await.on_failure must be 'fail' or 'continue'"))
                }
                wait.onFailure = policy
            }
            let known: Set<String> = ["deadline_seconds", "on_failure"]
            if let extra = object.keys.sorted().first(where: { !known.contains($0) }) {
                return .failure(DelegationProblem("await has an unknown key '\(extra)'; expected deadline_seconds, on_failure"))
            }
            policy = wait
        case let other?:
            return .failure(DelegationProblem("'await' must be true or an object with deadline_seconds and on_failure, not \(other.kindName)"))
        }
        return .success(Delegation(tasks: tasks, awaiting: policy))
    }
}

/// Why a delegation cannot go ahead; the run fails with this message.
public struct DelegationProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Bounds on run trees, against agents that delegate to each other without end.
public struct DelegationLimits: Sendable, Hashable {
    /// The deepest a child may be: a root run is at depth 0, its children at 1.
    public var maxDepth: Int
    /// The most children one run may ask for at a time.
    public var maxChildren: Int

    public init(maxDepth: Int = 5, maxChildren: Int = 100) {
        self.maxDepth = maxDepth
        self.maxChildren = maxChildren
    }

    /// Why a run at `depth` may not delegate these tasks, or nil.
    public func problem(depth: Int, tasks: Int) -> DelegationProblem? {
        if depth + 1 > maxDepth {
            return DelegationProblem(
                "delegation depth limit reached: this run is at depth \(depth) and its children would be at \(depth + 1), over the limit of \(maxDepth) (agents delegating to each other in a cycle?)"
            )
        }
        if tasks > maxChildren {
            return DelegationProblem("a run may delegate at most \(maxChildren) tasks at a time; this result asks for \(tasks)")
        }
        return nil
    }
}

/// Which subagent runs a delegated task: among the subagents the definition names whose `delegate_for` lists the task,
/// the first whose range holds a published version, at the highest published version inside that range.
public enum SubagentResolution {
    public struct Choice: Sendable, Hashable {
        public var agentID: String
        public var version: String
        public var range: String

        public init(agentID: String, version: String, range: String) {
            self.agentID = agentID
            self.version = version
            self.range = range
        }
    }

    /// `published`: each subagent's published versions (text as registered); a subagent absent from it has none.
    public static func choose(
        task: String, for definition: AgentDefinition, published: [String: [String]]
    ) -> Result<Choice, DelegationProblem> {
        let candidates = definition.subagents.filter { $0.delegateFor.contains(task) }
        if candidates.isEmpty {
            let offered = Set(definition.subagents.flatMap(\.delegateFor)).sorted()
            let listed = offered.isEmpty ? "it names no subagent" : "its subagents handle \(offered.joined(separator: ", "))"
            return .failure(
                DelegationProblem(
                    "no subagent of \(definition.metadata.id) handles task '\(task)': \(listed) (add the task to a subagent's delegate_for)"))
        }
        var tried: [String] = []
        for candidate in candidates {
            let versions = published[candidate.id] ?? []
            guard let range = VersionRange.parse(candidate.version) else {
                tried.append("\(candidate.id) \(candidate.version): not a version range")
                continue
            }
            let parsed = versions.compactMap { text in SemanticVersion.parse(text).map { (text, $0) } }
            if let best = range.highestMatch(in: parsed.map(\.1)), let text = parsed.first(where: { $0.1 == best })?.0 {
                return .success(Choice(agentID: candidate.id, version: text, range: candidate.version))
            }
            let have = versions.isEmpty ? "no published version" : "published: \(sortedVersions(versions).joined(separator: ", "))"
            tried.append("\(candidate.id) \(candidate.version) (\(have))")
        }
        return .failure(
            DelegationProblem("no published version of a subagent fits task '\(task)': \(tried.joined(separator: "; "))"))
    }

    static func sortedVersions(_ versions: [String]) -> [String] {
        versions.sorted { a, b in
            switch (SemanticVersion.parse(a), SemanticVersion.parse(b)) {
            case (let x?, let y?): return x < y
            default: return a < b
            }
        }
    }
}
