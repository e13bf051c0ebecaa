import Foundation
import Testing

@testable import AgentryCore

/// A valid definition, 12 lines long: text appended to it starts on line 13.
let base = """
    metadata:
      id: probe
      name: Probe
      version: 1.0.0
      author: qa
      description: Probe agent.
    goal:
      type: continuous
      description: Probe.
    triggers:
      - type: alert.probe
        priority: high

    """

/// Every problem `yaml` has (none when it parses, which is recorded as a failure).
private func problems(_ yaml: String, file: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) -> [ValidationProblem] {
    do {
        _ = try AgentDefinition.parse(yaml: yaml, file: file)
        Issue.record("expected validation problems, the definition parsed", sourceLocation: sourceLocation)
        return []
    } catch {
        return error.problems
    }
}

/// The one problem `yaml` has.
private func problem(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> ValidationProblem? {
    let found = problems(yaml, sourceLocation: sourceLocation)
    #expect(found.count == 1, "problems: \(found.map(\.description))", sourceLocation: sourceLocation)
    return found.first
}

private func expectProblem(
    _ p: ValidationProblem?, path: String, line: Int?, column: Int?, message: String,
    suggestion: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let p else {
        Issue.record("no problem reported", sourceLocation: sourceLocation)
        return
    }
    #expect(p.path == path, sourceLocation: sourceLocation)
    #expect(p.line == line, sourceLocation: sourceLocation)
    #expect(p.column == column, sourceLocation: sourceLocation)
    #expect(p.message == message, sourceLocation: sourceLocation)
    #expect(p.suggestion == suggestion, sourceLocation: sourceLocation)
}

@Suite("AgentDefinition validation")
struct AgentDefinitionValidationTests {
    @Test("the base definition is valid")
    func baseIsValid() throws {
        #expect(try AgentDefinition.parse(yaml: base).metadata.id == "probe")
    }

    // MARK: YAML itself

    @Test("a YAML syntax error reports the line and column of the parser")
    func syntaxError() {
        expectProblem(
            problem(base + "config:\n  max_parallel_tasks: [1, 2\n"),
            path: "", line: 15, column: 1,
            message: "invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence at line 14, column 23)")
    }

    @Test("a key given twice in one mapping is reported at its first occurrence")
    func duplicateKey() {
        expectProblem(
            problem(base + "goal:\n  type: continuous\n"),
            path: "", line: 7, column: 1, message: "duplicate key 'goal' in one mapping; each key may appear once")
    }

    @Test("an empty document and a document that is not a mapping")
    func emptyAndNotMapping() {
        expectProblem(
            problem("# nothing here\n"), path: "", line: 1, column: 1,
            message: "the document is empty; expected a mapping with metadata, goal and triggers")
        expectProblem(
            problem("- just\n- a list\n"), path: "", line: 1, column: 1,
            message: "expected a mapping with metadata, goal and triggers, found a list")
    }

    // MARK: Keys

    @Test("an unknown top-level key, with a did-you-mean by edit distance")
    func unknownTopLevelKey() {
        expectProblem(
            problem(base + "skils: [screenshot]\n"),
            path: "skils", line: 13, column: 1,
            message:
                "unknown key 'skils' at the top level; expected one of metadata, goal, triggers, event_pools, subagents, skills, permissions, config, handler, resources, uses, retry, on_busy, worker_labels, budgets, flow, cancel_on",
            suggestion: "did you mean 'skills'?")
    }

    @Test("an unknown nested key, with a did-you-mean by prefix, and without one when nothing is close")
    func unknownNestedKey() {
        expectProblem(
            problem(base + "config:\n  max_parallel: 2\n"),
            path: "config.max_parallel", line: 14, column: 3,
            message:
                "unknown key 'max_parallel' in config; expected one of max_parallel_tasks, approval_required_for, auto_retry, feedback_collection, timeout_seconds, task_events",
            suggestion: "did you mean 'max_parallel_tasks'?")
        expectProblem(
            problem(base + "retry:\n  backoff:\n    colour: red\n"),
            path: "retry.backoff.colour", line: 15, column: 5,
            message: "unknown key 'colour' in retry.backoff; expected one of initial_seconds, max_seconds, multiplier")
    }

    @Test("a misspelt key in a trigger is unknown, and the key it should have been is missing")
    func misspeltTriggerKey() {
        let found = problems(
            """
            metadata: {id: a, name: A, version: 1.0.0, author: me, description: d}
            goal: {type: continuous, description: g}
            triggers:
              - type: alert.x
                priorty: high
            """)
        #expect(found.count == 2)
        expectProblem(found.first, path: "triggers[0].priority", line: 4, column: 5, message: "missing required field 'priority'")
        expectProblem(
            found.last, path: "triggers[0].priorty", line: 5, column: 5,
            message:
                "unknown key 'priorty' in triggers[0]; expected one of type, priority, filters, schedule, time_zone, payload, missed, jitter_seconds, description",
            suggestion: "did you mean 'priority'?")
    }

    // MARK: Required fields and types

    @Test("a missing required field is reported at the mapping that lacks it")
    func missingRequiredField() {
        expectProblem(
            problem(base.replacingOccurrences(of: "  author: qa\n", with: "")),
            path: "metadata.author", line: 2, column: 3, message: "missing required field 'author'")
        expectProblem(
            problem("metadata: {id: a, name: A, version: 1.0.0, author: me, description: d}\ntriggers: []\n"),
            path: "goal", line: 1, column: 1, message: "missing required field 'goal'")
        expectProblem(
            problem(base + "subagents:\n  - id: helper\n    version: ^1.0.0\n"),
            path: "subagents[0].delegate_for", line: 14, column: 5, message: "missing required field 'delegate_for'")
    }

    @Test("a value of the wrong type says what was expected and what was found")
    func wrongTypes() {
        expectProblem(
            problem(base + "skills: screenshot\n"),
            path: "skills", line: 13, column: 9, message: "expected a list of strings, found a string ('screenshot')")
        expectProblem(
            problem(base + "config: 5\n"),
            path: "config", line: 13, column: 9, message: "expected a mapping, found a number ('5')")
        expectProblem(
            problem(base + "config:\n  auto_retry: \"yes\"\n"),
            path: "config.auto_retry", line: 14, column: 15, message: "expected true or false, found a string ('yes')")
        expectProblem(
            problem(base + "config:\n  timeout_seconds: 1.5\n"),
            path: "config.timeout_seconds", line: 14, column: 20, message: "expected a whole number, found a number ('1.5')")
        expectProblem(
            problem(base + "event_pools: [[a]]\n"),
            path: "event_pools[0]", line: 13, column: 15, message: "expected a string, found a list")
        expectProblem(
            problem(base.replacingOccurrences(of: "  name: Probe", with: "  name:")),
            path: "metadata.name", line: 3, column: 8, message: "expected a string, found nothing")
        expectProblem(
            problem(base.replacingOccurrences(of: "    priority: high", with: "    priority: high\n    filters: [a]")),
            path: "triggers[0].filters", line: 13, column: 14, message: "expected a mapping, found a list")
    }

    // MARK: Versions

    @Test("metadata.version must be a semantic version")
    func metadataVersion() {
        expectProblem(
            problem(base.replacingOccurrences(of: "version: 1.0.0", with: "version: 1.2")),
            path: "metadata.version", line: 4, column: 12,
            message: "'1.2' is not a semantic version: expected MAJOR.MINOR.PATCH such as 1.2.0")
    }

    @Test("subagents[].version must be a version range")
    func subagentRange() throws {
        let p = try #require(problem(base + "subagents:\n  - id: helper\n    version: \"~>1.0\"\n    delegate_for: [x]\n"))
        #expect(p.path == "subagents[0].version" && p.line == 15 && p.column == 14)
        do {
            _ = try VersionRange(validating: "~>1.0")
            Issue.record("'~>1.0' should not be a range")
        } catch {
            #expect(p.message == error.message)
        }
    }

    // MARK: Triggers

    @Test("trigger priorities are known names, with a did-you-mean for typos")
    func unknownPriority() {
        expectProblem(
            problem(base.replacingOccurrences(of: "priority: high", with: "priority: urgent")),
            path: "triggers[0].priority", line: 12, column: 15,
            message: "expected one of critical, high, normal, low; found 'urgent'")
        expectProblem(
            problem(base.replacingOccurrences(of: "priority: high", with: "priority: hgih")),
            path: "triggers[0].priority", line: 12, column: 15,
            message: "expected one of critical, high, normal, low; found 'hgih'", suggestion: "did you mean 'high'?")
    }

    @Test("trigger types are valid topic patterns")
    func triggerPattern() {
        expectProblem(
            problem(base.replacingOccurrences(of: "type: alert.probe", with: "type: alert..probe")),
            path: "triggers[0].type", line: 11, column: 11,
            message: EventType.patternProblem(with: "alert..probe")!)
        expectProblem(
            problem(base.replacingOccurrences(of: "type: alert.probe", with: "type: alert.dev*")),
            path: "triggers[0].type", line: 11, column: 11,
            message: EventType.patternProblem(with: "alert.dev*")!)
    }

    @Test("trigger types are unique")
    func duplicateTriggerType() {
        expectProblem(
            problem(base + "  - type: alert.probe\n    priority: low\n"),
            path: "triggers[1].type", line: 13, column: 11,
            message: "trigger type 'alert.probe' already appears in triggers[0] (line 11); each type may appear once",
            suggestion: "merge the two triggers")
    }

    // MARK: Numbers

    @Test("counts and timeouts must be positive")
    func positiveNumbers() {
        expectProblem(
            problem(base + "config:\n  max_parallel_tasks: 0\n"),
            path: "config.max_parallel_tasks", line: 14, column: 23, message: "expected a positive whole number, found 0")
        expectProblem(
            problem(base + "config:\n  timeout_seconds: -5\n"),
            path: "config.timeout_seconds", line: 14, column: 20, message: "expected a positive whole number, found -5")
        expectProblem(
            problem(base + "retry:\n  attempts: 0\n"),
            path: "retry.attempts", line: 14, column: 13, message: "expected a positive whole number, found 0")
        expectProblem(
            problem(base + "handler:\n  http:\n    url: https://x.example\n    timeout_seconds: 0\n"),
            path: "handler.http.timeout_seconds", line: 16, column: 22, message: "expected a positive whole number, found 0")
        expectProblem(
            problem(base + "retry:\n  backoff: {initial_seconds: 10, max_seconds: 5}\n"),
            path: "retry.backoff.max_seconds", line: 14, column: 47, message: "expected at least initial_seconds (10), found 5")
        expectProblem(
            problem(base + "retry:\n  backoff: {multiplier: 0.5}\n"),
            path: "retry.backoff.multiplier", line: 14, column: 25, message: "expected a number of at least 1, found 0.5")
    }

    // MARK: Identity and goal

    @Test("the agent id is lowercase letters, digits, '-' and '_', 1…100 characters")
    func agentID() {
        expectProblem(
            problem(base.replacingOccurrences(of: "id: probe", with: "id: Probe")),
            path: "metadata.id", line: 2, column: 7,
            message: "id 'Probe' contains 'P'; use lowercase letters, digits, '-' and '_' (it becomes the queue name agentry.agent.<id>)",
            suggestion: "did you mean 'probe'?")
        expectProblem(
            problem(base.replacingOccurrences(of: "id: probe", with: "id: probe agent")),
            path: "metadata.id", line: 2, column: 7,
            message: "id 'probe agent' contains ' '; use lowercase letters, digits, '-' and '_' (it becomes the queue name agentry.agent.<id>)")
        let long = String(repeating: "a", count: 101)
        expectProblem(
            problem(base.replacingOccurrences(of: "id: probe", with: "id: \(long)")),
            path: "metadata.id", line: 2, column: 7, message: "id '\(long)' is 101 characters long; the limit is 100")
        expectProblem(
            problem(base.replacingOccurrences(of: "id: probe", with: "id: \"\"")),
            path: "metadata.id", line: 2, column: 7, message: "an id must not be empty; use lowercase letters, digits, '-' and '_'")
        #expect(AgentDefinition.idProblem(String(repeating: "a", count: 100)) == nil)
        #expect(AgentDefinition.idProblem("a-b_9") == nil)
    }

    @Test("goal.type is continuous or on-demand")
    func goalType() {
        expectProblem(
            problem(base.replacingOccurrences(of: "type: continuous", with: "type: on_demand")),
            path: "goal.type", line: 8, column: 9,
            message: "expected one of continuous, on-demand; found 'on_demand'", suggestion: "did you mean 'on-demand'?")
    }

    // MARK: Permissions

    @Test("permissions come from the vocabulary, and the message lists the allowed values")
    func permissions() {
        let found = problems(base + "permissions:\n  devices: [read, take-control]\n  external:\n    - jria\n")
        #expect(found.count == 2)
        expectProblem(
            found.first, path: "permissions.devices[1]", line: 14, column: 19,
            message: "unknown devices permission 'take-control'; expected one of read, take_control, reboot",
            suggestion: "did you mean 'take_control'?")
        expectProblem(
            found.last, path: "permissions.external[0]", line: 16, column: 7,
            message: "unknown external permission 'jria'; expected one of jira, slack, github, email, webhook",
            suggestion: "did you mean 'jira'?")
    }

    @Test("the vocabulary can be extended")
    func extendedVocabulary() throws {
        var vocabulary = AgentVocabulary.standard
        vocabulary.externalPermissions.append("pagerduty")
        vocabulary.resourceTypes.append("rack")
        let yaml = base + "permissions:\n  external: [pagerduty]\nresources: [\"rack:{{payload.rack}}\"]\n"
        let d = try AgentDefinition.parse(yaml: yaml, vocabulary: vocabulary)
        #expect(d.permissions.external == ["pagerduty"])
        #expect(problems(yaml).count == 2)
    }

    @Test("approval_required_for names a permission the agent holds")
    func approvals() {
        let found = problems(
            base + """
                permissions:
                  devices: [read, take_control]
                config:
                  approval_required_for:
                    - read
                    - devices.reboot
                    - teleport
                    - take_control
                    - devices.take-control

                """)
        #expect(found.count == 4)
        expectProblem(
            found[0], path: "config.approval_required_for[0]", line: 17, column: 7,
            message: "permission 'read' belongs to several sections; write 'devices.read' or 'database.read'",
            suggestion: "did you mean 'devices.read' or 'database.read'?")
        expectProblem(
            found[1], path: "config.approval_required_for[1]", line: 18, column: 7,
            message: "approval is required for 'devices.reboot', but permissions.devices does not grant 'reboot'",
            suggestion: "add 'reboot' to permissions.devices, or remove this entry")
        #expect(found[2].path == "config.approval_required_for[2]" && found[2].line == 19 && found[2].column == 7)
        #expect(
            found[2].message.hasPrefix("unknown permission 'teleport'; expected <section>.<permission>, one of devices.read, devices.take_control"))
        #expect(found[2].suggestion == nil)
        expectProblem(
            found[3], path: "config.approval_required_for[4]", line: 21, column: 7,
            message: found[3].message, suggestion: "did you mean 'devices.take_control'?")
    }

    // MARK: Handler

    @Test("a handler has exactly one kind")
    func handlerKinds() {
        expectProblem(
            problem(base + "handler:\n  exec: {command: [a]}\n  http: {url: 'https://x'}\n"),
            path: "handler", line: 14, column: 3,
            message: "expected exactly one of exec, http, builtin, emit, delegate, llm; found exec and http")
        expectProblem(
            problem(base + "handler: {}\n"),
            path: "handler", line: 13, column: 10, message: "expected exactly one of exec, http, builtin, emit, delegate, llm; found none")
        expectProblem(
            problem(base + "handler:\n  shell: {command: [a]}\n"),
            path: "handler.shell", line: 14, column: 3,
            message: "unknown key 'shell' in handler; expected one of exec, http, builtin, emit, delegate, llm")
        expectProblem(
            problem(base + "handler: exec\n"),
            path: "handler", line: 13, column: 10,
            message: "expected a mapping with one of exec, http, builtin, emit, delegate, llm, found a string ('exec')")
    }

    @Test("exec needs a non-empty command")
    func execCommand() {
        expectProblem(
            problem(base + "handler:\n  exec:\n    command: []\n"),
            path: "handler.exec.command", line: 15, column: 14,
            message: "expected the program and its arguments, found an empty list")
        expectProblem(
            problem(base + "handler:\n  exec:\n    command: /bin/check --fast\n"),
            path: "handler.exec.command", line: 15, column: 14,
            message: "expected a list of strings, found a string ('/bin/check --fast')")
        expectProblem(
            problem(base + "handler:\n  exec:\n    env: {A: b}\n"),
            path: "handler.exec.command", line: 15, column: 5, message: "missing required field 'command'")
    }

    @Test("http needs an absolute http or https URL")
    func httpURL() {
        expectProblem(
            problem(base + "handler:\n  http:\n    url: ftp://files.example/x\n"),
            path: "handler.http.url", line: 15, column: 10,
            message: "expected an http:// or https:// URL, found scheme 'ftp' in 'ftp://files.example/x'")
        expectProblem(
            problem(base + "handler:\n  http:\n    url: /hooks/agentry\n"),
            path: "handler.http.url", line: 15, column: 10,
            message: "expected an absolute http:// or https:// URL, found '/hooks/agentry'")
    }

    @Test("builtin is noop or log; emit is its own key")
    func builtin() {
        expectProblem(
            problem(base + "handler:\n  builtin: nop\n"),
            path: "handler.builtin", line: 14, column: 12,
            message: "expected one of noop, log; found 'nop' (exec, http, emit and llm are keys of handler)",
            suggestion: "did you mean 'noop'?")
        expectProblem(
            problem(base + "handler:\n  builtin: emit\n"),
            path: "handler.builtin", line: 14, column: 12,
            message: "the emit handler takes settings; write 'emit: {type: …, payload: …}' under handler in place of 'builtin: emit'")
    }

    @Test("emit needs an event type (not a pattern) and a known priority")
    func emitHandler() {
        let found = problems(base + "handler:\n  emit:\n    type: report.*\n    priority: asap\n")
        #expect(found.count == 2)
        expectProblem(
            found.first, path: "handler.emit.type", line: 15, column: 11,
            message: EventType.problem(with: "report.*")!)
        expectProblem(
            found.last, path: "handler.emit.priority", line: 16, column: 15,
            message: "expected one of critical, high, normal, low; found 'asap'")
    }

    // MARK: Templates and resources

    @Test("templates in resources name real parts of an event; the column points at the template")
    func resourceTemplates() {
        let controlling = base + "permissions: {devices: [take_control]}\n"
        expectProblem(
            problem(controlling + "resources:\n  - device:{{event.device_id}}\n"),
            path: "resources[0]", line: 15, column: 12,
            message:
                "template '{{event.device_id}}' refers to 'event', which is not part of an event; use one of id, type, priority, timestamp, source, correlation_id or payload.<path>",
            suggestion: "did you mean '{{payload.device_id}}'?")
        expectProblem(
            problem(controlling + "resources:\n  - \"device:{{ device_id }}\"\n"),
            path: "resources[0]", line: 15, column: 13,
            message:
                "template '{{ device_id }}' refers to 'device_id', which is not part of an event; use one of id, type, priority, timestamp, source, correlation_id or payload.<path>",
            suggestion: "did you mean '{{payload.device_id}}'?")
        expectProblem(
            problem(controlling + "resources:\n  - 'device:{{payload}}'\n"),
            path: "resources[0]", line: 15, column: 13,
            message: "template '{{payload}}' names the whole payload; name a field: payload.<path>")
        expectProblem(
            problem(controlling + "resources:\n  - device:{{payload.device_id\n"),
            path: "resources[0]", line: 15, column: 12,
            message: "template at '{{payload.device_id' has no closing '}}'")
    }

    @Test("templates in the emit payload are checked at any depth")
    func emitPayloadTemplates() throws {
        let found = problems(
            base + """
                handler:
                  emit:
                    type: report.requested
                    payload:
                      at: "at {{time}}"
                      nested:
                        - {id: "{{payloads.id}}"}
                      ok: "{{ correlation_id }} {{payload.a.0.b}} {{source}}"

                """)
        #expect(found.count == 2)
        expectProblem(
            found.first, path: "handler.emit.payload.at", line: 17, column: 15,
            message:
                "template '{{time}}' refers to 'time', which is not part of an event; use one of id, type, priority, timestamp, source, correlation_id or payload.<path>",
            suggestion: "did you mean '{{timestamp}}'?")
        expectProblem(
            found.last, path: "handler.emit.payload.nested[0].id", line: 19, column: 17,
            message:
                "template '{{payloads.id}}' refers to 'payloads', which is not part of an event; use one of id, type, priority, timestamp, source, correlation_id or payload.<path>",
            suggestion: "did you mean '{{payload.id}}'?")
    }

    @Test("locking a device takes control of it: permissions.devices must grant take_control")
    func deviceResourcesNeedTakeControl() {
        let found = problems(base + "permissions: {devices: [read]}\nresources:\n  - tree:main\n  - device:{{payload.device_id}}\n")
        #expect(found.count == 1)
        expectProblem(
            found.first, path: "resources[1]", line: 16, column: 5,
            message: "locking 'device:{{payload.device_id}}' takes control of a device, which permissions.devices does not grant",
            suggestion: "add take_control to permissions.devices")
        #expect(throws: Never.self) {
            try AgentDefinition.parse(yaml: base + "permissions: {devices: [read, take_control]}\nresources:\n  - device:{{payload.device_id}}\n")
        }
    }

    @Test("resources are <type>:<id-template> with a known type")
    func resourceForm() {
        let found = problems(base + "resources:\n  - screen-1\n  - phone:{{payload.id}}\n  - 'tree:'\n  - devise:x\n")
        #expect(found.count == 4)
        expectProblem(
            found[0], path: "resources[0]", line: 14, column: 5,
            message: "expected <type>:<id-template> with type one of device, tree, userinterface, found 'screen-1'",
            suggestion: "did you mean 'device:screen-1'?")
        expectProblem(
            found[1], path: "resources[1]", line: 15, column: 5,
            message: "unknown resource type 'phone' in 'phone:{{payload.id}}'; expected one of device, tree, userinterface")
        expectProblem(
            found[2], path: "resources[2]", line: 16, column: 5, message: "resource 'tree:' has no id after 'tree:'",
            suggestion: "did you mean 'tree:{{payload.tree_id}}'?")
        expectProblem(
            found[3], path: "resources[3]", line: 17, column: 5,
            message: "unknown resource type 'devise' in 'devise:x'; expected one of device, tree, userinterface",
            suggestion: "did you mean 'device'?")
    }

    @Test("the template scanner finds references and accepts every allowed root")
    func templateScanner() {
        let scan = EventTemplate.scan("{{id}}-{{ type }}/{{priority}}{{timestamp}}{{source}}{{correlation_id}}{{payload.a.b}}")
        #expect(scan.problems.isEmpty)
        #expect(scan.references.map(\.reference) == ["id", "type", "priority", "timestamp", "source", "correlation_id", "payload.a.b"])
        #expect(scan.references.map(\.offset) == [0, 7, 18, 30, 43, 53, 71])
        #expect(EventTemplate.scan("no templates { here }").references.isEmpty)
        #expect(EventTemplate.problem(withReference: "payload..x") != nil)
    }

    // MARK: on_busy, all at once, formatting

    @Test("on_busy is queue, drop or replace")
    func onBusy() {
        expectProblem(
            problem(base + "on_busy: wait\n"),
            path: "on_busy", line: 13, column: 10, message: "expected one of queue, drop, replace; found 'wait'")
        expectProblem(
            problem(base + "on_busy: Drop\n"),
            path: "on_busy", line: 13, column: 10, message: "expected one of queue, drop, replace; found 'Drop'",
            suggestion: "did you mean 'drop'?")
    }

    @Test("every problem is reported at once, in document order")
    func allAtOnce() {
        let found = problems(
            """
            metadata:
              id: X
              version: one
            goal: {type: sometimes, description: g}
            triggers:
              - {type: "a..b", priority: meh}
            config: {max_parallel_tasks: -1, auto_retry: maybe}
            on_busy: later

            """)
        #expect(
            found.map(\.path) == [
                "metadata.name", "metadata.author", "metadata.description", "metadata.id",
                "metadata.version", "goal.type", "triggers[0].type", "triggers[0].priority",
                "config.max_parallel_tasks", "config.auto_retry", "on_busy",
            ])
        #expect(found.allSatisfy { $0.line != nil && $0.column != nil })
    }

    @Test("the description reads file:line:column: path: message; suggestion")
    func descriptionFormat() {
        let p = ValidationProblem(
            file: "agent.yaml", path: "triggers[1].priority", line: 12, column: 15,
            message: "expected one of critical, high, normal, low; found 'urgent'")
        #expect(p.description == "agent.yaml:12:15: triggers[1].priority: expected one of critical, high, normal, low; found 'urgent'")
        var q = p
        q.suggestion = "did you mean 'high'?"
        q.message = "expected one of critical, high, normal, low; found 'hihg'"
        #expect(q.description.hasSuffix("found 'hihg'; did you mean 'high'?"))
        #expect(ValidationProblem(path: "", message: "invalid YAML: x").description == "invalid YAML: x")
        #expect(ValidationProblem(path: "goal", line: 3, column: 1, message: "m").description == "3:1: goal: m")

        let found = problems(base.replacingOccurrences(of: "priority: high", with: "priority: urgent"), file: "agent.yaml")
        #expect(found.map(\.description) == ["agent.yaml:12:15: triggers[0].priority: expected one of critical, high, normal, low; found 'urgent'"])
        #expect(AgentDefinitionError(problems: found + found).description.split(separator: "\n").count == 2)
    }

    @Test("did-you-mean: case, prefix, typo, shared beginning, nothing")
    func suggestions() {
        #expect(Suggest.closest(to: "HIGH", among: ["high", "low"]) == "high")
        #expect(Suggest.closest(to: "timeout", among: ["max_parallel_tasks", "timeout_seconds"]) == "timeout_seconds")
        #expect(Suggest.closest(to: "trigers", among: ["triggers", "goal"]) == "triggers")
        #expect(Suggest.closest(to: "hgih", among: ["high", "low"]) == "high")
        #expect(Suggest.closest(to: "approval_for", among: ["approval_required_for", "auto_retry"]) == "approval_required_for")
        #expect(Suggest.closest(to: "urgent", among: ["critical", "high", "normal", "low"]) == nil)
        #expect(Suggest.closest(to: "ab", among: ["id"]) == nil)
        #expect(Suggest.distance("kitten", "sitting") == 3)
        #expect(Suggest.distance("ab", "ba") == 1)
    }
}
