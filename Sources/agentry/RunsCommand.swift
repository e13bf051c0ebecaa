import AMQP
import AgentryAdmin
import AgentryCore
import AgentryRuntime
import AgentryStore
import ArgumentParser
import Foundation
import Logging

/// Opens the broker and the database for a command that reads or controls the runtime.
func withRuntime<T: Sendable>(_ options: GlobalOptions, _ body: @Sendable (AMQPConnection, RuntimeStore) async throws -> T) async throws -> T {
    let configuration = try options.resolve()
    let logger = try options.logger("agentry.runtime", default: .warning)
    let connection = AMQPConnection(configuration: configuration.amqp, logger: logger)
    do {
        try await connection.connect()
        let result = try await Database.with(configuration.database, logger: logger) { database in
            try await database.ping()
            return try await body(connection, RuntimeStore(database: database, logger: logger))
        }
        await connection.close()
        return result
    } catch {
        await connection.close()
        throw fail(error)
    }
}

func shortTime(_ date: Date?) -> String {
    guard let date else { return "-" }
    return String(Timestamp.format(date).dropFirst(11).prefix(12))
}

/// `812 tokens in, 96 out, 0.00018 USD, model gpt-4o-mini`: what a run used, the parts it has.
func usageText(_ usage: RunUsage) -> String {
    var parts: [String] = []
    if let input = usage.inputTokens { parts.append("\(input) tokens in") }
    if let output = usage.outputTokens { parts.append(usage.inputTokens == nil ? "\(output) tokens out" : "\(output) out") }
    if let cost = usage.cost { parts.append("\(costText(cost)) \(usage.currency ?? RunUsage.defaultCurrency)") }
    if let model = usage.model { parts.append("model \(model)") }
    return parts.joined(separator: ", ")
}

/// `812+96 tok, 0.00018 USD`: a run's usage in a list.
func shortUsage(_ usage: RunUsage) -> String {
    var parts: [String] = []
    if usage.inputTokens != nil || usage.outputTokens != nil {
        parts.append("\(usage.inputTokens.map(String.init) ?? "?")+\(usage.outputTokens.map(String.init) ?? "?") tok")
    }
    if let cost = usage.cost { parts.append("\(costText(cost)) \(usage.currency ?? RunUsage.defaultCurrency)") }
    return parts.isEmpty ? (usage.model ?? "-") : parts.joined(separator: ", ")
}

/// Up to 8 decimals, trailing zeros dropped: a cent's fraction stays visible.
func costText(_ cost: Double) -> String {
    var text = String(format: "%.8f", cost)
    while text.hasSuffix("0") { text.removeLast() }
    if text.hasSuffix(".") { text.removeLast() }
    return text
}

func duration(_ run: TaskRun) -> String {
    guard let end = run.finishedAt else { return "-" }
    return String(format: "%.3f s", end.timeIntervalSince(run.startedAt))
}

/// " (12.3 ms after publish)", or "" when the earlier moment is unknown.
func since(_ later: Date, _ earlier: Date?, _ what: String) -> String {
    guard let earlier else { return "" }
    return " (" + String(format: "%.1f", later.timeIntervalSince(earlier) * 1000) + " ms after \(what))"
}

extension Agentry {
    struct Runs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Task runs: list them, show one, cancel one, give feedback on one.",
            subcommands: [List.self, Show.self, Cancel.self, Feedback.self])
    }

    struct Workers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Workers and the agent instances they run, across every host.",
            subcommands: [List.self, Instances.self], defaultSubcommand: List.self)
    }
}

