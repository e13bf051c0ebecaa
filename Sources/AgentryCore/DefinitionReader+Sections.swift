import Foundation
import Yams

extension DefinitionReader {
    // MARK: The definition

    mutating func definition(_ root: Node) -> AgentDefinition? {
        guard
            let fields = mapping(
                root, path: "", known: AgentDefinition.topLevelKeys,
                what: "a mapping with metadata, goal and triggers")
        else { return nil }
        var metadata: AgentMetadata?, goal: AgentGoal?, triggers: [EventTrigger]?
        if let node = value(fields, "metadata", required: true) { metadata = self.metadata(node) }
        if let node = value(fields, "goal", required: true) { goal = self.goal(node) }
        if let node = value(fields, "triggers", required: true) { triggers = self.triggers(node) }
        let pools = names(fields, "event_pools")
        var subagents: [SubagentReference] = []
        if let node = value(fields, "subagents", required: false) { subagents = self.subagents(node) ?? [] }
        let skills = names(fields, "skills")
        var permissions = AgentPermissions()
        if let node = value(fields, "permissions", required: false) { permissions = self.permissions(node) ?? permissions }
        var config = AgentConfig()
        if let node = value(fields, "config", required: false) { config = self.config(node, permissions: permissions) ?? config }
        var handler: Handler?
        if let node = value(fields, "handler", required: false) {
            handler = self.handler(node)
            if case .delegate(let d)? = handler {
                let offered = Set(subagents.flatMap(\.delegateFor))
                for task in d.tasks where !offered.contains(task.name) {
                    report(
                        "handler.delegate.tasks", node,
                        "task '\(task.name)' is in no subagent's delegate_for (\(offered.isEmpty ? "the agent names no subagent" : "they handle \(offered.sorted().joined(separator: ", "))"))",
                        suggestion: Suggest.didYouMean(task.name, among: offered.sorted()))
                }
            }
        }
        let resources = self.resources(fields, permissions: permissions)
        var retry: RetryPolicy?
        if let node = value(fields, "retry", required: false) { retry = self.retry(node) }
        var onBusy = BusyPolicy.queue
        if let node = value(fields, "on_busy", required: false), let name = string(node, path: "on_busy") {
            if let policy = BusyPolicy(rawValue: name) {
                onBusy = policy
            } else {
                let names = BusyPolicy.allCases.map(\.rawValue)
                report(
                    "on_busy", node, "expected one of \(names.joined(separator: ", ")); found '\(name)'",
                    suggestion: Suggest.didYouMean(name, among: names))
            }
        }
        let workerLabels = stringMap(fields, "worker_labels") ?? [:]
        var uses: [String] = []
        if let items = stringList(fields, "uses", required: false) {
            for item in items {
                if let qualified = checkPermission(
                    item.value, node: item.node, path: item.path, permissions: permissions, purpose: "the handler uses")
                {
                    uses.append(qualified)
                }
            }
        }
        var cancelOn: [CancelOn] = []
        if let node = value(fields, "cancel_on", required: false) { cancelOn = self.cancelOn(node) ?? [] }
        guard let metadata, let goal, let triggers else { return nil }
        var definition = AgentDefinition(
            metadata: metadata, goal: goal, triggers: triggers, eventPools: pools,
            subagents: subagents, skills: skills, permissions: permissions, config: config,
            handler: handler, resources: resources, retry: retry, onBusy: onBusy, workerLabels: workerLabels)
        definition.uses = uses
        if let node = value(fields, "budgets", required: false) { definition.budgets = budgets(node, path: "budgets") }
        if let node = value(fields, "flow", required: false) { definition.flow = flow(node) }
        definition.cancelOn = cancelOn
        return definition
    }

    mutating func metadata(_ node: Node) -> AgentMetadata? {
        let keys = AgentMetadata.CodingKeys.allCases.map(\.rawValue)
        guard let f = mapping(node, path: "metadata", known: keys) else { return nil }
        let id = string(f, "id", required: true)
        if let id, let problem = AgentDefinition.idProblem(id) {
            report(
                "metadata.id", f["id"], problem,
                suggestion: id.lowercased() != id && AgentDefinition.idProblem(id.lowercased()) == nil
                    ? "did you mean '\(id.lowercased())'?" : nil)
        }
        let name = string(f, "name", required: true)
        let version = string(f, "version", required: true)
        if let version {
            do throws(SemanticVersionError) {
                _ = try SemanticVersion(validating: version)
            } catch {
                report("metadata.version", f["version"], error.message)
            }
        }
        let author = string(f, "author", required: true)
        let description = string(f, "description", required: true)
        let createdAt = string(f, "created_at", required: false)
        let updatedAt = string(f, "updated_at", required: false)
        guard let id, let name, let version, let author, let description else { return nil }
        return AgentMetadata(
            id: id, name: name, version: version, author: author, description: description,
            createdAt: createdAt, updatedAt: updatedAt)
    }

