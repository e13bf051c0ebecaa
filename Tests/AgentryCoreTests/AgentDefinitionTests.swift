import Foundation
import Testing

@testable import AgentryCore

/// The repository root, found from this file's path (Tests/AgentryCoreTests/<file>).
let agentExamplesDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("examples/agents")

/// The example bundles' sources (examples/bundles/<id>/agents/<id>.yaml).
let bundledExamplesDirectory = agentExamplesDirectory.deletingLastPathComponent().appendingPathComponent("bundles")

/// An example by file name: `examples/agents/NAME`, or `bundles/ID/agents/ID.yaml` for a bundled one.
func readAgentExample(_ name: String) throws -> String {
    let url =
        name.hasPrefix("bundles/")
        ? agentExamplesDirectory.deletingLastPathComponent().appendingPathComponent(name)
        : agentExamplesDirectory.appendingPathComponent(name)
    return try String(contentsOf: url, encoding: .utf8)
}

/// Every example: those of examples/agents, then those of the example bundles.
func agentExampleFiles() throws -> [String] {
    let plain = try FileManager.default.contentsOfDirectory(atPath: agentExamplesDirectory.path)
        .filter { $0.hasSuffix(".yaml") }
        .sorted()
    let bundled = try FileManager.default.contentsOfDirectory(atPath: bundledExamplesDirectory.path).sorted()
        .map { "bundles/\($0)/agents/\($0).yaml" }
    return plain + bundled
}

func parseAgentExample(_ name: String) throws -> AgentDefinition {
    do {
        return try AgentDefinition.parse(yaml: try readAgentExample(name), file: name)
    } catch let error as AgentDefinitionError {
        Issue.record("\(name) does not parse:\n\(error)")
        throw error
    }
}