extension Agentry.Runs {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Runs, newest first, filtered and a page at a time (as GET /api/runs).",
            discussion: "A full page ends with the --cursor that shows the next one.")
        @OptionGroup var options: GlobalOptions

        @Option(help: "Only runs of this agent.")
        var agent: String?

        @Option(help: "Only runs for this event id.")
        var event: String?

        @Option(help: "Only runs in this state: \(TaskRun.State.allCases.map(\.rawValue).joined(separator: ", ")).")
        var state: String?

        @OptionGroup var search: SearchOptions

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            if let state, TaskRun.State(rawValue: state) == nil {
                throw ValidationError("--state '\(state)' is not one of \(TaskRun.State.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if let event, EventID(event) == nil { throw ValidationError("--event '\(event)' is not an event id (1 to 255 bytes)") }
        }

        func run() async throws {
            let query = RunSearch(
                agent: agent, eventID: event, state: state.flatMap(TaskRun.State.init(rawValue:)), type: try search.typeMatch(),
                priority: try search.priorityLevel(), since: try search.sinceDate(), until: try search.untilDate(), text: search.text,
                cursor: try search.searchCursor(.runs))
            let limit = search.limit
            let page = try await withRuntime(options) { _, store in try await store.search(query, limit: limit) }
            let runs = page.items
            if json {
                printJSON(
                    .object([
                        "runs": .array(runs.map(Representation.run)), "count": .int(Int64(runs.count)),
                        "next_cursor": page.next.map { .string($0.token) } ?? .null,
                    ]))
                return
            }
            if runs.isEmpty, query != RunSearch() {
                print("no runs match")
                return
            }
            if runs.isEmpty {
                print(
                    "no runs yet; publish an event an agent listens to, e.g. `agentry publish alert.device_offline --payload '{\"device_id\": \"stb-1\"}'`"
                )
                return
            }
            // A USAGE column only when a run listed reported some.
            let usage = runs.contains { $0.usage != nil }
            printTable(
                header: ["RUN", "AGENT", "EVENT TYPE", "PRIORITY", "TRY", "STATE", "STARTED", "DURATION"] + (usage ? ["USAGE"] : []) + ["MESSAGE"],
                rows: runs.map { run in
                    [
                        run.runID.uuidString.lowercased(), run.agentID, run.eventType, run.priority.name, String(run.attempt), run.state.rawValue,
                        shortTime(run.startedAt), duration(run),
                    ] + (usage ? [run.usage.map(shortUsage) ?? "-"] : []) + [String((run.message ?? "").prefix(60))]
                })
            printNextCursor(page.next)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One run: its event, worker, outcome, result, output and error.")
        @OptionGroup var options: GlobalOptions

        @Argument(help: "Run id.")
        var id: String

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            if UUID(uuidString: id) == nil { throw ValidationError("'\(id)' is not a run id (a UUID); `agentry runs list` shows them") }
        }

        func run() async throws {
            let id = UUID(uuidString: self.id)!
            guard let run = try await withRuntime(options, { _, store in try await store.run(id: id) }) else {
                throw Failure("no run \(self.id); `agentry runs list` shows recent runs")
            }
            if json {
                printJSON(Representation.run(run))
                return
            }
            var lines: [(String, String)] = [
                ("run", run.runID.uuidString.lowercased()), ("agent", "\(run.agentID) \(run.agentVersion)"),
                ("event", "\(run.eventID) (\(run.eventType), \(run.priority.name))"), ("attempt", String(run.attempt)),
                ("state", run.state.rawValue), ("worker", run.workerID ?? "-"),
                ("published", run.eventAt.map(Timestamp.format) ?? "-"),
                // The wait split in two: in the broker (queue, prefetch window), then in the worker (slot, claim).
                ("received", run.receivedAt.map { Timestamp.format($0) + since($0, run.eventAt, "publish") } ?? "-"),
                (
                    "started",
                    Timestamp.format(run.startedAt)
                        + since(run.startedAt, run.receivedAt ?? run.eventAt, run.receivedAt == nil ? "publish" : "receipt")
                ),
                ("finished", run.finishedAt.map(Timestamp.format) ?? "-"), ("duration", duration(run)),
            ]
            if let status = run.exitStatus { lines.append(("exit status", String(status))) }
            if let usage = run.usage { lines.append(("usage", usageText(usage))) }
            if let retry = run.retryAt { lines.append(("retry due", Timestamp.format(retry))) }
            if let message = run.message { lines.append(("message", message)) }
            if let event = run.cancelledBy { lines.append(("cancelled by", "event \(event)")) }
            if let result = run.result { lines.append(("result", result)) }
            if let output = run.output { lines.append(("output", output)) }
            if let stderr = run.stderr { lines.append(("stderr", stderr)) }
            if let parent = run.parentRunID {
                lines.append(("parent", "\(parent.uuidString.lowercased()) (task \(run.task ?? "?"), depth \(run.depth))"))
            }
            if let root = run.rootRunID, root != run.parentRunID { lines.append(("root", root.uuidString.lowercased())) }
            if run.steps > 1 { lines.append(("step", String(run.steps))) }
            if let progress = run.progress { lines.append(("progress", progress)) }
            if let until = run.waitUntil, run.state == .waiting { lines.append(("waits until", Timestamp.format(until))) }
            let width = lines.map(\.0.count).max() ?? 0
            for (key, value) in lines {
                print("\(key.padding(toLength: width, withPad: " ", startingAt: 0))  \(value)")
            }
            let tree = try await withRuntime(options) { _, store in try await RunTree.lines(of: id, store: store) }
            if !tree.isEmpty {
                print("children")
                for line in tree { print(line) }
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Cancel a task: a running one (its handler is stopped, the run recorded as cancelled) or one waiting for its retry (the retry is dropped)."
        )
        @OptionGroup var options: GlobalOptions

        @Argument(help: "Run id.")
        var id: String

        func validate() throws {
            if UUID(uuidString: id) == nil {
                throw ValidationError("'\(id)' is not a run id (a UUID); `agentry runs list --state running` shows them")
            }
        }

        func run() async throws {
            let id = UUID(uuidString: self.id)!
            let who = "\(ProcessInfo.processInfo.environment["USER"] ?? "an operator") (agentry runs cancel)"
            let run = try await withRuntime(options) { connection, store in
                try await AgentControl(store: store, connection: connection).cancel(runID: id, by: who)
            }
            print(
                run.state == .running
                    ? "cancelling run \(self.id) of \(run.agentID) on \(run.workerID ?? "?")"
                    : "cancelled the retry of run \(self.id) of \(run.agentID); it will not run again")
        }
    }
}

