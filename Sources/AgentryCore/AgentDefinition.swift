/// An agent, as declared in its YAML file: the seed's `AgentDefinition` (metadata, goal, triggers, event_pools,
/// subagents, skills, permissions, config) plus what the seed leaves out: what a task runs (`handler`), which
/// resources it locks (`resources`), how failed runs are retried (`retry`) and what happens to an event that
/// arrives while the agent is busy (`on_busy`).
///
/// Required and defaulted sections. The seed's pydantic model has no defaults for any top-level section. Here
/// `metadata`, `goal` and `triggers` stay required, but `event_pools`, `subagents` and `skills` default to `[]`,
/// each list of `permissions` defaults to `[]`, and a missing `config` means every config default: that is what
/// a user writing a small agent expects, and every file the seed accepts is still accepted with the same meaning.
/// The new fields are all optional: no `handler` means the built-in `log` handler, no `retry` means the default
/// ``RetryPolicy``, no `on_busy` means `queue`.
///
/// YAML and JSON use the seed's snake_case keys. Read YAML with ``parse(yaml:file:vocabulary:)`` (which reports
/// every problem with its line and column) and write it with ``yaml()``; its JSON form (stored by the registry,
/// shown by the API) is the same tree as JSON, ``jsonValue()``, and reads back through the same reader (JSON is YAML).
public struct AgentDefinition: Sendable, Hashable {
    public var metadata: AgentMetadata
    public var goal: AgentGoal
    public var triggers: [EventTrigger]
    /// Names of the event pools the agent draws from (YAML `event_pools`); default `[]`.
    public var eventPools: [String]
    /// Default `[]`.
    public var subagents: [SubagentReference]
    /// Default `[]`.
    public var skills: [String]
    public var permissions: AgentPermissions
    public var config: AgentConfig
    /// What a task runs; nil (absent) means the built-in `log` handler, see ``effectiveHandler``.
    public var handler: Handler?
    /// Resources every task locks before it runs, `<type>:<id-template>`, e.g. `device:{{payload.device_id}}`;
    /// default `[]`. Types: ``AgentVocabulary/resourceTypes``; templates: ``EventTemplate``.
    public var resources: [String]
    /// How failed runs are retried; nil (absent) means the default ``RetryPolicy``, see ``effectiveRetry``.
    public var retry: RetryPolicy?
    /// What to do with an event that arrives while `max_parallel_tasks` runs are going (YAML `on_busy`); default `queue`.
    public var onBusy: BusyPolicy
    /// Labels a worker must carry to serve this agent (YAML `worker_labels`, e.g. `{lab: lab-1}` for an agent that
    /// needs the devices of one lab); default `{}`, any worker. Workers get labels with `agentry worker --label`.
    public var workerLabels: [String: String]
    /// Permissions every run of the handler uses (YAML `uses`, e.g. `[devices.reboot]`); each must be granted in
    /// `permissions`. Those that `config.approval_required_for` lists make every run wait for an approval before its
    /// handler starts (as does `devices.take_control` for an agent that locks devices). Default `[]`.
    public var uses: [String] = []
    /// Spending limits per period (YAML `budgets`), checked before each run starts; default `[]`. See ``Budget``.
    public var budgets: [Budget] = []
    /// Per-key concurrency, rate, debounce and expiry (YAML `flow`); nil means none. See ``FlowControl``.
    public var flow: FlowControl?
    /// Events that cancel the agent's runs for the same thing (YAML `cancel_on`, see ``CancelOn``); default `[]`.
    public var cancelOn: [CancelOn] = []

    public init(
        metadata: AgentMetadata, goal: AgentGoal, triggers: [EventTrigger], eventPools: [String] = [],
        subagents: [SubagentReference] = [], skills: [String] = [], permissions: AgentPermissions = AgentPermissions(),
        config: AgentConfig = AgentConfig(), handler: Handler? = nil, resources: [String] = [],
        retry: RetryPolicy? = nil, onBusy: BusyPolicy = .queue, workerLabels: [String: String] = [:]
    ) {
        self.metadata = metadata
        self.goal = goal
        self.triggers = triggers
        self.eventPools = eventPools
        self.subagents = subagents
        self.skills = skills
        self.permissions = permissions
        self.config = config
        self.handler = handler
        self.resources = resources
        self.retry = retry
        self.onBusy = onBusy
        self.workerLabels = workerLabels
    }

