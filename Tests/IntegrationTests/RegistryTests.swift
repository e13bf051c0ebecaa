import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import PostgresNIO
import Testing

/// A valid definition with the given id, version and triggers.
func definitionYAML(
    id: String, version: String, triggers: [(String, String)], description: String = "Test agent.",
    pools: [String] = [], subagents: [(String, String)] = [], skills: [String] = []
) -> String {
    var yaml = """
        metadata:
          id: \(id)
          name: Test \(id)
          version: \(version)
          author: tests
          description: \(description)
        goal:
          type: continuous
          description: Exercise the registry.
        triggers:

        """
    for (type, priority) in triggers { yaml += "  - type: \(type)\n    priority: \(priority)\n" }
    if !pools.isEmpty { yaml += "event_pools:\n" + pools.map { "  - \($0)\n" }.joined() }
    if !skills.isEmpty { yaml += "skills:\n" + skills.map { "  - \($0)\n" }.joined() }
    if !subagents.isEmpty {
        yaml += "subagents:\n" + subagents.map { "  - id: \($0.0)\n    version: \"\($0.1)\"\n    delegate_for: [work]\n" }.joined()
    }
    yaml += "handler:\n  builtin: noop\n"
    return yaml
}

func definition(
    id: String, version: String, triggers: [(String, String)], description: String = "Test agent.",
    pools: [String] = [], subagents: [(String, String)] = [], skills: [String] = []
) throws -> AgentDefinition {
    try AgentDefinition.parse(
        yaml: definitionYAML(
            id: id, version: version, triggers: triggers, description: description, pools: pools,
            subagents: subagents, skills: skills))
}

/// Routing keys bound from agentry.route to a queue, as the broker reports them.
func brokerBindings(queue: String) throws -> Set<String> {
    let result = try TestEnvironment.run(
        "rabbitmqctl",
        [
            "list_bindings", "-p", TestEnvironment.configuration.amqp.virtualHost, "-q", "--no-table-headers", "source_name", "destination_name",
            "routing_key",
        ])
    var keys = Set<String>()
    for line in result.output.split(separator: "\n") {
        let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        if fields.count == 3, fields[0] == Topology.routeExchange, fields[1] == queue { keys.insert(fields[2]) }
    }
    return keys
}

@Suite("Agent registry")
struct RegistryTests {
    @Test("the active definition is the highest published version by semantic-version order, never a draft or the newest")
    func versionResolution() async throws {
        try await withRegistry { registry, _, connection, _ in
            let id = TestEnvironment.uniqueName("resolve-")
            defer { Task { try? await connection.deleteQueue("agentry.agent.\(id)") } }
            // Registered out of order; 1.10.0 is the highest by precedence although "1.9.0" > "1.10.0" as text.
            for version in ["2.0.0-beta.1", "1.9.0", "1.10.0", "1.2.0", "3.0.0"] {
                #expect(try await registry.register(definition(id: id, version: version, triggers: [("test.resolve.\(id)", "normal")])) == .created)
            }
            #expect(try await registry.definition(agentID: id) == nil, "nothing published yet")
            _ = try await registry.publish(agentID: id, version: "1.2.0")
            _ = try await registry.publish(agentID: id, version: "1.10.0")
            _ = try await registry.publish(agentID: id, version: "1.9.0")  // published last: the active one (a rollback)
            let highest = try #require(try await registry.definition(agentID: id))
            #expect(highest.1.metadata.version == "1.10.0")
            #expect(try await registry.definition(agentID: id, version: "3.0.0")?.0.status == .draft)
            let summary = try #require(try await registry.list().first { $0.agentID == id })
            #expect(summary.activeVersion == "1.9.0")
            #expect(summary.versions.map(\.version) == ["1.2.0", "1.9.0", "1.10.0", "2.0.0-beta.1", "3.0.0"])
            // Without --version, publish takes the highest registered version, pre-releases ranked below releases.
            let publication = try await registry.publish(agentID: id)
            #expect(publication.version == "3.0.0")
            #expect(publication.previousVersion == "1.9.0")
            // A subagent range resolves to the highest published version inside it.
            let resolved = try await registry.resolveSubagent(id, range: VersionRange(validating: ">=1.0.0 <2.0.0"))
            #expect(resolved?.0.description == "1.10.0")
            #expect(try await registry.resolveSubagent(id, range: VersionRange(validating: "^4.0")) == nil)
        }
    }