extension Agentry.Workers {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Workers with their heartbeats.")
        @OptionGroup var options: GlobalOptions

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let workers = try await withRuntime(options) { _, store in try await store.workers() }
            if json {
                printJSON(.object(["workers": .array(workers.map(Representation.worker))]))
                return
            }
            printTable(
                header: ["WORKER", "HOST", "PID", "STATUS", "HEARTBEAT", "LABELS"],
                rows: workers.map { w in
                    [
                        w.workerID, w.host, String(w.pid), w.alive ? w.status : (w.status == "running" ? "silent" : w.status),
                        shortTime(w.heartbeatAt),
                        w.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
                    ]
                })
        }
    }

    struct Instances: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Agent instances (one per agent and worker) with their state.")
        @OptionGroup var options: GlobalOptions

        @Option(help: "Only instances of this agent.")
        var agent: String?

        func run() async throws {
            let agent = self.agent
            let instances = try await withRuntime(options) { _, store in try await store.instances(agentID: agent) }
            // PREFETCH: the deliveries the instance takes at once, its share of the agent's max_parallel_tasks.
            printTable(
                header: ["INSTANCE", "AGENT", "VERSION", "WORKER", "STATE", "RUNNING", "PREFETCH", "CURRENT TASK", "ERROR"],
                rows: instances.map { i in
                    [
                        i.instanceID.uuidString.lowercased(), i.agentID, i.version, i.workerID, i.state.rawValue, String(i.runningTasks),
                        i.consumingPrefetch.map(String.init) ?? "-", i.currentTask?.uuidString.lowercased() ?? "-", i.error ?? "",
                    ]
                })
        }
    }
}
