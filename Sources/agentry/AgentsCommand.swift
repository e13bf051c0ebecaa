import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import ArgumentParser
import Foundation
import Logging

extension Agentry {
    struct Agents: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate, register, publish and inspect agent definitions.",
            subcommands: [
                Validate.self, Apply.self, Publish.self, Promote.self, Rollback.self, List.self, Show.self, Stats.self, Export.self,
                Retire.self, Pause.self, Resume.self, Stop.self, Start.self, Invoke.self,
            ])
    }
}

/// Reads definition files: the files given, and the `.yaml`/`.yml` files of directories given.
func definitionFiles(_ paths: [String]) throws -> [String] {
    var files: [String] = []
    for path in paths {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw Failure("\(path): no such file or directory")
        }
        if isDirectory.boolValue {
            let entries = try FileManager.default.contentsOfDirectory(atPath: path)
                .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
            files += entries.map { (path as NSString).appendingPathComponent($0) }
        } else {
            files.append(path)
        }
    }
    return files
}

func parseDefinition(file: String) throws(AgentDefinitionError) -> AgentDefinition {
    let text: String
    do {
        text = try String(contentsOfFile: file, encoding: .utf8)
    } catch {
        throw AgentDefinitionError(problems: [
            ValidationProblem(
                file: file, path: "", line: nil, column: nil,
                message: "cannot read the file: \(error.localizedDescription)", suggestion: nil)
        ])
    }
    return try AgentDefinition.parse(yaml: text, file: file)
}

/// Runs `body` with a registry connected to the broker and the database.
func withRegistry<T: Sendable>(_ options: GlobalOptions, _ body: @Sendable (AgentRegistry) async throws -> T) async throws -> T {
    let configuration = try options.resolve()
    let logger = try options.logger("agentry.agents", default: .warning)
    let topology = try AgentryBus.Topology.load(directory: configuration.topologyDirectory)
    let connection = AMQPConnection(configuration: configuration.amqp, logger: logger)
    do {
        try await connection.connect()
        let result = try await Database.with(configuration.database, logger: logger) { database in
            try await database.ping()
            let bus = try await EventBus(connection: connection, logger: logger)
            let registry = AgentRegistry(store: AgentRegistryStore(database: database, logger: logger), bus: bus, topology: topology, logger: logger)
            return try await body(registry)
        }
        await connection.close()
        return result
    } catch {
        await connection.close()
        throw error
    }
}

func printJSON(_ value: JSONValue) {
    print(value.jsonText)
}

extension Agentry.Agents {
    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check definition files and print every problem with its line and column.")

        @Argument(help: "Definition files or directories.")
        var paths: [String]

        @Flag(help: "Print results as JSON.")
        var json = false

