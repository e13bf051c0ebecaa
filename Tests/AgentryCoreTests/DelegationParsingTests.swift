import AgentryCore
import Testing

@Suite("Delegation requests and subagent choice")
struct DelegationParsingTests {
    func parse(_ json: String) throws -> Result<Delegation, DelegationProblem>? {
        guard case .object(let object) = try JSON.parse(json) else { throw DelegationProblem("not an object") }
        return Delegation.from(result: object)
    }

    @Test("a result without 'delegate' asks for nothing")
    func none() throws {
        #expect(try parse(#"{"ok": true}"#) == nil)
    }

    @Test("tasks with payload and priority; await true takes the defaults, an object its own")
    func tasksAndAwait() throws {
        let plain = try #require(try parse(#"{"delegate": [{"task": "reboot_device", "payload": {"device": "tv-1"}, "priority": "high"}]}"#)).get()
        #expect(plain.tasks == [Delegation.Task(name: "reboot_device", payload: ["device": "tv-1"], priority: .high)])
        #expect(plain.awaiting == nil)
        #expect(plain.tasks[0].eventType == "task.reboot_device")
        let waiting = try #require(try parse(#"{"delegate": {"task": "a"}, "await": true}"#)).get()
        #expect(waiting.tasks.map(\.name) == ["a"])
        #expect(waiting.awaiting == Delegation.Await(deadlineSeconds: Delegation.Await.defaultDeadlineSeconds, onFailure: .fail))
        let custom = try #require(
            try parse(#"{"delegate": [{"task": "a"}, {"task": "b"}], "await": {"deadline_seconds": 90, "on_failure": "continue"}}"#)
        )
        .get()
        #expect(custom.awaiting == Delegation.Await(deadlineSeconds: 90, onFailure: .continue))
    }