    /// The handler that runs: ``handler``, or `log` when none is declared.
    public var effectiveHandler: Handler { handler ?? .log }

    /// The retry policy that applies: ``retry``, or the default policy when none is declared.
    public var effectiveRetry: RetryPolicy { retry ?? RetryPolicy() }

    /// The agent's work queue, `agentry.agent.<id>`.
    public var queueName: String { "agentry.agent.\(metadata.id)" }

    /// Skills the agent uses, each once, in order of first appearance (checked against the registry at publish time).
    public var referencedSkills: [String] { Self.unique(skills) }

    /// Event pools the agent draws from, each once, in order of first appearance.
    public var referencedPools: [String] { Self.unique(eventPools) }

    /// Subagents the agent delegates to, each (id, version range) once, in order of first appearance.
    public var referencedSubagents: [SubagentReference] {
        var seen = Set<String>()
        return subagents.filter { seen.insert("\($0.id)\u{0}\($0.version)").inserted }
    }

    private static func unique(_ names: [String]) -> [String] {
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case metadata, goal, triggers
        case eventPools = "event_pools"
        case subagents, skills, permissions, config, handler, resources, uses, retry
        case onBusy = "on_busy"
        case workerLabels = "worker_labels"
        case budgets, flow
        case cancelOn = "cancel_on"
    }

}

/// Who the agent is. `id` becomes the queue name `agentry.agent.<id>`: lowercase letters, digits, `-` and `_`,
/// 1…100 characters. `version` is a semantic version (`1.2.0`).
public struct AgentMetadata: Sendable, Hashable {
    public var id: String
    public var name: String
    public var version: String
    public var author: String
    public var description: String
    /// Free text as the seed has it (usually ISO 8601); optional.
    public var createdAt: String?
    public var updatedAt: String?

