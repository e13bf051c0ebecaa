import Yams

extension AgentDefinition {
    /// The definition as YAML, in the seed's key order and with the seed's snake_case keys.
    ///
    /// Every seed section is written, defaults included (as the seed's `yaml.dump(agent.dict())` does); the new
    /// optional fields (`handler`, `resources`, `retry`, `on_busy`) only when they are set or differ from their
    /// default, so a seed-style definition exports as a seed-style file. Mappings from the file (filters, payloads,
    /// env, headers) are written with sorted keys, so that `parse(yaml: d.yaml())` equals `d` and exporting that
    /// again gives the same text.
    public func yaml() -> String {
        let node = YAMLWriter.definition(self)
        // Width -1: never fold long strings; the output stays line-for-line diffable.
        return (try? Yams.serialize(node: node, indent: 2, width: -1, allowUnicode: true)) ?? ""
    }
}

extension AgentDefinition {
    /// The definition as JSON: the tree ``yaml()`` writes, with the same keys and values. The registry stores it and
    /// reads it back with ``parse(yaml:file:vocabulary:)`` (JSON is YAML), so one reader and one writer hold the
    /// format.
    public func jsonValue() -> JSONValue {
        YAMLWriter.jsonValue(YAMLWriter.definition(self))
    }
}

/// Builds the node tree that `yaml()` serialises.
enum YAMLWriter {
    static func definition(_ d: AgentDefinition) -> Node {
        var pairs: [(String, Node)] = [
            ("metadata", metadata(d.metadata)),
            ("goal", mapping([("type", string(d.goal.type.rawValue)), ("description", string(d.goal.description))])),
            ("triggers", .sequence(.init(d.triggers.map(trigger)))),
            ("event_pools", strings(d.eventPools)),
            ("subagents", .sequence(.init(d.subagents.map(subagent)))),
            ("skills", strings(d.skills)),
            (
                "permissions",
                mapping([
                    ("devices", strings(d.permissions.devices)),
                    ("database", strings(d.permissions.database)),
                    ("external", strings(d.permissions.external)),
                ])
            ),
            (
                "config",
                mapping(
                    [
                        ("max_parallel_tasks", int(d.config.maxParallelTasks)),
                        ("approval_required_for", strings(d.config.approvalRequiredFor)),
                        ("auto_retry", bool(d.config.autoRetry)),
                        ("feedback_collection", bool(d.config.feedbackCollection)),
                        ("timeout_seconds", int(d.config.timeoutSeconds)),
                    ] + (d.config.taskEvents ? [] : [("task_events", bool(false))]))
            ),
        ]
        if let handler = d.handler { pairs.append(("handler", self.handler(handler))) }
        if !d.resources.isEmpty { pairs.append(("resources", strings(d.resources))) }
        if !d.uses.isEmpty { pairs.append(("uses", strings(d.uses))) }
        if let retry = d.retry { pairs.append(("retry", self.retry(retry))) }
        if d.onBusy != .queue { pairs.append(("on_busy", string(d.onBusy.rawValue))) }
        if !d.workerLabels.isEmpty {
            pairs.append(("worker_labels", mapping(d.workerLabels.sorted { $0.key < $1.key }.map { ($0.key, string($0.value)) })))
        }
        if !d.budgets.isEmpty { pairs.append(("budgets", .sequence(.init(d.budgets.map(budget))))) }
        if let flow = d.flow { pairs.append(("flow", self.flow(flow))) }
        if !d.cancelOn.isEmpty { pairs.append(("cancel_on", .sequence(.init(d.cancelOn.map(cancelOn))))) }
        return mapping(pairs)
    }

    /// One `cancel_on` entry: `match` as a string when it names one path, as a list otherwise.
    static func cancelOn(_ c: CancelOn) -> Node {
        mapping([("type", string(c.type)), ("match", c.match.count == 1 ? string(c.match[0]) : strings(c.match))])
    }

    static func metadata(_ m: AgentMetadata) -> Node {
        var pairs: [(String, Node)] = [
            ("id", string(m.id)),
            ("name", string(m.name)),
            ("version", string(m.version)),
            ("author", string(m.author)),
            ("description", string(m.description)),
        ]
        if let createdAt = m.createdAt { pairs.append(("created_at", string(createdAt))) }
        if let updatedAt = m.updatedAt { pairs.append(("updated_at", string(updatedAt))) }
        return mapping(pairs)
    }