@Suite("AgentDefinition: format, examples, export")
struct AgentDefinitionTests {
    @Test("the seed-style example parses with the seed's values and defaults")
    func seedExample() throws {
        let d = try parseAgentExample("seed-minimal.yaml")
        #expect(
            d.metadata
                == AgentMetadata(
                    id: "blackscreen-triage", name: "Blackscreen triage", version: "1.0.0",
                    author: "qa-team",
                    description: "Looks at devices that report a black screen and files a ticket.",
                    createdAt: "2024-01-15T10:00:00Z", updatedAt: "2024-01-15T10:00:00Z"))
        #expect(d.goal == AgentGoal(type: .continuous, description: "Keep every test device showing a picture."))
        #expect(
            d.triggers == [
                EventTrigger(type: "alert.blackscreen", priority: .critical),
                EventTrigger(type: "alert.device_offline", priority: .high, filters: ["location": "lab-1"]),
            ])
        #expect(d.eventPools == ["alerts"])
        #expect(d.subagents == [SubagentReference(id: "device-rebooter", version: ">=1.0.0", delegateFor: ["reboot_device"])])
        #expect(d.skills == ["screenshot", "jira_ticket"])
        #expect(
            d.permissions
                == AgentPermissions(
                    devices: ["read", "take_control"], database: ["read", "write.testcases"],
                    external: ["jira", "slack"]))
        #expect(d.config == AgentConfig())
        #expect(d.handler == nil)
        #expect(d.effectiveHandler == .log)
        #expect(d.resources.isEmpty)
        #expect(d.retry == nil)
        #expect(d.effectiveRetry == RetryPolicy(attempts: 3, backoff: .init(initialSeconds: 1, maxSeconds: 60, multiplier: 2)))
        #expect(d.onBusy == .queue)
        #expect(d.queueName == "agentry.agent.blackscreen-triage")
    }

    @Test("absent config fields take the seed's defaults; absent lists and sections are empty")
    func defaults() throws {
        let d = try AgentDefinition.parse(
            yaml: """
                metadata: {id: a, name: A, version: 1.0.0, author: me, description: d}
                goal: {type: on-demand, description: g}
                triggers: [{type: x.y, priority: LOW}]
                config:
                  auto_retry: false
                permissions:
                  external: [slack]
                """)
        #expect(
            d.config
                == AgentConfig(
                    maxParallelTasks: 3, approvalRequiredFor: [], autoRetry: false,
                    feedbackCollection: true, timeoutSeconds: 3600))
        #expect(d.permissions == AgentPermissions(devices: [], database: [], external: ["slack"]))
        #expect(d.eventPools.isEmpty && d.subagents.isEmpty && d.skills.isEmpty)
        #expect(d.goal.type == .onDemand)
        #expect(d.triggers[0].priority == .low)

        let bare = try AgentDefinition.parse(
            yaml: """
                metadata: {id: a, name: A, version: 1.0.0, author: me, description: d}
                goal: {type: continuous, description: g}
                triggers: []
                event_pools:
                retry: {}
                """)
        #expect(bare.config == AgentConfig())
        #expect(bare.permissions == AgentPermissions())
        #expect(bare.eventPools.isEmpty)
        #expect(bare.retry == RetryPolicy())
    }

    @Test("every example (examples/agents and the example bundles) parses")
    func everyExampleParses() throws {
        let files = try agentExampleFiles()
        #expect(files.count >= 13 && files.contains("bundles/device-check/agents/device-check.yaml"), "examples found: \(files)")
        for file in files {
            _ = try parseAgentExample(file)
        }
    }

    @Test("each example shows its handler kind")
    func exampleHandlers() throws {
        let exec = try parseAgentExample("blackscreen-exec.yaml")
        #expect(
            exec.handler
                == .exec(
                    ExecHandler(
                        command: ["/usr/local/bin/blackscreen-recover", "--capture", "--attempts=2"],
                        env: ["LOG_LEVEL": "info"],
                        workingDirectory: "/var/lib/agentry/blackscreen")))
        #expect(exec.resources == ["device:{{payload.device_id}}"])
        #expect(exec.triggers[0].filters == ["severity": "major", "device_class": "set-top-box"])
        #expect(exec.subagents.map(\.version) == [">=1.2.0 <2.0.0", "1.0.0"])
        #expect(exec.config.approvalRequiredFor == ["devices.reboot"])
        #expect(exec.retry == RetryPolicy(attempts: 3, backoff: .init(initialSeconds: 5, maxSeconds: 120, multiplier: 2)))

        let http = try parseAgentExample("deploy-http.yaml")
        #expect(
            http.handler
                == .http(
                    HTTPHandler(
                        url: "https://deploy.example.com/hooks/agentry",
                        headers: ["X-Agentry-Agent": "deploy-http"], timeoutSeconds: 60)))
        #expect(http.onBusy == .replace)
        #expect(http.retry == RetryPolicy(attempts: 5))

        #expect(try parseAgentExample("bundles/noop/agents/noop.yaml").handler == .noop)
        #expect(try parseAgentExample("bundles/noop/agents/noop.yaml").onBusy == .drop)
        #expect(try parseAgentExample("bundles/alert-logger/agents/alert-logger.yaml").handler == .log)

        let emit = try parseAgentExample("bundles/offline-reporter/agents/offline-reporter.yaml")
        #expect(
            emit.handler
                == .emit(
                    EmitHandler(
                        type: "report.requested",
                        payload: [
                            "device": "{{payload.device_id}}",
                            "reason": "device {{payload.device_id}} went offline at {{timestamp}}",
                            "caused_by": "{{id}}",
                            "lab": ["name": "{{payload.location.name}}"],
                        ], priority: .normal)))
    }

    @Test("the broken example reports every one of its problems, in document order")
    func brokenExample() throws {
        let name = "broken/blackscreen-broken.yaml"
        let yaml = try readAgentExample(name)
        let error = #expect(throws: AgentDefinitionError.self) { try AgentDefinition.parse(yaml: yaml, file: "blackscreen-broken.yaml") }
        let problems = try #require(error).problems
        let summary = problems.map { "\($0.path)@\($0.line ?? 0):\($0.column ?? 0)" }
        #expect(
            summary == [
                "metadata.description@3:3",
                "metadata.id@3:7",
                "metadata.version@5:12",
                "metadata.descripton@7:3",
                "triggers[0].priority@13:15",
                "triggers[1].priority@14:5",
                "triggers[1].priorty@15:5",
                "event_pools@16:14",
                "permissions.devices[1]@18:19",
                "config.max_parallel_tasks@20:23",
                "handler.exec.command@23:14",
                "resources[0]@25:5",
                "resources[0]@25:13",
            ])
        let text = try #require(error).description
        #expect(text.contains("blackscreen-broken.yaml:13:15: triggers[0].priority: expected one of critical, high, normal, low; found 'urgent'"))
        #expect(
            text.contains(
                "blackscreen-broken.yaml:7:3: metadata.descripton: unknown key 'descripton' in metadata; expected one of id, name, version, author, description, created_at, updated_at; did you mean 'description'?"
            ))
        #expect(text.contains("blackscreen-broken.yaml:5:12: metadata.version: '1.2' is not a semantic version"))
        #expect(
            text.contains(
                "blackscreen-broken.yaml:25:13: resources[0]: template '{{event.device_id}}' refers to 'event', which is not part of an event"))
        #expect(text.split(separator: "\n").count == problems.count)
    }

    @Test("import → export → import gives an equal definition, and export is idempotent", arguments: try agentExampleFiles())
    func roundTrip(file: String) throws {
        let first = try parseAgentExample(file)
        let exported = first.yaml()
        let second = try AgentDefinition.parse(yaml: exported, file: "exported \(file)")
        #expect(second == first)
        #expect(second.yaml() == exported)
    }

    @Test("strings that look like other YAML types, templates and odd characters survive export")
    func roundTripTrickyValues() throws {
        let tricky: [String] = [
            "true", "no", "1.0", "42", "", "null", "~", "2024-01-01", "{{payload.x}}", "a: b", "- item",
            "#not a comment", "line one\nline two\n", "  padded  ", "quote ' and \" both", "ümlaut ✓",
            "trailing\n\n", "*star", "&anchor", "!tag", "@at", "`tick", "%percent", "[bracket", "x,y",
        ]
        var filters: JSONObject = [
            "null": nil, "flag": true, "count": 3, "ratio": 2.0, "small": 1.5e-7, "big": -9_007_199_254_740_993,
            "list": [1, "two", [3.5, false]], "nested": ["deep": ["deeper": "{{x}}"]],
        ]
        for (index, text) in tricky.enumerated() { filters["s\(index)"] = .string(text) }
        filters["true"] = "key that looks like a bool"
        filters["1"] = "key that looks like a number"
        let d = AgentDefinition(
            metadata: AgentMetadata(
                id: "tricky_1", name: "yes", version: "1.0.0-rc.1+build.5", author: "O'Brien",
                description: "first line\nsecond line: with colon\n", createdAt: "2024-01-01"),
            goal: AgentGoal(type: .onDemand, description: "{{not a template here}}"),
            triggers: [EventTrigger(type: "alert.#", priority: .critical, filters: filters)],
            eventPools: ["on", "off"],
            subagents: [SubagentReference(id: "sub", version: "^1.2 || >=3.0.0", delegateFor: [])],
            skills: ["- dash", "null"],
            permissions: AgentPermissions(devices: ["read", "take_control"]),
            config: AgentConfig(
                maxParallelTasks: 1, approvalRequiredFor: ["devices.read"], autoRetry: false,
                feedbackCollection: false, timeoutSeconds: 1),
            handler: .exec(
                ExecHandler(
                    command: ["sh", "-c", "echo 'hi' # there", "true"], env: ["A": "1", "B": "", "C": "yes"],
                    workingDirectory: "~")),
            resources: ["device:{{payload.device_id}}", "tree:main"],
            retry: RetryPolicy(attempts: 10, backoff: .init(initialSeconds: 0.25, maxSeconds: 30.5, multiplier: 1.5)),
            onBusy: .drop)
        let exported = d.yaml()
        let back = try AgentDefinition.parse(yaml: exported)
        #expect(back == d, "exported:\n\(exported)")
        #expect(back.yaml() == exported)

        for handler: Handler in [
            .http(HTTPHandler(url: "http://localhost:8080/x?y=1#z", headers: ["Authorization": "Bearer {{payload.secret}}"], timeoutSeconds: 5)),
            .noop, .log,
            .emit(EmitHandler(type: "report.requested", payload: ["n": 1, "s": "{{ payload.a.b }}", "at": "{{timestamp}}"], priority: .low)),
            .emit(EmitHandler(type: "x")),
        ] {
            var copy = d
            copy.handler = handler
            let text = copy.yaml()
            #expect(try AgentDefinition.parse(yaml: text) == copy, "exported:\n\(text)")
        }
    }

    @Test("a seed-style definition exports as a seed-style file: all seed sections, no new fields")
    func seedExportHasNoNewFields() throws {
        let d = try parseAgentExample("seed-minimal.yaml")
        let keys = d.yaml().split(separator: "\n").filter { !$0.hasPrefix(" ") && !$0.hasPrefix("-") }
            .map { String($0.prefix(while: { $0 != ":" })) }
        #expect(keys == ["metadata", "goal", "triggers", "event_pools", "subagents", "skills", "permissions", "config"])
        let exported = d.yaml()
        #expect(exported.contains("  max_parallel_tasks: 3\n  approval_required_for: []\n  auto_retry: true\n"))
        #expect(exported.contains("version: '>=1.0.0'"))
    }

    @Test("the chosen handler form is written as a single key naming the kind")
    func handlerYAMLForm() throws {
        var d = try parseAgentExample("bundles/alert-logger/agents/alert-logger.yaml")
        #expect(d.yaml().hasSuffix("handler:\n  builtin: log\n"))
        d.handler = .emit(EmitHandler(type: "a.b", payload: ["k": "{{id}}"], priority: .high))
        #expect(d.yaml().hasSuffix("handler:\n  emit:\n    type: a.b\n    payload:\n      k: '{{id}}'\n    priority: high\n"))
        d.handler = .exec(ExecHandler(command: ["/bin/true"]))
        #expect(d.yaml().hasSuffix("handler:\n  exec:\n    command:\n    - /bin/true\n"))
    }

    @Test(
        "the JSON form reads back through the YAML reader as an equal definition, with snake_case keys",
        arguments: try agentExampleFiles())
    func jsonRoundTrip(file: String) throws {
        let d = try parseAgentExample(file)
        let text = JSON.serialize(d.jsonValue())
        #expect(try AgentDefinition.parse(yaml: text) == d)
        for key in ["\"event_pools\"", "\"max_parallel_tasks\"", "\"approval_required_for\"", "\"timeout_seconds\""] {
            #expect(text.contains(key))
        }
        #expect(!text.contains("eventPools") && !text.contains("maxParallelTasks"))
        #expect(d.jsonValue() == (try JSON.parse(Array(text.utf8))), "the JSON form is the tree yaml() writes")
    }

    @Test("definitions stored in JSON by earlier versions (every field set) read back equal to their YAML")
    func storedByEarlierVersions() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        let lines = try String(contentsOf: fixtures.appendingPathComponent("stored-definitions.jsonl"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        var expected = try agentExampleFiles().map(parseAgentExample)
        expected.append(try AgentDefinition.parse(yaml: String(contentsOf: fixtures.appendingPathComponent("full.yaml"), encoding: .utf8)))
        // Each stored line is matched to the example of the same id: examples added since (poll-schedule) have none.
        let byID = Dictionary(expected.map { ($0.metadata.id, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(lines.count == 10)
        for line in lines {
            let read = try AgentDefinition.parse(yaml: line)
            let definition = try #require(byID[read.metadata.id], "no example has id \(read.metadata.id)")
            #expect(read == definition, "\(definition.metadata.id)")
            #expect(try AgentDefinition.parse(yaml: JSON.serialize(read.jsonValue())) == definition)
        }
    }

    @Test("the JSON form omits defaulted optional fields and writes values with their types")
    func jsonForm() throws {
        let d = try AgentDefinition.parse(
            yaml: """
                metadata: {id: a, name: A, version: 1.0.0, author: me, description: d}
                goal: {type: on-demand, description: g}
                triggers: [{type: x.*, priority: HIGH, filters: {n: 1, ratio: 0.5, "on": true}}]
                config: {timeout_seconds: 10}
                handler: {http: {url: "https://h.example/x"}}
                retry: {backoff: {max_seconds: 5}}
                """)
        let json = d.jsonValue()
        #expect(json[path: "config.timeout_seconds"] == .int(10))
        #expect(json[path: "config.auto_retry"] == .bool(true))
        #expect(json[path: "handler.http.url"] == .string("https://h.example/x"))
        #expect(json[path: "retry.backoff.max_seconds"] == .int(5))
        #expect(json[path: "on_busy"] == nil, "the default on_busy is not written")
        #expect(
            json[path: "triggers"]?.arrayValue?.first
                == .object([
                    "type": "x.*", "priority": "high", "filters": .object(["n": .int(1), "ratio": .double(0.5), "on": .bool(true)]),
                ]))
    }

    @Test("referenced skills, subagents and pools are listed once each")
    func references() throws {
        var d = try parseAgentExample("blackscreen-exec.yaml")
        d.skills.append("screenshot")
        d.eventPools.append("alerts")
        d.subagents.append(d.subagents[0])
        #expect(d.referencedSkills == ["screenshot", "hdmi_capture"])
        #expect(d.referencedPools == ["alerts"])
        #expect(d.referencedSubagents.map(\.id) == ["device-rebooter", "ticket-writer"])
    }

    @Test("backoff delays grow by the multiplier up to the maximum")
    func backoffDelays() {
        let backoff = RetryPolicy.Backoff(initialSeconds: 1, maxSeconds: 5, multiplier: 2)
        #expect((1...5).map { backoff.delay(afterAttempt: $0) } == [1, 2, 4, 5, 5])
    }
}