    public init(
        id: String, name: String, version: String, author: String, description: String,
        createdAt: String? = nil, updatedAt: String? = nil
    ) {
        self.id = id
        self.name = name
        self.version = version
        self.author = author
        self.description = description
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, name, version, author, description
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

/// The seed's `AgentGoalType`.
public enum AgentGoalType: String, Sendable, Hashable, CaseIterable {
    case continuous
    case onDemand = "on-demand"
}

public struct AgentGoal: Sendable, Hashable {
    public var type: AgentGoalType
    public var description: String

    public init(type: AgentGoalType, description: String) {
        self.type = type
        self.description = description
    }
}

/// Which events start a task: `type` is an AMQP topic pattern (`alert.*`, `build.#`), `priority` the seed's trigger
/// priority (kept in the registry's triggers; the order in the agent's queue follows each event's own priority),
/// `filters` an optional object matched against the payload.
///
/// A trigger with a `schedule` also makes the events: at each tick the scheduler publishes an event of `type` (then
/// a concrete event type, not a pattern) with `priority` (optional in YAML for such a trigger, default `normal`) and
/// the schedule's payload; see ``TriggerSchedule``.
public struct EventTrigger: Sendable, Hashable {
    public var type: String
    public var priority: Priority
    public var filters: JSONObject?
    /// When set, the trigger publishes its own events on this schedule; nil (the default) for a trigger that only
    /// receives events.
    public var schedule: TriggerSchedule?

    public init(type: String, priority: Priority, filters: JSONObject? = nil, schedule: TriggerSchedule? = nil) {
        self.type = type
        self.priority = priority
        self.filters = filters
        self.schedule = schedule
    }

    /// The priority of a schedule trigger that does not name one.
    public static let defaultSchedulePriority = Priority.normal

    enum CodingKeys: String, CodingKey, CaseIterable {
        case type, priority, filters
    }

}

/// Another agent this one delegates to: `version` is a range (`>=1.0.0`, `2.1.0`), `delegate_for` the tasks it handles.
public struct SubagentReference: Sendable, Hashable {
    public var id: String
    public var version: String
    public var delegateFor: [String]

    public init(id: String, version: String, delegateFor: [String]) {
        self.id = id
        self.version = version
        self.delegateFor = delegateFor
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, version
        case delegateFor = "delegate_for"
    }
}

/// What the agent may do; each list defaults to `[]`. Allowed values: ``AgentVocabulary``.
public struct AgentPermissions: Sendable, Hashable {
    public var devices: [String]
    public var database: [String]
    public var external: [String]

    public init(devices: [String] = [], database: [String] = [], external: [String] = []) {
        self.devices = devices
        self.database = database
        self.external = external
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case devices, database, external
    }

    /// The permissions of one section (`devices`, `database`, `external`).
    public func granted(in section: String) -> [String] {
        switch section {
        case "devices": return devices
        case "database": return database
        case "external": return external
        default: return []
        }
    }
}

/// The seed's `AgentConfig`; every field is optional in YAML and JSON, with the seed's defaults.
public struct AgentConfig: Sendable, Hashable {
    /// Default 3; must be positive.
    public var maxParallelTasks: Int
    /// Permissions that need a human's approval before use, as `<section>.<permission>` (`devices.reboot`) or a
    /// permission name that belongs to one section only (`reboot`); each must be granted in `permissions`. Default `[]`.
    public var approvalRequiredFor: [String]
    /// Default true.
    public var autoRetry: Bool
    /// Default true.
    public var feedbackCollection: Bool
    /// Default 3600; must be positive.
    public var timeoutSeconds: Int
    /// Whether each task announces itself with `agent.task.started`, `agent.task.completed` and `agent.task.failed`
    /// (not in the seed). Default true; a high-volume agent can switch them off, its runs are still recorded.
    public var taskEvents: Bool

    public init(
        maxParallelTasks: Int = 3, approvalRequiredFor: [String] = [], autoRetry: Bool = true,
        feedbackCollection: Bool = true, timeoutSeconds: Int = 3600, taskEvents: Bool = true
    ) {
        self.maxParallelTasks = maxParallelTasks
        self.approvalRequiredFor = approvalRequiredFor
        self.autoRetry = autoRetry
        self.feedbackCollection = feedbackCollection
        self.timeoutSeconds = timeoutSeconds
        self.taskEvents = taskEvents
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case maxParallelTasks = "max_parallel_tasks"
        case approvalRequiredFor = "approval_required_for"
        case autoRetry = "auto_retry"
        case feedbackCollection = "feedback_collection"
        case timeoutSeconds = "timeout_seconds"
        case taskEvents = "task_events"
    }

}

/// What one task runs. In YAML (and JSON) `handler` is a mapping with exactly one key naming the kind:
///
/// ```yaml
/// handler:
///   exec:                      # run a program; the event arrives as JSON on stdin
///     command: [/usr/local/bin/check-screen, --fast]
///     env: {LOG_LEVEL: debug}  # optional
///     working_directory: /srv  # optional
/// handler:
///   http:                      # POST the event as JSON
///     url: https://deploy.example.com/hooks/agentry
///     headers: {X-Team: qa}    # optional
///     timeout_seconds: 30      # optional; default: config.timeout_seconds
/// handler:
///   builtin: log               # or noop
/// handler:
///   delegate:                  # delegate tasks to subagents (see DelegateHandler)
///     tasks: [{task: reboot_device, payload: {device_id: "{{payload.device_id}}"}}]
///     await: true
/// handler:
///   emit:                      # publish a follow-up event
///     type: report.requested
///     payload: {device: "{{payload.device_id}}"}
///     priority: high           # optional; default: the triggering event's priority
/// handler:
///   llm:                       # ask a language model (see LLMHandler)
///     base_url: https://api.openai.com/v1
///     model: gpt-4o-mini
///     prompt: "Device {{payload.device_id}} shows a black screen. What next?"
/// ```
///
/// No `handler` at all means `builtin: log`.
public enum Handler: Sendable, Hashable {
    case exec(ExecHandler)
    case http(HTTPHandler)
    /// Does nothing; the run succeeds.
    case noop
    /// Logs the event; the run succeeds. The default handler.
    case log
    case emit(EmitHandler)
    case delegate(DelegateHandler)
    case llm(LLMHandler)

    /// The kinds, as the keys of the YAML mapping.
    public static let kinds = ["exec", "http", "builtin", "emit", "delegate", "llm"]
    /// The values of `builtin`.
    public static let builtinNames = ["noop", "log"]

    enum CodingKeys: String, CodingKey {
        case exec, http, builtin, emit, delegate, llm
    }

}

/// Runs a program with an argv (never through a shell); the event arrives as JSON on stdin.
public struct ExecHandler: Sendable, Hashable {
    /// argv: the program, then its arguments. Must not be empty.
    public var command: [String]
    /// Extra environment variables; default `[:]`.
    public var env: [String: String]
    /// Where the program runs; nil means the worker's directory.
    public var workingDirectory: String?
    /// Resource limits; nil means the defaults (see ``ExecLimits``).
    public var limits: ExecLimits?

    public init(command: [String], env: [String: String] = [:], workingDirectory: String? = nil, limits: ExecLimits? = nil) {
        self.command = command
        self.env = env
        self.workingDirectory = workingDirectory
        self.limits = limits
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case command, env
        case workingDirectory = "working_directory"
        case limits
    }

}

/// POSTs the event as JSON to an http or https URL.
public struct HTTPHandler: Sendable, Hashable {
    /// Absolute `http://` or `https://` URL.
    public var url: String
    /// Extra request headers; default `[:]`.
    public var headers: [String: String]
    /// Request timeout; nil means `config.timeout_seconds`. Must be positive.
    public var timeoutSeconds: Int?
    /// Whether 3xx answers are followed (at most 5 hops, never from https to http, never to another host when the
    /// definition sets headers). Default false: a redirect fails the run.
    public var followRedirects: Bool

    public init(url: String, headers: [String: String] = [:], timeoutSeconds: Int? = nil, followRedirects: Bool = false) {
        self.url = url
        self.headers = headers
        self.timeoutSeconds = timeoutSeconds
        self.followRedirects = followRedirects
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case url, headers
        case timeoutSeconds = "timeout_seconds"
        case followRedirects = "follow_redirects"
    }

}

/// Publishes a follow-up event. String values in `payload` may hold templates (``EventTemplate``) that are filled
/// from the triggering event.
public struct EmitHandler: Sendable, Hashable {
    /// The follow-up event's type (an event type, not a pattern).
    public var type: String
    /// Default `[:]`.
    public var payload: JSONObject
    /// nil means the triggering event's priority.
    public var priority: Priority?
    /// Deliver the event this many seconds after the run succeeds (kept in PostgreSQL until then); nil: at once.
    public var delaySeconds: Int?

    /// The longest delay: a year and a day.
    public static let maxDelaySeconds = 31_622_400

    public init(type: String, payload: JSONObject = [:], priority: Priority? = nil, delaySeconds: Int? = nil) {
        self.type = type
        self.payload = payload
        self.priority = priority
        self.delaySeconds = delaySeconds
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case type, payload, priority
        case delaySeconds = "delay_seconds"
    }

}

/// Delegates tasks to the agent's subagents and, with `awaiting`, waits for them: what an exec handler's result
/// `{"delegate": […], "await": …}` does, written in the definition. String values in the payloads may hold templates
/// filled from the event. Called again with the children, the run succeeds with `{"children": […]}` as its result.
///
/// ```yaml
/// handler:
///   delegate:
///     tasks:
///       - task: reboot_device
///         payload: {device_id: "{{payload.device_id}}"}
///     await: {deadline_seconds: 600, on_failure: continue}   # or `await: true`; none: do not wait
/// ```
public struct DelegateHandler: Sendable, Hashable {
    public var tasks: [Delegation.Task]
    public var awaiting: Delegation.Await?

    public init(tasks: [Delegation.Task], awaiting: Delegation.Await? = nil) {
        self.tasks = tasks
        self.awaiting = awaiting
    }

    /// The result the handler answers its first call with (its payloads filled from `event`).
    public func request(for event: Event) -> JSONObject {
        let tasks: [JSONValue] = tasks.map { task in
            var object: JSONObject = ["task": .string(task.name)]
            let payload = EventTemplate.render(.object(task.payload), with: event)
            if case .object(let filled) = payload, !filled.isEmpty { object["payload"] = .object(filled) }
            if let priority = task.priority { object["priority"] = .string(priority.name.lowercased()) }
            return .object(object)
        }
        var result: JSONObject = ["delegate": .array(tasks)]
        if let awaiting {
            result["await"] = .object(["deadline_seconds": .int(Int64(awaiting.deadlineSeconds)), "on_failure": .string(awaiting.onFailure.rawValue)])
        }
        return result
    }
}

/// How many times a failed run is tried in all, and how long to wait between tries.
public struct RetryPolicy: Sendable, Hashable {
    /// Tries in all, the first included; default 3; must be positive.
    public var attempts: Int
    public var backoff: Backoff

    public init(attempts: Int = 3, backoff: Backoff = Backoff()) {
        self.attempts = attempts
        self.backoff = backoff
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case attempts, backoff
    }

    /// Exponential backoff: the wait before try `n + 1` (n ≥ 1) is `initial × multiplier^(n−1)`, at most `max`.
    public struct Backoff: Sendable, Hashable {
        /// Default 1 second; must be positive.
        public var initialSeconds: Double
        /// Default 60 seconds; at least `initial_seconds`.
        public var maxSeconds: Double
        /// Default 2; at least 1.
        public var multiplier: Double

        public init(initialSeconds: Double = 1, maxSeconds: Double = 60, multiplier: Double = 2) {
            self.initialSeconds = initialSeconds
            self.maxSeconds = maxSeconds
            self.multiplier = multiplier
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case initialSeconds = "initial_seconds"
            case maxSeconds = "max_seconds"
            case multiplier
        }

        /// The wait after failed try `attempt` (1-based).
        public func delay(afterAttempt attempt: Int) -> Double {
            guard attempt >= 1 else { return 0 }
            var delay = initialSeconds
            for _ in 1..<attempt {
                delay *= multiplier
                if delay >= maxSeconds { return maxSeconds }
            }
            return min(delay, maxSeconds)
        }
    }
}

/// What happens to an event that arrives while the agent already runs `max_parallel_tasks` tasks.
public enum BusyPolicy: String, Sendable, Hashable, CaseIterable {
    /// Wait in the queue until a slot frees (never dropped: the seed's runtime dropped such events).
    case queue
    /// Drop the new event (it is still logged).
    case drop
    /// Drop the waiting events of this agent in favour of the new one.
    case replace
}

/// The allowed values of the closed vocabularies in an agent definition, in one place so that they are easy to
/// extend: pass your own to ``AgentDefinition/parse(yaml:file:vocabulary:)``, or add to ``standard``.
public struct AgentVocabulary: Sendable, Hashable {
    /// `permissions.devices`.
    public var devicePermissions: [String]
    /// `permissions.database`.
    public var databasePermissions: [String]
    /// `permissions.external`.
    public var externalPermissions: [String]
    /// Types of `resources` entries (`<type>:<id-template>`).
    public var resourceTypes: [String]

    public init(
        devicePermissions: [String], databasePermissions: [String], externalPermissions: [String],
        resourceTypes: [String]
    ) {
        self.devicePermissions = devicePermissions
        self.databasePermissions = databasePermissions
        self.externalPermissions = externalPermissions
        self.resourceTypes = resourceTypes
    }

    public static let standard = AgentVocabulary(
        devicePermissions: ["read", "take_control", "reboot"],
        databasePermissions: ["read", "write", "write.testcases", "write.results"],
        externalPermissions: ["jira", "slack", "github", "email", "webhook"],
        resourceTypes: ["device", "tree", "userinterface"]
    )

    /// The permission sections in YAML order, with their allowed values.
    public var permissionSections: [(section: String, allowed: [String])] {
        [("devices", devicePermissions), ("database", databasePermissions), ("external", externalPermissions)]
    }
}