    @Test(
        "each mistake is named",
        arguments: [
            (#"{"delegate": 3}"#, "'delegate' must be a list of tasks"),
            (#"{"delegate": []}"#, "lists no task"),
            (#"{"delegate": [{"payload": {}}]}"#, "delegate[0] has no 'task'"),
            (#"{"delegate": [{"task": "a b"}]}"#, "delegate[0].task 'a b'"),
            (#"{"delegate": [{"task": "a", "payload": [1]}]}"#, "delegate[0].payload must be an object"),
            (#"{"delegate": [{"task": "a", "priority": "urgent"}]}"#, "delegate[0].priority must be one of"),
            (#"{"delegate": [{"task": "a", "agent": "x"}]}"#, "unknown key 'agent'"),
            (#"{"delegate": [{"task": "a"}], "await": {"deadline_seconds": 0}}"#, "await.deadline_seconds must be a whole number"),
            (#"{"delegate": [{"task": "a"}], "await": {"on_failure": "ignore"}}"#, "await.on_failure must be 'fail' or 'continue'"),
            (#"{"delegate": [{"task": "a"}], "await": "yes"}"#, "'await' must be true or an object"),
        ])
    func problems(json: String, expected: String) throws {
        guard case .failure(let problem)? = try parse(json) else {
            Issue.record("\(json) was accepted")
            return
        }
        #expect(problem.description.contains(expected), "\(problem)")
    }

    func definition(_ subagents: [SubagentReference]) -> AgentDefinition {
        AgentDefinition(
            metadata: AgentMetadata(id: "triage", name: "Triage", version: "1.0.0", author: "t", description: "d"),
            goal: AgentGoal(type: .continuous, description: "g"), triggers: [], subagents: subagents)
    }

    @Test("the highest published version inside the range, of the first subagent that has one")
    func choice() throws {
        let parent = definition([
            SubagentReference(id: "old", version: "^3.0.0", delegateFor: ["reboot"]),
            SubagentReference(id: "device", version: "^1.0.0", delegateFor: ["reboot", "flash"]),
        ])
        let published = ["old": ["2.0.0"], "device": ["1.0.0", "2.0.0", "1.5.0", "1.5.1-beta"]]
        let choice = try SubagentResolution.choose(task: "reboot", for: parent, published: published).get()
        #expect(choice == SubagentResolution.Choice(agentID: "device", version: "1.5.0", range: "^1.0.0"))
    }

    @Test("no subagent for the task, or no version in any range: the message names the task, ranges and versions")
    func noFit() {
        let parent = definition([SubagentReference(id: "device", version: ">=3.0.0", delegateFor: ["reboot"])])
        guard case .failure(let unknown) = SubagentResolution.choose(task: "flash", for: parent, published: ["device": ["1.0.0"]]) else {
            Issue.record("flash was resolved")
            return
        }
        #expect(unknown.description.contains("no subagent of triage handles task 'flash': its subagents handle reboot"))
        guard case .failure(let none) = SubagentResolution.choose(task: "reboot", for: parent, published: ["device": ["2.0.0", "1.0.0"]]) else {
            Issue.record("reboot was resolved")
            return
        }
        #expect(none.description == "no published version of a subagent fits task 'reboot': device >=3.0.0 (published: 1.0.0, 2.0.0)")
    }

    @Test("depth and breadth limits")
    func limits() {
        let limits = DelegationLimits(maxDepth: 2, maxChildren: 3)
        #expect(limits.problem(depth: 1, tasks: 3) == nil)
        #expect(limits.problem(depth: 2, tasks: 1)?.description.contains("depth limit reached") == true)
        #expect(limits.problem(depth: 0, tasks: 4)?.description.contains("at most 3 tasks") == true)
    }
}

@Suite("The delegate handler in a definition")
struct DelegateHandlerDefinitionTests {
    let base = """
        metadata: {id: triage, name: Triage, version: 1.0.0, author: t, description: d}
        goal: {type: continuous, description: g}
        triggers: [{type: alert.x, priority: high}]
        subagents: [{id: device, version: '^1.0.0', delegate_for: [reboot]}]

        """

    @Test("tasks with templated payloads and await read back, and write out the same")
    func roundTrip() throws {
        let yaml =
            base + """
                handler:
                  delegate:
                    tasks:
                      - task: reboot
                        payload: {device_id: "{{payload.device_id}}"}
                        priority: critical
                    await: {deadline_seconds: 60, on_failure: continue}
                """
        let definition = try AgentDefinition.parse(yaml: yaml)
        guard case .delegate(let handler)? = definition.handler else {
            Issue.record("not a delegate handler: \(String(describing: definition.handler))")
            return
        }
        #expect(handler.tasks == [Delegation.Task(name: "reboot", payload: ["device_id": "{{payload.device_id}}"], priority: .critical)])
        #expect(handler.awaiting == Delegation.Await(deadlineSeconds: 60, onFailure: .continue))
        #expect(try AgentDefinition.parse(yaml: definition.yaml()) == definition)
        let request = handler.request(for: Event(type: "alert.x", payload: ["device_id": "tv-3"]))
        #expect(request["delegate"]?.arrayValue?.first?[path: "payload.device_id"]?.stringValue == "tv-3")
        #expect(request["await"]?[path: "on_failure"]?.stringValue == "continue")
    }

    @Test("a task no subagent handles, and a task without a name, are named with their place")
    func problems() {
        let unknown = base + "handler:\n  delegate:\n    tasks: [{task: rebot}]\n"
        #expect(throws: AgentDefinitionError.self) { try AgentDefinition.parse(yaml: unknown) }
        do {
            _ = try AgentDefinition.parse(yaml: unknown)
        } catch {
            let problem = error.problems.first
            #expect(problem?.path == "handler.delegate.tasks")
            #expect(problem?.message.contains("task 'rebot' is in no subagent's delegate_for (they handle reboot)") == true, "\(error)")
            #expect(problem?.suggestion == "did you mean 'reboot'?")
        }
        let nameless = base + "handler:\n  delegate:\n    tasks: [{payload: {}}]\n"
        do {
            _ = try AgentDefinition.parse(yaml: nameless)
            Issue.record("a task without a name was accepted")
        } catch {
            #expect(error.problems.first?.message.contains("tasks[0] has no 'task'") == true, "\(error)")
        }
    }
}