    mutating func goal(_ node: Node) -> AgentGoal? {
        guard let f = mapping(node, path: "goal", known: ["type", "description"]) else { return nil }
        var type: AgentGoalType?
        if let text = string(f, "type", required: true) {
            type = AgentGoalType(rawValue: text)
            if type == nil {
                let names = AgentGoalType.allCases.map(\.rawValue)
                report(
                    "goal.type", f["type"], "expected one of \(names.joined(separator: ", ")); found '\(text)'",
                    suggestion: Suggest.didYouMean(text, among: names))
            }
        }
        let description = string(f, "description", required: true)
        guard let type, let description else { return nil }
        return AgentGoal(type: type, description: description)
    }

    mutating func triggers(_ node: Node) -> [EventTrigger]? {
        guard case .sequence(let sequence) = node else {
            report("triggers", node, "expected a list of triggers (each with type and priority), found \(Self.describe(node))")
            return nil
        }
        var triggers: [EventTrigger] = []
        var seen: [String: (index: Int, line: Int?)] = [:]
        var complete = true
        let keys = EventTrigger.CodingKeys.allCases.map(\.rawValue) + TriggerSchedule.CodingKeys.allCases.map(\.rawValue)
        for (index, item) in sequence.enumerated() {
            let path = "triggers[\(index)]"
            guard let f = mapping(item, path: path, known: keys, what: "a trigger mapping with type and priority") else {
                complete = false
                continue
            }
            let scheduled = f["schedule"] != nil
            var type = string(f, "type", required: true)
            if let pattern = type {
                if scheduled, let problem = EventType.problem(with: pattern) {
                    report(
                        f.path("type"), f["type"],
                        "\(problem) (a schedule trigger publishes events of its type: one event type, not a pattern)")
                    type = nil
                } else if let problem = EventType.patternProblem(with: pattern) {
                    report(f.path("type"), f["type"], problem)
                    type = nil
                } else if let first = seen[pattern] {
                    let at = first.line.map { " (line \($0))" } ?? ""
                    report(
                        f.path("type"), f["type"],
                        "trigger type '\(pattern)' already appears in triggers[\(first.index)]\(at); each type may appear once",
                        suggestion: "merge the two triggers")
                } else {
                    seen[pattern] = (index, f["type"]?.mark?.line)
                }
            }
            var priority: Priority? = scheduled ? EventTrigger.defaultSchedulePriority : nil
            if let node = value(f, "priority", required: !scheduled) { priority = self.priority(node, path: f.path("priority")) }
            let filters = jsonObject(f, "filters")
            if let filters {
                for problem in TriggerFilter.problems(filters) {
                    report(f.path("filters"), f["filters"], problem)
                }
            }
            var schedule: TriggerSchedule?
            if scheduled {
                schedule = self.schedule(f)
            } else {
                scheduleKeysWithoutSchedule(f)
            }
            if let type, let priority, schedule != nil || !scheduled {
                triggers.append(EventTrigger(type: type, priority: priority, filters: filters, schedule: schedule))
            } else {
                complete = false
            }
        }
        return complete ? triggers : nil
    }

    /// A list of non-empty names (event_pools, skills); `[]` when absent.
    mutating func names(_ fields: Fields, _ key: String) -> [String] {
        guard let items = stringList(fields, key, required: false) else { return [] }
        for item in items where item.value.trimmingCharacters(in: .whitespaces).isEmpty {
            report(item.path, item.node, "expected a name, found an empty string")
        }
        return items.map(\.value)
    }