    static func trigger(_ t: EventTrigger) -> Node {
        var pairs: [(String, Node)] = [("type", string(t.type)), ("priority", string(t.priority.name.lowercased()))]
        if let filters = t.filters { pairs.append(("filters", json(.object(filters)))) }
        if let schedule = t.schedule { pairs += self.schedule(schedule) }
        return mapping(pairs)
    }

    /// A schedule's keys in a trigger: `schedule` always, the others when they differ from their defaults.
    static func schedule(_ s: TriggerSchedule) -> [(String, Node)] {
        var pairs: [(String, Node)] = [("schedule", string(s.cron.text))]
        if s.timeZone != TriggerSchedule.defaultTimeZone { pairs.append(("time_zone", string(s.timeZone))) }
        if !s.payload.isEmpty { pairs.append(("payload", json(.object(s.payload)))) }
        if s.missed != .skip { pairs.append(("missed", string(s.missed.rawValue))) }
        if s.jitterSeconds != 0 { pairs.append(("jitter_seconds", int(s.jitterSeconds))) }
        if !s.description.isEmpty { pairs.append(("description", string(s.description))) }
        return pairs
    }

    static func subagent(_ s: SubagentReference) -> Node {
        mapping([("id", string(s.id)), ("version", string(s.version)), ("delegate_for", strings(s.delegateFor))])
    }

    static func handler(_ h: Handler) -> Node {
        switch h {
        case .exec(let e):
            var pairs: [(String, Node)] = [("command", strings(e.command))]
            if !e.env.isEmpty { pairs.append(("env", stringMap(e.env))) }
            if let directory = e.workingDirectory { pairs.append(("working_directory", string(directory))) }
            if let limits = e.limits {
                let entries: [(String, Int?)] = [
                    ("memory_mb", limits.memoryMB), ("cpu_seconds", limits.cpuSeconds),
                    ("open_files", limits.openFiles), ("processes", limits.processes),
                ]
                pairs.append(("limits", mapping(entries.compactMap { name, value in value.map { (name, int($0)) } })))
            }
            return mapping([("exec", mapping(pairs))])
        case .http(let h):
            var pairs: [(String, Node)] = [("url", string(h.url))]
            if !h.headers.isEmpty { pairs.append(("headers", stringMap(h.headers))) }
            if let timeout = h.timeoutSeconds { pairs.append(("timeout_seconds", int(timeout))) }
            if h.followRedirects { pairs.append(("follow_redirects", bool(true))) }
            return mapping([("http", mapping(pairs))])
        case .noop:
            return mapping([("builtin", string("noop"))])
        case .log:
            return mapping([("builtin", string("log"))])
        case .emit(let e):
            var pairs: [(String, Node)] = [("type", string(e.type))]
            if !e.payload.isEmpty { pairs.append(("payload", json(.object(e.payload)))) }
            if let priority = e.priority { pairs.append(("priority", string(priority.name.lowercased()))) }
            if let delay = e.delaySeconds { pairs.append(("delay_seconds", int(delay))) }
            return mapping([("emit", mapping(pairs))])
        case .delegate(let d):
            let request = d.request(for: Event(type: "none"))
            var pairs: [(String, Node)] = [
                (
                    "tasks",
                    json(
                        .array(
                            d.tasks.map { task in
                                var object: JSONObject = ["task": .string(task.name)]
                                if !task.payload.isEmpty { object["payload"] = .object(task.payload) }
                                if let priority = task.priority { object["priority"] = .string(priority.name.lowercased()) }
                                return .object(object)
                            }))
                )
            ]
            if let awaiting = request["await"] { pairs.append(("await", json(awaiting))) }
            return mapping([("delegate", mapping(pairs))])
        case .llm(let l):
            var pairs: [(String, Node)] = [("base_url", string(l.baseURL)), ("model", string(l.model))]
            if let system = l.system { pairs.append(("system", string(system))) }
            pairs.append(("prompt", string(l.prompt)))
            if let variable = l.apiKeyEnv { pairs.append(("api_key_env", string(variable))) }
            if let temperature = l.temperature { pairs.append(("temperature", number(temperature))) }
            if let maxTokens = l.maxTokens { pairs.append(("max_tokens", int(maxTokens))) }
            if l.json { pairs.append(("json", bool(true))) }
            if let timeout = l.timeoutSeconds { pairs.append(("timeout_seconds", int(timeout))) }
            if let retries = l.retries { pairs.append(("retries", int(retries))) }
            return mapping([("llm", mapping(pairs))])
        }
    }