    @Test("a published version never changes; a draft may be replaced; triggers are stored once per version")
    func publishedImmutable() async throws {
        try await withRegistry { registry, _, connection, database in
            let id = TestEnvironment.uniqueName("immutable-")
            defer { Task { try? await connection.deleteQueue("agentry.agent.\(id)") } }
            let first = try definition(id: id, version: "1.0.0", triggers: [("test.a.\(id)", "high"), ("test.b.\(id)", "low")])
            #expect(try await registry.register(first) == .created)
            #expect(try await registry.register(first) == .unchanged)
            let changedDraft = try definition(id: id, version: "1.0.0", triggers: [("test.a.\(id)", "high")], description: "Changed.")
            #expect(try await registry.register(changedDraft) == .replaced)
            #expect(try await registry.register(first) == .replaced)
            var rows = 0
            for try await n in try await database.client.query(
                "SELECT count(*)::int8 FROM agent_event_triggers WHERE agent_id = \(id)", logger: TestEnvironment.logger
            ).decode(Int64.self) {
                rows = Int(n)
            }
            #expect(rows == 2, "two triggers, stored once although registered four times")

            _ = try await registry.publish(agentID: id, version: "1.0.0")
            #expect(try await registry.register(first) == .unchanged, "the same definition again is fine")
            let error = await #expect(throws: RegistryError.self) { try await registry.register(changedDraft) }
            #expect(error?.code == .publishedImmutable)
            #expect(error?.message.contains("\(id)' version 1.0.0 is published and cannot change") == true)
            #expect(try await registry.definition(agentID: id)?.1 == first)
        }
    }

    @Test("a published version stored in the earlier JSON form is the same version when its file is applied again")
    func earlierStoredForm() async throws {
        try await withRegistry { registry, _, connection, database in
            let id = TestEnvironment.uniqueName("stored-form-")
            defer { Task { try? await connection.deleteQueue("agentry.agent.\(id)") } }
            let yaml = """
                metadata: {id: \(id), name: Old, version: 1.0.0, author: me, description: Stored by an earlier version.}
                goal: {type: continuous, description: g}
                triggers: [{type: test.old.\(id), priority: high}]
                handler: {builtin: noop}
                """
            let current = try AgentDefinition.parse(yaml: yaml)
            #expect(try await registry.register(current) == .created)
            _ = try await registry.publish(agentID: id, version: "1.0.0")
            // The same definition as the registry stored it before (every field written, defaults included).
            let earlier =
                #"{"config":{"approval_required_for":[],"auto_retry":true,"feedback_collection":true,"max_parallel_tasks":3,"task_events":true,"timeout_seconds":3600},"event_pools":[],"goal":{"description":"g","type":"continuous"},"handler":{"builtin":"noop"},"metadata":{"author":"me","description":"Stored by an earlier version.","id":"ID","name":"Old","version":"1.0.0"},"on_busy":"queue","permissions":{"database":[],"devices":[],"external":[]},"resources":[],"skills":[],"subagents":[],"triggers":[{"priority":"high","type":"test.old.ID"}]}"#
                .replacingOccurrences(of: "ID", with: id)
            try await database.client.query(
                "UPDATE agent_registry SET definition = \(earlier)::jsonb WHERE agent_id = \(id)", logger: TestEnvironment.logger)
            #expect(try await registry.definition(agentID: id)?.1 == current, "the earlier form reads back as the same definition")
            #expect(try await registry.register(current) == .unchanged, "applying the same file again is fine")
            let changed = try AgentDefinition.parse(yaml: yaml.replacingOccurrences(of: "builtin: noop", with: "builtin: log"))
            let error = await #expect(throws: RegistryError.self) { try await registry.register(changed) }
            #expect(error?.code == .publishedImmutable)
        }
    }