    mutating func subagents(_ node: Node) -> [SubagentReference]? {
        guard case .sequence(let sequence) = node else {
            report("subagents", node, "expected a list of subagents (each with id, version and delegate_for), found \(Self.describe(node))")
            return nil
        }
        let keys = SubagentReference.CodingKeys.allCases.map(\.rawValue)
        var result: [SubagentReference] = []
        for (index, item) in sequence.enumerated() {
            let path = "subagents[\(index)]"
            guard
                let f = mapping(
                    item, path: path, known: keys,
                    what: "a subagent mapping with id, version and delegate_for")
            else { continue }
            let id = string(f, "id", required: true)
            if let id, let problem = AgentDefinition.idProblem(id) {
                report(f.path("id"), f["id"], problem)
            }
            let version = string(f, "version", required: true)
            if let version {
                do throws(SemanticVersionError) {
                    _ = try VersionRange(validating: version)
                } catch {
                    report(f.path("version"), f["version"], error.message)
                }
            }
            let delegateFor = stringList(f, "delegate_for", required: true)
            if let id, let version, let delegateFor {
                result.append(SubagentReference(id: id, version: version, delegateFor: delegateFor.map(\.value)))
            }
        }
        return result
    }

    mutating func permissions(_ node: Node) -> AgentPermissions? {
        let sections = vocabulary.permissionSections
        guard let f = mapping(node, path: "permissions", known: sections.map(\.section)) else { return nil }
        var lists: [String: [String]] = [:]
        for (section, allowed) in sections {
            guard let items = stringList(f, section, required: false) else { continue }
            for item in items where !allowed.contains(item.value) {
                report(
                    item.path, item.node,
                    "unknown \(section) permission '\(item.value)'; expected one of \(allowed.joined(separator: ", "))",
                    suggestion: Suggest.didYouMean(item.value, among: allowed))
            }
            lists[section] = items.map(\.value)
        }
        return AgentPermissions(
            devices: lists["devices"] ?? [], database: lists["database"] ?? [],
            external: lists["external"] ?? [])
    }

    mutating func config(_ node: Node, permissions: AgentPermissions) -> AgentConfig? {
        let keys = AgentConfig.CodingKeys.allCases.map(\.rawValue)
        guard let f = mapping(node, path: "config", known: keys) else { return nil }
        var config = AgentConfig()
        if let n = int(f, "max_parallel_tasks", positive: true) { config.maxParallelTasks = n }
        if let items = stringList(f, "approval_required_for", required: false) {
            for item in items { checkApproval(item.value, node: item.node, path: item.path, permissions: permissions) }
            config.approvalRequiredFor = items.map(\.value)
        }
        if let flag = bool(f, "auto_retry") { config.autoRetry = flag }
        if let flag = bool(f, "feedback_collection") { config.feedbackCollection = flag }
        if let n = int(f, "timeout_seconds", positive: true) { config.timeoutSeconds = n }
        if let flag = bool(f, "task_events") { config.taskEvents = flag }
        return config
    }

    /// An approval entry names a permission: `<section>.<permission>` or a permission of exactly one section; the
    /// agent must hold it.
    mutating func checkApproval(_ entry: String, node: Node, path: String, permissions: AgentPermissions) {
        _ = checkPermission(entry, node: node, path: path, permissions: permissions, purpose: "approval is required for")
    }

    /// A permission entry (`devices.reboot`, or `reboot` when one section has it) that the agent must hold; returns its
    /// qualified form, or nil after reporting what is wrong.
    mutating func checkPermission(_ entry: String, node: Node, path: String, permissions: AgentPermissions, purpose: String) -> String? {
        let sections = vocabulary.permissionSections
        let qualified = sections.flatMap { section in section.allowed.map { "\(section.section).\($0)" } }
        var resolved: (section: String, permission: String)?
        if let dot = entry.firstIndex(of: "."), let section = sections.first(where: { $0.section == entry[..<dot] }) {
            let permission = String(entry[entry.index(after: dot)...])
            if section.allowed.contains(permission) { resolved = (section.section, permission) }
        }
        if resolved == nil {
            let owners = sections.filter { $0.allowed.contains(entry) }
            if owners.count == 1 {
                resolved = (owners[0].section, entry)
            } else if owners.count > 1 {
                let options = owners.map { "'\($0.section).\(entry)'" }.joined(separator: " or ")
                report(
                    path, node, "permission '\(entry)' belongs to several sections; write \(options)",
                    suggestion: "did you mean \(options)?")
                return nil
            }
        }
        guard let resolved else {
            report(
                path, node, "unknown permission '\(entry)'; expected <section>.<permission>, one of \(qualified.joined(separator: ", "))",
                suggestion: Suggest.didYouMean(entry, among: qualified))
            return nil
        }
        if !permissions.granted(in: resolved.section).contains(resolved.permission) {
            report(
                path, node,
                "\(purpose) '\(entry)', but permissions.\(resolved.section) does not grant '\(resolved.permission)'",
                suggestion: "add '\(resolved.permission)' to permissions.\(resolved.section), or remove this entry")
            return nil
        }
        return "\(resolved.section).\(resolved.permission)"
    }