        func run() async throws {
            var failed = 0
            var results: [JSONValue] = []
            for file in try definitionFiles(paths) {
                do {
                    let definition = try parseDefinition(file: file)
                    if json {
                        results.append([
                            "file": .string(file), "valid": true, "agent_id": .string(definition.metadata.id),
                            "version": .string(definition.metadata.version),
                        ])
                    } else {
                        print("\(file): ok (\(definition.metadata.id) \(definition.metadata.version))")
                    }
                } catch {
                    failed += 1
                    if json {
                        results.append([
                            "file": .string(file), "valid": false,
                            "problems": .array(
                                error.problems.map { p in
                                    [
                                        "path": .string(p.path), "line": p.line.map { .int(Int64($0)) } ?? .null,
                                        "column": p.column.map { .int(Int64($0)) } ?? .null,
                                        "message": .string(p.message), "suggestion": p.suggestion.map(JSONValue.string) ?? .null,
                                    ]
                                }),
                        ])
                    } else {
                        print("\(file): \(error.problems.count) problem\(error.problems.count == 1 ? "" : "s")")
                        for problem in error.problems { print("  \(problem)") }
                    }
                }
            }
            if json { printJSON(.array(results)) }
            if failed > 0 { throw ExitCode(1) }
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register definition files as drafts (a published version never changes).")
        @OptionGroup var options: GlobalOptions

        @Argument(help: "Definition files or directories.")
        var paths: [String]

        @Flag(help: "Print results as JSON.")
        var json = false

        func run() async throws {
            let files = try definitionFiles(paths)
            var parsed: [(String, AgentDefinition)] = []
            var invalid = 0
            for file in files {
                do {
                    parsed.append((file, try parseDefinition(file: file)))
                } catch {
                    invalid += 1
                    print("\(file): not registered, \(error.problems.count) problem\(error.problems.count == 1 ? "" : "s")")
                    for problem in error.problems { print("  \(problem)") }
                }
            }
            let toRegister = parsed
            let outcomes = try await withRegistry(options) { registry in
                var outcomes: [(String, AgentDefinition, Result<AgentRegistryStore.RegisterOutcome, RegistryError>)] = []
                for (file, definition) in toRegister {
                    do {
                        outcomes.append((file, definition, .success(try await registry.register(definition))))
                    } catch let error as RegistryError {
                        outcomes.append((file, definition, .failure(error)))
                    }
                }
                return outcomes
            }
            var failed = invalid
            var results: [JSONValue] = []
            for (file, definition, outcome) in outcomes {
                let id = "\(definition.metadata.id) \(definition.metadata.version)"
                switch outcome {
                case .success(let result):
                    let words = ["created": "registered as a draft", "replaced": "draft replaced", "unchanged": "unchanged (already registered)"][
                        result.rawValue]!
                    if json {
                        results.append([
                            "file": .string(file), "agent_id": .string(definition.metadata.id), "version": .string(definition.metadata.version),
                            "outcome": .string(result.rawValue),
                        ])
                    } else {
                        print("\(file): \(id) \(words)")
                    }
                case .failure(let error):
                    failed += 1
                    if json {
                        results.append([
                            "file": .string(file), "agent_id": .string(definition.metadata.id), "version": .string(definition.metadata.version),
                            "error": .string(error.message),
                        ])
                    } else {
                        print("\(file): \(id) refused: \(error.message)")
                    }
                }
            }
            if json { printJSON(.array(results)) }
            if failed > 0 { throw ExitCode(1) }
        }
    }

    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish a version: it becomes the active one and its queue is bound to its triggers.")
        @OptionGroup var options: GlobalOptions

        @Argument(help: "Agent id.")
        var id: String

        @Option(help: "Version to publish (default: the highest registered version).")
        var version: String?

        @Option(help: "Publish --version as a canary that runs this share of the events (e.g. 10%); the rest stay on the current version.")
        var canary: String?

        @Flag(help: "Print the result as JSON.")
        var json = false

        func validate() throws {
            guard let canary else { return }
            if version == nil { throw ValidationError("--canary needs --version: the version to run as the canary") }
            if case .failure(let problem) = CanarySplit.parsePercent(canary) { throw ValidationError("--canary: \(problem)") }
        }

        func run() async throws {
            let (id, version) = (self.id, self.version)
            if let canary, let version, case .success(let percent) = CanarySplit.parsePercent(canary) {
                return try await publishCanary(id: id, version: version, percent: percent)
            }
            do {
                let publication = try await withRegistry(options) { try await $0.publish(agentID: id, version: version) }
                if json {
                    printJSON([
                        "agent_id": .string(publication.agentID), "version": .string(publication.version),
                        "previous_version": publication.previousVersion.map(JSONValue.string) ?? .null,
                        "queue": .string(publication.queue), "patterns": .array(publication.patterns.map(JSONValue.string)),
                    ])
                } else {
                    print("published \(publication.agentID) \(publication.version)" + (publication.previousVersion.map { " (was \($0))" } ?? ""))
                    print("queue \(publication.queue) bound to: \(publication.patterns.joined(separator: ", "))")
                    if !publication.removed.isEmpty { print("bindings removed: \(publication.removed.joined(separator: ", "))") }
                }
            } catch {
                throw fail(error)
            }
        }