    @Test(
        "the agent's lock: a session that ends while it is held costs the operation nothing, and leaves the lock free",
        .timeLimit(.minutes(1)))
    func agentLockSessionEnds() async throws {
        try await withRegistry { _, _, _, database in
            let store = AgentRegistryStore(database: database, logger: TestEnvironment.logger)
            let key = "agentry.agent:" + TestEnvironment.uniqueName("lock-")
            let agentID = String(key.dropFirst("agentry.agent:".count))
            let client = database.client
            @Sendable func holders() async throws -> [Int32] {
                var pids: [Int32] = []
                for try await pid in try await client.query(
                    """
                    SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
                      AND classid::int8 = (hashtextextended(\(key), 1) >> 32) & 4294967295
                      AND objid::int8 = hashtextextended(\(key), 1) & 4294967295
                    """, logger: TestEnvironment.logger
                ).decode(Int32.self) { pids.append(pid) }
                return pids
            }
            let value = try await store.withAgentLock(agentID) {
                let held = try await holders()
                #expect(held.count == 1, "the lock is held by one session while the operation runs: \(held)")
                // The session holding it ends (a restart, a failover, pg_terminate_backend) before the release.
                for pid in held {
                    try await client.query("SELECT pg_terminate_backend(\(pid), 5000)", logger: TestEnvironment.logger)
                }
                return 42
            }
            #expect(value == 42, "the operation's own result, not an error from the release")
            #expect(try await holders().isEmpty)
            // And the store goes on: the lock is taken and given back again.
            let again = try await store.withAgentLock(agentID) { try await holders().count }
            #expect(again == 1)
            #expect(try await holders().isEmpty)
        }
    }

    @Test("publishing a new version rebinds the queue to exactly its triggers and pools")
    func publishChangesBindings() async throws {
        try await withRegistry { registry, _, connection, _ in
            let id = TestEnvironment.uniqueName("rebind-")
            let queue = "agentry.agent.\(id)"
            defer { Task { try? await connection.deleteQueue(queue) } }
            _ = try await registry.register(
                definition(id: id, version: "1.0.0", triggers: [("test.keep.\(id)", "normal"), ("test.drop.\(id)", "normal")]))
            _ = try await registry.register(
                definition(
                    id: id, version: "1.1.0", triggers: [("test.keep.\(id)", "normal"), ("test.new.\(id).*", "high")],
                    pools: ["deployments"]))
            _ = try await registry.publish(agentID: id, version: "1.0.0")
            #expect(try brokerBindings(queue: queue) == ["test.keep.\(id)", "test.drop.\(id)"])
            let publication = try await registry.publish(agentID: id, version: "1.1.0")
            let expected: Set<String> = ["test.keep.\(id)", "test.new.\(id).*", "build.deployed", "deploy.#"]
            #expect(try brokerBindings(queue: queue) == expected)
            #expect(Set(publication.removed) == ["test.drop.\(id)"])
            #expect(Set(publication.patterns) == expected)
            let matching = try await registry.agents(matching: "test.new.\(id).x").map(\.metadata.id)
            #expect(matching == [id])
            #expect(try await registry.agents(matching: "test.drop.\(id)").isEmpty)

            // Retiring removes every binding and keeps the queue.
            let removed = try await registry.retire(agentID: id)
            #expect(Set(removed) == expected)
            #expect(try brokerBindings(queue: queue).isEmpty)
            #expect(try await connection.queueExists(queue))
            #expect(try await registry.list().first { $0.agentID == id }?.retired == true)
        }
    }