    /// `delegate: {tasks: [{task, payload, priority}], await: true | {deadline_seconds, on_failure}}`, read as the
    /// result it stands for is read (the same checks, the same messages).
    mutating func delegateHandler(_ body: Node) -> Handler? {
        guard let d = mapping(body, path: "handler.delegate", known: ["tasks", "await"]) else { return nil }
        guard let tasksNode = value(d, "tasks", required: true) else { return nil }
        let tasks = json(tasksNode, path: "handler.delegate.tasks")
        let awaitValue = d["await"].map { json($0, path: "handler.delegate.await") }
        switch Delegation.parse(tasks, awaitValue: awaitValue) {
        case .success(let delegation):
            if case .sequence(let items) = tasksNode {
                for (index, item) in items.enumerated() {
                    if case .mapping(let entries) = item, let payload = entries.first(where: { $0.key.string == "payload" })?.value {
                        checkPayloadTemplates(payload, path: "handler.delegate.tasks[\(index)].payload")
                    }
                }
            }
            return .delegate(DelegateHandler(tasks: delegation.tasks, awaiting: delegation.awaiting))
        case .failure(let problem):
            report("handler.delegate", body, problem.description.replacingOccurrences(of: "delegate[", with: "tasks["))
            return nil
        }
    }

    mutating func handler(_ node: Node) -> Handler? {
        guard
            let f = mapping(
                node, path: "handler", known: Handler.kinds,
                what: "a mapping with one of exec, http, builtin, emit, delegate, llm")
        else { return nil }
        let present = Handler.kinds.filter { f[$0] != nil }
        guard present.count == 1, let kind = present.first, let body = f[kind] else {
            if present.isEmpty {
                // Unknown keys were reported already, with the kinds that exist.
                if case .mapping(let entries) = node, !entries.isEmpty { return nil }
                report("handler", node, "expected exactly one of exec, http, builtin, emit, delegate, llm; found none")
            } else {
                report(
                    "handler", node,
                    "expected exactly one of exec, http, builtin, emit, delegate, llm; found \(present.joined(separator: " and "))")
            }
            return nil
        }
        switch kind {
        case "exec":
            return execHandler(body)
        case "http":
            return httpHandler(body)
        case "delegate":
            return delegateHandler(body)
        case "llm":
            return llmHandler(body)
        case "builtin":
            guard let name = string(body, path: "handler.builtin") else { return nil }
            switch name {
            case "noop": return .noop
            case "log": return .log
            case "emit":
                report(
                    "handler.builtin", body,
                    "the emit handler takes settings; write 'emit: {type: …, payload: …}' under handler in place of 'builtin: emit'")
                return nil
            default:
                report(
                    "handler.builtin", body,
                    "expected one of \(Handler.builtinNames.joined(separator: ", ")); found '\(name)' (exec, http, emit and llm are keys of handler)",
                    suggestion: Suggest.didYouMean(name, among: Handler.builtinNames))
                return nil
            }
        default:
            guard let e = mapping(body, path: "handler.emit", known: EmitHandler.CodingKeys.allCases.map(\.rawValue))
            else { return nil }
            var type = string(e, "type", required: true)
            if let text = type, let problem = EventType.problem(with: text) {
                report("handler.emit.type", e["type"], problem)
                type = nil
            }
            let payload = jsonObject(e, "payload") ?? [:]
            if let payloadNode = e["payload"] { checkPayloadTemplates(payloadNode, path: "handler.emit.payload") }
            var priority: Priority?
            var priorityOK = true
            if let node = value(e, "priority", required: false) {
                priority = self.priority(node, path: "handler.emit.priority")
                priorityOK = priority != nil
            }
            var delay = int(e, "delay_seconds", positive: false)
            if let seconds = delay, !(0...EmitHandler.maxDelaySeconds).contains(seconds) {
                report("handler.emit.delay_seconds", e["delay_seconds"], "expected 0 to \(EmitHandler.maxDelaySeconds) seconds, found \(seconds)")
                delay = nil
                priorityOK = false
            }
            guard let type, priorityOK else { return nil }
            return .emit(EmitHandler(type: type, payload: payload, priority: priority, delaySeconds: delay))
        }
    }

