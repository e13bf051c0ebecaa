import AgentryAdmin
import AgentryCore
import AgentryRuntime
import AgentryStore
import ArgumentParser
import Foundation

extension Agentry.Agents {
    struct Invoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run an agent once, by name: an event of type task.<task> sent straight to its queue, past its triggers.",
            discussion: """
                This is how an on-demand agent runs (besides being delegated to); a continuous agent runs it too. With \
                --wait, waits for the run to end (children included) and prints it.
                """)
        @OptionGroup var options: GlobalOptions

        @Argument(help: "Agent id.")
        var id: String

        @Option(help: "The event's payload, a JSON object.")
        var payload = "{}"

        @Option(help: "The task's name: the event's type is task.<name>.")
        var task = "invoke"

        @Option(help: "critical, high, normal or low.")
        var priority = "normal"

        @Option(help: "A published version to run (default: the agent's current one).")
        var version: String?

        @Option(help: "The event's id (the same id twice is one event, run once).")
        var eventID: String?

        @Flag(help: "Wait for the run to end and print it.")
        var wait = false

        @Option(help: "With --wait: give up after this many seconds.")
        var timeout: Double = 60

        func run() async throws {
            let payload = try jsonObjectOption(self.payload, flag: "--payload")
            let priority = try priorityOption(self.priority)
            var id: EventID?
            if let text = eventID {
                guard let parsed = EventID(text) else { throw ValidationError("--event-id '\(text)' is not an event id (1 to 255 bytes)") }
                id = parsed
            }
            let (agent, task, version, given) = (self.id, self.task, self.version, id)
            let who = "\(ProcessInfo.processInfo.environment["USER"] ?? "an operator") (agentry agents invoke)"
            let event: Event
            do {
                event = try await withRegistry(options) { registry in
                    try await registry.invoke(agentID: agent, task: task, payload: payload, priority: priority, version: version, by: who, id: given)
                }
            } catch {
                throw fail(error)
            }
            print("invoked \(agent): event \(event.id) (\(event.type), \(event.priority.name))")
            guard wait else { return }
            let deadline = Date().addingTimeInterval(timeout)
            let eventID = event.id.rawValue
            while Date() < deadline {
                let runs = try await withRuntime(options) { _, store in try await store.runs(agentID: agent, eventID: eventID, limit: 5) }
                if let run = runs.first, run.state.isFinished, run.state != .lost {
                    print("run \(run.runID.uuidString.lowercased()) \(run.state.rawValue)\(run.message.map { ": \($0)" } ?? "")")
                    if let result = run.result { print("result \(result)") }
                    if run.state != .succeeded { throw ExitCode(1) }
                    return
                }
                try await Task.sleep(for: .milliseconds(250))
            }
            throw Failure(
                "the run of \(agent) for event \(event.id) did not end within \(Int(timeout)) s; `agentry runs list --event \(event.id)` shows it")
        }
    }
}