    @Test("an unknown event pool or skill, or an unpublished subagent, stops a publish with a clear message")
    func publishTimeReferences() async throws {
        try await withRegistry { registry, _, _, _ in
            let id = TestEnvironment.uniqueName("refs-")
            _ = try await registry.register(
                definition(
                    id: id, version: "1.0.0", triggers: [("test.refs.\(id)", "low")],
                    pools: ["alert"], subagents: [("nobody-\(id)", "^1.0")], skills: ["screenshot", "screenshoot"]))
            let error = await #expect(throws: RegistryError.self) { _ = try await registry.publish(agentID: id) }
            #expect(
                error?.message.contains("'alert' is not declared in the topology's event pools (event-pools.yaml) (did you mean 'alerts'?)") == true)
            #expect(error?.message.contains("'nobody-\(id)' has no published version") == true)
            #expect(
                error?.message.contains("'screenshoot' is not declared in the topology's skills (skills.yaml) (did you mean 'screenshot'?)") == true)
            #expect(error?.message.contains("'screenshot' is not") == false)
            #expect(try await registry.list().first { $0.agentID == id }?.activeVersion == nil)
        }
    }

    @Test("after publish, an event reaches the agent's queue at its priority; an event nobody listens to is unhandled")
    func eventsReachPublishedAgents() async throws {
        try await withEventLog { bus, store, connection in
            try await withRegistry { registry, _, _, _ in
                let id = TestEnvironment.uniqueName("route-")
                let queue = "agentry.agent.\(id)"
                defer { Task { try? await connection.deleteQueue(queue) } }
                _ = try await registry.register(definition(id: id, version: "1.0.0", triggers: [("test.route.\(id).#", "critical")]))
                _ = try await registry.publish(agentID: id)
                let heard = Event(type: "test.route.\(id).blackscreen", payload: ["device_id": "tv-1"], priority: .high)
                let unheard = Event(type: "test.unrouted.\(id)", payload: [:], priority: .low)
                try await bus.publish(heard)
                try await bus.publish(unheard)
                let consumer = try await connection.consume(queue: queue, prefetch: 1)
                var iterator = consumer.makeAsyncIterator()
                let delivery = try #require(try await iterator.next())
                delivery.ack()
                let received = try EventWireFormat.decode(body: delivery.body, envelope: delivery.eventEnvelope)
                #expect(received.id == heard.id)
                #expect(delivery.properties.priority == Priority.high.amqpPriority)
                await consumer.close()
                #expect(try await TestEnvironment.eventually { try await store.entry(unheard.id)?.unhandled == true })
                #expect(try await TestEnvironment.eventually { try await store.entry(heard.id) != nil })
                #expect(try await TestEnvironment.waitUntilSettled(Topology.eventLogQueue), "the event log has taken and written everything")
                #expect(try await store.entry(heard.id)?.unhandled == false)
            }
        }
    }

    @Test("two processes applying and publishing the same agent at once end in one consistent state")
    func concurrentProcesses() async throws {
        let id = TestEnvironment.uniqueName("race-")
        let queue = "agentry.agent.\(id)"
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(id)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let fileA = directory.appendingPathComponent("a.yaml").path
        let fileB = directory.appendingPathComponent("b.yaml").path
        try definitionYAML(id: id, version: "1.0.0", triggers: [("test.race.a.\(id)", "normal")]).write(
            toFile: fileA, atomically: true, encoding: .utf8)
        try definitionYAML(id: id, version: "1.1.0", triggers: [("test.race.b.\(id)", "normal")]).write(
            toFile: fileB, atomically: true, encoding: .utf8)
        let executable = TestEnvironment.agentryExecutable
        let environment: [String: String] = [:]
        try await TestEnvironment.migrate()
        for round in 0..<3 {
            async let a = Task.detached {
                let apply = try TestEnvironment.run(executable, ["agents", "apply", fileA], environment: environment)
                let publish = try TestEnvironment.run(executable, ["agents", "publish", id, "--version", "1.0.0"], environment: environment)
                return (apply, publish)
            }.value
            async let b = Task.detached {
                let apply = try TestEnvironment.run(executable, ["agents", "apply", fileB], environment: environment)
                let publish = try TestEnvironment.run(executable, ["agents", "publish", id, "--version", "1.1.0"], environment: environment)
                return (apply, publish)
            }.value
            let results = try await [a, b]
            for (apply, publish) in results {
                #expect(apply.status == 0, "round \(round): agents apply said: \(apply.output)")
                #expect(publish.status == 0, "round \(round): agents publish said: \(publish.output)")
            }
            // Whichever publish came last, the broker and the database agree.
            try await withRegistry { registry, _, _, database in
                let store = AgentRegistryStore(database: database, logger: TestEnvironment.logger)
                let state = try #require(try await store.state(of: id))
                let expected: Set<String> = state.activeVersion == "1.0.0" ? ["test.race.a.\(id)"] : ["test.race.b.\(id)"]
                #expect(Set(state.boundPatterns) == expected)
                #expect(
                    try brokerBindings(queue: queue) == expected,
                    "round \(round): broker bindings match the active version \(state.activeVersion ?? "-")")
                #expect(try await registry.list().first { $0.agentID == id }?.versions.count == 2)
            }
        }
        let connection = try await TestEnvironment.connect()
        _ = try? await connection.deleteQueue(queue)
        await connection.close()
    }
}