    mutating func checkPayloadTemplates(_ node: Node, path: String) {
        switch node {
        case .scalar(let scalar) where Resolver.default.resolveTag(of: Node.scalar(scalar)) == .str:
            checkTemplates(scalar.string, node: node, path: path)
        case .sequence(let sequence):
            for (index, item) in sequence.enumerated() { checkPayloadTemplates(item, path: "\(path)[\(index)]") }
        case .mapping(let mapping):
            for (keyNode, valueNode) in mapping {
                checkPayloadTemplates(valueNode, path: "\(path).\(keyNode.string ?? "?")")
            }
        default:
            break
        }
    }

    static func urlProblem(_ url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            return "expected an absolute http:// or https:// URL, found '\(url)'"
        }
        guard scheme == "http" || scheme == "https" else {
            return "expected an http:// or https:// URL, found scheme '\(scheme)' in '\(url)'"
        }
        guard let host = components.host, !host.isEmpty else {
            return "expected an absolute http:// or https:// URL with a host, found '\(url)'"
        }
        return nil
    }

    mutating func resources(_ fields: Fields, permissions: AgentPermissions) -> [String] {
        guard let items = stringList(fields, "resources", required: false) else { return [] }
        let types = vocabulary.resourceTypes
        for item in items {
            guard let colon = item.value.firstIndex(of: ":") else {
                report(
                    item.path, item.node,
                    "expected <type>:<id-template> with type one of \(types.joined(separator: ", ")), found '\(item.value)'",
                    suggestion: "did you mean 'device:\(item.value)'?")
                continue
            }
            let type = String(item.value[..<colon])
            let id = String(item.value[item.value.index(after: colon)...])
            if !types.contains(type) {
                report(
                    item.path, item.node,
                    "unknown resource type '\(type)' in '\(item.value)'; expected one of \(types.joined(separator: ", "))",
                    suggestion: Suggest.didYouMean(type, among: types))
            }
            if type == "device", !permissions.devices.contains("take_control") {
                report(
                    item.path, item.node,
                    "locking '\(item.value)' takes control of a device, which permissions.devices does not grant",
                    suggestion: "add take_control to permissions.devices")
            }
            if id.trimmingCharacters(in: .whitespaces).isEmpty {
                report(
                    item.path, item.node, "resource '\(item.value)' has no id after '\(type):'",
                    suggestion: "did you mean '\(type):{{payload.\(type)_id}}'?")
            }
            checkTemplates(item.value, node: item.node, path: item.path)
        }
        return items.map(\.value)
    }

    mutating func retry(_ node: Node) -> RetryPolicy? {
        guard let f = mapping(node, path: "retry", known: RetryPolicy.CodingKeys.allCases.map(\.rawValue)) else { return nil }
        var policy = RetryPolicy()
        if let n = int(f, "attempts", positive: true) { policy.attempts = n }
        if let backoffNode = value(f, "backoff", required: false),
            let b = mapping(backoffNode, path: "retry.backoff", known: RetryPolicy.Backoff.CodingKeys.allCases.map(\.rawValue))
        {
            if let v = double(b, "initial_seconds") {
                if v > 0 {
                    policy.backoff.initialSeconds = v
                } else {
                    report(b.path("initial_seconds"), b["initial_seconds"], "expected a positive number of seconds, found \(v.agentYAMLText)")
                }
            }
            if let v = double(b, "max_seconds") {
                if v >= policy.backoff.initialSeconds {
                    policy.backoff.maxSeconds = v
                } else {
                    report(
                        b.path("max_seconds"), b["max_seconds"],
                        "expected at least initial_seconds (\(policy.backoff.initialSeconds.agentYAMLText)), found \(v.agentYAMLText)")
                }
            }
            if let v = double(b, "multiplier") {
                if v >= 1 {
                    policy.backoff.multiplier = v
                } else {
                    report(b.path("multiplier"), b["multiplier"], "expected a number of at least 1, found \(v.agentYAMLText)")
                }
            }
        }
        return policy
    }
}

extension Double {
    /// `1` for whole numbers, `1.5` otherwise: as a user would write it.
    var agentYAMLText: String {
        if self == rounded(), abs(self) < 1e15 { return String(Int64(self)) }
        return String(self)
    }
}