        private func publishCanary(id: String, version: String, percent: Int) async throws {
            let published: AgentRegistry.CanaryPublication
            do {
                published = try await withRegistry(options) { try await $0.publishCanary(agentID: id, version: version, percent: percent) }
            } catch {
                throw fail(error)
            }
            if json {
                printJSON([
                    "agent_id": .string(id), "version": .string(published.version), "canary_percent": .int(Int64(published.percent)),
                    "current_version": .string(published.currentVersion),
                ])
            } else {
                print(
                    "published \(id) \(published.version) as a canary: it runs \(published.percent)% of the events, \(published.currentVersion) the rest"
                )
                print("`agentry agents promote \(id)` makes it the current version; `agentry agents rollback \(id)` ends it")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List registered agents with their active versions.")
        @OptionGroup var options: GlobalOptions

        @Flag(help: "Print as JSON.")
        var json = false

        func run() async throws {
            let summaries: [AgentRegistry.Summary]
            do {
                summaries = try await withRegistry(options) { try await $0.list() }
            } catch {
                throw fail(error)
            }
            if json {
                printJSON([
                    "agents": .array(
                        summaries.map { s in
                            [
                                "agent_id": .string(s.agentID), "name": .string(s.name),
                                "active_version": s.activeVersion.map(JSONValue.string) ?? .null,
                                "retired": .bool(s.retired),
                                "canary": s.canary.map { ["version": .string($0.version), "percent": .int(Int64($0.percent))] } ?? .null,
                                "versions": .array(s.versions.map { ["version": .string($0.version), "status": .string($0.status.rawValue)] }),
                            ]
                        }), "count": .int(Int64(summaries.count)),
                ])
                return
            }
            guard !summaries.isEmpty else {
                print("no agents registered; register one with `agentry agents apply FILE`")
                return
            }
            let rows = summaries.map { s in
                [
                    s.agentID, s.activeVersion ?? (s.retired ? "retired" : "-"), s.canary.map { "\($0.version) \($0.percent)%" } ?? "-",
                    s.versions.map { "\($0.version) \($0.status.rawValue)" }.joined(separator: ", "), s.name,
                ]
            }
            printTable(header: ["AGENT", "ACTIVE", "CANARY", "VERSIONS", "NAME"], rows: rows)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one agent: a given version, or the highest published one.")
        @OptionGroup var options: GlobalOptions

        @Argument(help: "Agent id.")
        var id: String

        @Option(help: "Version (default: the highest published version).")
        var version: String?

        @Flag(help: "Print the definition as YAML.")
        var yaml = false

        @Flag(help: "Print as JSON.")
        var json = false

        /// `key {{payload.device_id}}, concurrency 1, rate 10 per minute per key, debounce 5 s, expire after 600 s`.
        static func describe(_ flow: FlowControl) -> String {
            var parts: [String] = []
            if let key = flow.key { parts.append("key \(key)") }
            if let n = flow.concurrency { parts.append("concurrency \(n) per key") }
            if let rate = flow.rate {
                parts.append("rate \(rate.limit) per \(rate.per.rawValue) per \((rate.scope ?? (flow.key == nil ? .agent : .key)).rawValue)")
            }
            if let s = flow.debounceSeconds { parts.append("debounce \(s.budgetText) s") }
            if let s = flow.expireAfterSeconds { parts.append("expire after \(s.budgetText) s") }
            return parts.joined(separator: ", ")
        }

        func run() async throws {
            let (stored, definition, summary) = try await findDefinitionAndSummary(options, id: id, version: version)
            if yaml {
                print(definition.yaml(), terminator: "")
            } else if json {
                print(stored.definition)
            } else {
                print("\(definition.metadata.id) \(definition.metadata.version) (\(stored.status.rawValue)): \(definition.metadata.name)")
                print("  \(definition.metadata.description)")
                print("  goal: \(definition.goal.type.rawValue), \(definition.goal.description)")
                for trigger in definition.triggers {
                    let schedule =
                        trigger.schedule.map {
                            " at \"\($0.cron.text)\" (\($0.timeZone)), schedule \(Schedule.agentScheduleName(agentID: definition.metadata.id, eventType: trigger.type))"
                        } ?? ""
                    print("  trigger: \(trigger.type) [\(trigger.priority.name)]\(schedule)")
                }
                if !definition.eventPools.isEmpty { print("  event pools: \(definition.eventPools.joined(separator: ", "))") }
                print("  queue: \(definition.queueName)")
                if let summary, let active = summary.activeVersion {
                    print("  current version: \(active)")
                    if let canary = summary.canary { print("  canary: \(canary.version) runs \(canary.percent)% of the events") }
                }
                if let flow = definition.flow { print("  flow: \(Self.describe(flow))") }
                let calendar = try options.resolve().budgetCalendar
                let budgets = try await withRegistry(options) { try await $0.budgetOverview(calendar: calendar).of(definition) }
                for budget in budgets { print("  budget: \(budget.line)") }
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print an agent's definition as YAML (it imports back unchanged).")
        @OptionGroup var options: GlobalOptions

        @Argument(help: "Agent id.")
        var id: String

        @Option(help: "Version (default: the highest published version).")
        var version: String?

        func run() async throws {
            let (_, definition) = try await findDefinition(options, id: id, version: version)
            print(definition.yaml(), terminator: "")
        }
    }

    struct Retire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Retire an agent: its bindings go; its queue is kept until drained.")
        @OptionGroup var options: GlobalOptions

        @Argument(help: "Agent id.")
        var id: String

        func run() async throws {
            let id = self.id
            do {
                let removed = try await withRegistry(options) { try await $0.retire(agentID: id) }
                print("retired \(id); bindings removed: \(removed.isEmpty ? "none" : removed.joined(separator: ", "))")
            } catch {
                throw fail(error)
            }
        }
    }
}

/// One agent's definition (a given version, or the highest published one), or a failure saying what is missing.
func findDefinition(_ options: GlobalOptions, id: String, version: String?) async throws -> (StoredAgentVersion, AgentDefinition) {
    let (stored, definition, _) = try await findDefinitionAndSummary(options, id: id, version: version)
    return (stored, definition)
}

/// The same, with the agent's summary (its current version and canary).
func findDefinitionAndSummary(
    _ options: GlobalOptions, id: String, version: String?
) async throws -> (StoredAgentVersion, AgentDefinition, AgentRegistry.Summary?) {
    let found: ((StoredAgentVersion, AgentDefinition)?, summary: AgentRegistry.Summary?)
    do {
        found = try await withRegistry(options) { registry in
            let definition = try await registry.definition(agentID: id, version: version)
            return (definition, try await registry.list().first { $0.agentID == id })
        }
    } catch {
        throw fail(error)
    }
    guard let definition = found.0 else {
        if found.summary == nil { throw Failure("no agent '\(id)' is registered (see `agentry agents list`)") }
        throw Failure(
            version.map { "agent '\(id)' has no version \($0) (see `agentry agents list`)" }
                ?? "agent '\(id)' has no published version yet: publish one with `agentry agents publish \(id)`, or pass --version")
    }
    return (definition.0, definition.1, found.summary)
}

func printTable(header: [String], rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        print(
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  "))
    }
}

extension Agentry.Agents {
    /// pause / resume / stop / start: the desired state, persisted and sent to every worker.
    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop taking new events of an agent on every worker; they keep queueing.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Agent id.") var id: String
        func run() async throws {
            try await setDesiredState(.paused, id, options, "paused: running tasks finish, new events wait in agentry.agent.\(id)")
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take events of a paused or stopped agent again on every worker.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Agent id.") var id: String
        func run() async throws { try await setDesiredState(.running, id, options, "resumed: every worker serving it takes its events again") }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End an agent's instances on every worker: running tasks are cancelled and their events requeued.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Agent id.") var id: String
        func run() async throws { try await setDesiredState(.stopped, id, options, "stopped: its instances end; events wait in agentry.agent.\(id)") }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a stopped agent's instances on every worker that serves it.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Agent id.") var id: String
        func run() async throws { try await setDesiredState(.running, id, options, "started on every worker that serves it") }
    }
}

func setDesiredState(_ state: DesiredState, _ id: String, _ options: GlobalOptions, _ message: String) async throws {
    try await withRuntime(options) { connection, store in
        try await AgentControl(store: store, connection: connection).set(state, agentID: id)
    }
    print("\(id) \(message)")
}