    static func retry(_ r: RetryPolicy) -> Node {
        mapping([
            ("attempts", int(r.attempts)),
            (
                "backoff",
                mapping([
                    ("initial_seconds", number(r.backoff.initialSeconds)),
                    ("max_seconds", number(r.backoff.maxSeconds)),
                    ("multiplier", number(r.backoff.multiplier)),
                ])
            ),
        ])
    }

    // MARK: Scalars and collections

    static func mapping(_ pairs: [(String, Node)]) -> Node {
        .mapping(.init(pairs.map { (Node($0.0), $0.1) }))
    }

    /// A string that reads back as the same string: quoted when plain text would read as another type
    /// (`'true'`, `'1.0'`, `''`), literal block style when it has line breaks. libyaml quotes on its own what
    /// cannot be plain (`{{…}}`, `: `, leading `-`).
    static func string(_ text: String) -> Node {
        if text.contains("\n") { return .scalar(.init(text, Tag(.str), .literal)) }
        let plain = Node.Scalar(text)
        if Resolver.default.resolveTag(of: Node.scalar(plain)) != .str { return .scalar(.init(text, Tag(.str), .singleQuoted)) }
        return .scalar(plain)
    }

    static func strings(_ items: [String]) -> Node {
        .sequence(.init(items.map(string)))
    }

    static func stringMap(_ map: [String: String]) -> Node {
        .mapping(.init(map.sorted { $0.key < $1.key }.map { (string($0.key), string($0.value)) }))
    }

    static func int(_ value: Int) -> Node { .scalar(.init(String(value), Tag(.int))) }

    static func bool(_ value: Bool) -> Node { .scalar(.init(value ? "true" : "false", Tag(.bool))) }

    /// Whole numbers without a fraction (`60`), others as Swift prints them (`1.5`).
    static func number(_ value: Double) -> Node {
        if value == value.rounded(), abs(value) < 1e15 { return int(Int(value)) }
        return .scalar(.init(String(value), Tag(.float)))
    }

    /// The writer's tree as JSON: each scalar by the tag the writer gave it (plain scalars are strings).
    static func jsonValue(_ node: Node) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            switch Tag.Name(rawValue: scalar.tag.rawValue) {
            case .int: return Int64(scalar.string).map(JSONValue.int) ?? .string(scalar.string)
            case .bool: return .bool(scalar.string == "true")
            case .null: return .null
            case .float:
                switch scalar.string {
                case ".nan", ".inf", "-.inf": return .null  // JSON has no NaN or infinity
                default: return Double(scalar.string).map(JSONValue.double) ?? .string(scalar.string)
                }
            default: return .string(scalar.string)
            }
        case .sequence(let sequence):
            return .array(sequence.map(jsonValue))
        case .mapping(let mapping):
            var object: JSONObject = [:]
            for (key, value) in mapping { object[key.string ?? ""] = jsonValue(value) }
            return .object(object)
        case .alias:
            return .null  // the writer makes no aliases
        }
    }

    static func json(_ value: JSONValue) -> Node {
        switch value {
        case .null: return .scalar(.init("null", Tag(.null)))
        case .bool(let b): return bool(b)
        case .int(let i): return .scalar(.init(String(i), Tag(.int)))
        case .double(let d):
            // A double stays a double when read back: `2.0`, never `2`.
            if d.isNaN { return .scalar(.init(".nan", Tag(.float))) }
            if d.isInfinite { return .scalar(.init(d < 0 ? "-.inf" : ".inf", Tag(.float))) }
            return .scalar(.init(String(d), Tag(.float)))
        case .string(let s): return string(s)
        case .array(let items): return .sequence(.init(items.map(json)))
        case .object(let object):
            return .mapping(.init(object.sorted { $0.key < $1.key }.map { (string($0.key), json($0.value)) }))
        }
    }
}
