import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import NIOHTTP1
import Synchronization
import Testing

@testable import AgentryRuntime

/// The llm handler against a chat-completion endpoint the test starts (``ChatCompletionServer``), run by real
/// `agentry worker` processes; and the usage any handler reports, recorded with its run, priced from the worker's
/// price table, shown by the API and `agentry runs show`, and counted by the worker's `/metrics`.
@Suite("LLM handler and run usage", .serialized)
struct LLMHandlerTests {
    /// Prices the test server's model by prefix: 2 per million tokens in, 10 per million out.
    static let prices = """
        currency: USD
        models:
          "gpt-test*": {input_per_million: 2, output_per_million: 10}
          other-model: {input_per_million: 1, output_per_million: 1}
        """
    /// What one answer of the test server costs by ``prices``: (100 × 2 + 20 × 10) / 1 000 000.
    static let answerCost = 0.0004

    func pricesFile() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("agentry-prices-\(UUID().uuidString.prefix(8)).yaml").path
        try Self.prices.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func llmAgent(
        _ id: String, server: ChatCompletionServer, json: Bool = true, keyVariable: String = "AGENTRY_TEST_LLM_KEY", config: String = ""
    )
        -> String
    {
        agentYAML(
            id: id, trigger: "llm.\(id)",
            handler: """
                llm:
                  base_url: \(server.baseURL)
                  model: gpt-test
                  system: "You triage device alerts."
                  prompt: "Device {{payload.device_id}}. Answer \(json ? "JSON" : "in words"). MODE:{{payload.mode}} ANSWER:{{payload.answer}}"
                  api_key_env: \(keyVariable)
                  temperature: 0.2
                  max_tokens: 300
                  json: \(json)
                  timeout_seconds: 20
                """, config: config)
    }

    /// The port of the admin endpoint a worker started with `--admin-addr 127.0.0.1:0`, from its log.
    func adminPort(_ worker: WorkerProcess) async throws -> Int {
        var port: Int?
        _ = try await TestEnvironment.eventually(timeout: .seconds(30)) {
            for line in worker.output.split(separator: "\n") where line.contains("admin endpoint listening") {
                if let range = line.range(of: "127.0.0.1:") {
                    port = Int(line[range.upperBound...].prefix { $0.isNumber })
                }
            }
            return port != nil
        }
        return try #require(port, "the worker's admin endpoint listens: \(worker.output)")
    }

    /// The value of one sample of a Prometheus text (0 when absent).
    func sample(_ metrics: String, _ name: String) -> Double {
        for line in metrics.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ").last ?? "") ?? 0
        }
        return 0
    }

    @Test(
        "an llm run succeeds with the parsed answer, its events published, usage and cost recorded and shown; a 429 is retried after Retry-After; /metrics counts tokens and cost"
    )
    func succeeds() async throws {
        try await withAdminServer { a in
            let h = a.worker
            let server = try await ChatCompletionServer()
            defer { server.stop() }
            let prices = try pricesFile()
            defer { try? FileManager.default.removeItem(atPath: prices) }
            let id = TestEnvironment.uniqueName("llm-")
            _ = try await h.publishAgent(llmAgent(id, server: server))
            let followUps = try await h.bus.subscribe(to: "llm.done.\(id)")
            let worker = try WorkerProcess(
                agents: [id], extra: ["--llm-prices", prices, "--admin-addr", "127.0.0.1:0"],
                environment: ["AGENTRY_TEST_LLM_KEY": "sk-test-key"])
            defer { Task { await worker.stop() } }
            let answer = #"{"verdict": "reboot", "events": [{"type": "llm.done.\#(id)", "payload": {"device_id": "tv-1"}}]}"#
            let plain = Event(type: "llm.\(id)", payload: ["device_id": "tv-1", "mode": "ok", "answer": .string(answer)], source: "test")
            let limited = Event(type: "llm.\(id)", payload: ["device_id": "tv-2", "mode": "429", "answer": #"{"verdict": "wait"}"#], source: "test")
            try await h.bus.publish(plain)
            try await h.bus.publish(limited)
            let runs = try await h.waitForRuns(id, timeout: .seconds(40)) { $0.filter { $0.state.isFinished }.count == 2 }

            let run = try #require(runs.first { $0.eventID == plain.id.rawValue })
            #expect(run.state == .succeeded, "\(run.message ?? "") \(worker.output)")
            let result = try #require(run.result.flatMap { try? JSON.parse($0) })
            #expect(result == (try JSON.parse(answer)), "the result is the model's answer, parsed")
            let usage = try #require(run.usage, "usage recorded")
            #expect(usage.inputTokens == ChatCompletionServer.promptTokens && usage.outputTokens == ChatCompletionServer.completionTokens)
            #expect(usage.model == ChatCompletionServer.model && usage.currency == "USD")
            #expect(abs((usage.cost ?? 0) - Self.answerCost) < 1e-12, "priced by the table's prefix entry: \(usage)")
            #expect(run.output?.contains("finish_reason stop") == true, "\(run.output ?? "")")

            // What the endpoint received: the key, the model, JSON mode and the filled messages.
            let sent = try #require(await server.requests(containing: "Device tv-1.").first)
            #expect(sent.authorization == "Bearer sk-test-key")
            #expect(sent.body[path: "model"]?.stringValue == "gpt-test" && sent.body[path: "max_tokens"]?.intValue == 300)
            #expect(sent.body[path: "temperature"]?.numberValue == 0.2)
            #expect(sent.body[path: "response_format.type"]?.stringValue == "json_object")
            #expect(sent.body[path: "messages"]?.arrayValue?.first?[path: "content"]?.stringValue == "You triage device alerts.")

            // The answer's events are published as from any handler.
            var iterator = followUps.makeAsyncIterator()
            let followUp = try #require(try await iterator.next())
            followUp.ack()
            followUps.cancel()
            #expect(followUp.event.payload["device_id"]?.stringValue == "tv-1" && followUp.event.causationID == plain.id.rawValue)

            // The 429: tried again after the endpoint's Retry-After (by the server's own clock), and then it succeeded.
            let retried = try #require(runs.first { $0.eventID == limited.id.rawValue })
            #expect(retried.state == .succeeded && retried.attempt == 1, "\(retried.state) \(retried.message ?? "")")
            let tries = await server.requests(containing: "Device tv-2.")
            #expect(tries.count == 2, "one 429, one success: \(tries.count)")
            if tries.count == 2 {
                let gap = tries[1].at.timeIntervalSince(tries[0].at)
                #expect(gap >= 0.95 && gap < 5, "the second request came \(gap) s after the first")
            }
            #expect(retried.usage?.inputTokens == ChatCompletionServer.promptTokens, "the usage of the answer that came")

            // Shown by the API and the CLI.
            let shown = try await a.request(.GET, "/api/runs/\(run.runID.uuidString.lowercased())")
            #expect(shown.status == 200)
            #expect(
                shown.json?[path: "usage.input_tokens"]?.intValue == 100 && shown.json?[path: "usage.output_tokens"]?.intValue == 20, "\(shown.text)")
            #expect(shown.json?[path: "usage.model"]?.stringValue == ChatCompletionServer.model && shown.json?[path: "usage.currency"] == "USD")
            #expect(abs((shown.json?[path: "usage.cost"]?.numberValue ?? 0) - Self.answerCost) < 1e-12, "\(shown.text)")
            let cli = try TestEnvironment.run(TestEnvironment.agentryExecutable, ["runs", "show", run.runID.uuidString])
            #expect(cli.output.contains("100 tokens in, 20 out, 0.0004 USD, model \(ChatCompletionServer.model)"), "\(cli.output)")
            let list = try TestEnvironment.run(TestEnvironment.agentryExecutable, ["runs", "list", "--agent", id])
            #expect(list.output.contains("USAGE") && list.output.contains("100+20 tok, 0.0004 USD"), "\(list.output)")

            // The worker's /metrics: both runs' tokens and cost, per agent and model.
            let port = try await adminPort(worker)
            let metrics = try await AdminHarness(port: port, token: nil, worker: h).request(.GET, "/metrics").text
            let labels = #"agent="\#(id)",model="\#(ChatCompletionServer.model)""#
            #expect(sample(metrics, #"agentry_llm_tokens_total{\#(labels),kind="input"}"#) == 200, "\(metrics)")
            #expect(sample(metrics, #"agentry_llm_tokens_total{\#(labels),kind="output"}"#) == 40)
            #expect(abs(sample(metrics, #"agentry_llm_cost_total{\#(labels),currency="USD"}"#) - 2 * Self.answerCost) < 1e-12)
            await worker.stop()
            await h.cleanup(id)
        }
    }

    @Test(
        "a 400 fails the run at once with the endpoint's message; an answer that is not JSON fails it, its text kept; a missing key fails it, saying which variable"
    )
    func failures() async throws {
        try await withWorkerHarness { h in
            let server = try await ChatCompletionServer()
            defer { server.stop() }
            let id = TestEnvironment.uniqueName("llm-bad-")
            let keyless = TestEnvironment.uniqueName("llm-nokey-")
            // Three tries by the run's policy, one second apart: a 400 must use none of them.
            let retry = "retry: {attempts: 3, backoff: {initial_seconds: 1}}\n"
            _ = try await h.publishAgent(llmAgent(id, server: server) + retry)
            _ = try await h.publishAgent(llmAgent(keyless, server: server, keyVariable: "AGENTRY_TEST_NO_SUCH_KEY") + retry)
            let worker = try WorkerProcess(agents: [id, keyless], environment: ["AGENTRY_TEST_LLM_KEY": "sk-test-key"])
            defer { Task { await worker.stop() } }
            let rejected = Event(type: "llm.\(id)", payload: ["device_id": "tv-400", "mode": "400"], source: "test")
            let prose = Event(type: "llm.\(id)", payload: ["device_id": "tv-prose", "mode": "ok", "answer": "Reboot it, I think."], source: "test")
            let noKey = Event(type: "llm.\(keyless)", payload: ["device_id": "tv-key", "mode": "ok", "answer": "{}"], source: "test")
            try await h.bus.publish(rejected)
            try await h.bus.publish(noKey)
            try await h.bus.publish(prose)

            let failed = try await h.waitForRuns(id, timeout: .seconds(30)) { runs in
                runs.contains { $0.eventID == rejected.id.rawValue && $0.state == .failed && $0.retryAt == nil }
            }.first { $0.eventID == rejected.id.rawValue }
            let run = try #require(failed)
            #expect(run.attempt == 1 && run.exitStatus == 400, "\(run)")
            #expect(run.message?.contains(ChatCompletionServer.badRequestMessage) == true, "\(run.message ?? "")")
            #expect(run.message?.contains("answered 400") == true && run.message?.contains("not retried") == true, "\(run.message ?? "")")
            #expect(await server.requests(containing: "Device tv-400.").count == 1, "sent once")

            let keyRuns = try await h.waitForRuns(keyless, timeout: .seconds(30)) { $0.contains { $0.state == .failed && $0.retryAt == nil } }
            #expect(keyRuns.count == 1, "not retried: \(keyRuns.map(\.state))")
            #expect(keyRuns.first?.message?.contains("AGENTRY_TEST_NO_SUCH_KEY") == true, "\(keyRuns.first?.message ?? "")")
            #expect(keyRuns.first?.message?.contains("is not set") == true)
            #expect(await server.requests(containing: "Device tv-key.").isEmpty, "nothing sent without the key")

            // Not JSON: each try fails, saying so, with the text as output and its usage recorded (the tokens were spent).
            let proseRuns = try await h.waitForRuns(id, timeout: .seconds(30)) { runs in
                runs.contains { $0.eventID == prose.id.rawValue && $0.state == .failed }
            }.filter { $0.eventID == prose.id.rawValue }
            let first = try #require(proseRuns.first)
            #expect(first.message?.contains("not JSON") == true, "\(first.message ?? "")")
            #expect(first.output == "Reboot it, I think.", "\(first.output ?? "")")
            #expect(first.usage?.inputTokens == ChatCompletionServer.promptTokens && first.usage?.cost == nil, "no price table: no cost")
            await worker.stop()
            await h.cleanup(id)
            await h.cleanup(keyless)
        }
    }

    @Test("usage in an exec handler's result is recorded and priced; an unusable one fails the run, saying why; a plain-text llm answer is {answer}")
    func usageFromAnyHandler() async throws {
        try await withWorkerHarness { h in
            let server = try await ChatCompletionServer()
            defer { server.stop() }
            let prices = try pricesFile()
            defer { try? FileManager.default.removeItem(atPath: prices) }
            let exec = TestEnvironment.uniqueName("usage-")
            let words = TestEnvironment.uniqueName("llm-words-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: exec, trigger: "usage.\(exec)",
                    handler: """
                        exec:
                          command: [/bin/sh, -c, "printf '%s' \\"$USAGE\\"", sh]
                          env: {USAGE: "{{payload.result}}"}
                        """, config: "auto_retry: false"))
            _ = try await h.publishAgent(llmAgent(words, server: server, json: false))
            let worker = try WorkerProcess(
                agents: [exec, words], extra: ["--llm-prices", prices], environment: ["AGENTRY_TEST_LLM_KEY": "sk-test-key"])
            defer { Task { await worker.stop() } }
            let priced = Event(
                type: "usage.\(exec)",
                payload: ["result": #"{"done": true, "usage": {"input_tokens": 1000, "output_tokens": 100, "model": "other-model"}}"#],
                source: "test")
            let own = Event(
                type: "usage.\(exec)", payload: ["result": #"{"usage": {"output_tokens": 7, "cost": 0.25, "currency": "EUR"}}"#], source: "test")
            let unusable = Event(type: "usage.\(exec)", payload: ["result": #"{"usage": {"input_tokens": -5}}"#], source: "test")
            for event in [priced, own, unusable] { try await h.bus.publish(event) }
            try await h.bus.publish(
                Event(type: "llm.\(words)", payload: ["device_id": "tv-w", "mode": "ok", "answer": "Reboot it."], source: "test"))

            let runs = try await h.waitForRuns(exec, timeout: .seconds(30)) { $0.filter { $0.state.isFinished }.count == 3 }
            let first = try #require(runs.first { $0.eventID == priced.id.rawValue })
            #expect(first.state == .succeeded)
            #expect(
                first.usage == RunUsage(inputTokens: 1000, outputTokens: 100, cost: 0.0011, currency: "USD", model: "other-model"),
                "\(String(describing: first.usage))")
            let second = try #require(runs.first { $0.eventID == own.id.rawValue })
            #expect(
                second.usage == RunUsage(outputTokens: 7, cost: 0.25, currency: "EUR"), "the handler's own cost: \(String(describing: second.usage))")
            let third = try #require(runs.first { $0.eventID == unusable.id.rawValue })
            #expect(third.state == .failed && third.usage == nil)
            #expect(third.message?.contains("unusable usage") == true && third.message?.contains("input_tokens") == true, "\(third.message ?? "")")

            let answered = try await h.waitForRuns(words, timeout: .seconds(30)) { $0.contains { $0.state.isFinished } }
            let result = try #require(answered.first?.result.flatMap { try? JSON.parse($0) })
            #expect(result[path: "answer"]?.stringValue == "Reboot it." && result[path: "finish_reason"]?.stringValue == "stop", "\(result)")
            #expect(result[path: "model"]?.stringValue == ChatCompletionServer.model)
            let request = try #require(await server.requests(containing: "Device tv-w.").first)
            #expect(request.body[path: "response_format"] == nil, "no JSON mode without json: true")
            await worker.stop()
            await h.cleanup(exec)
            await h.cleanup(words)
        }
    }

    /// The calls an observer was told of.
    final class Observed: Sendable {
        let records = Mutex<[LLMCallRecord]>([])
    }

    @Test(
        "each call is handed to the observer (prompts filled, tries, status, priced usage); a Retry-After past the timeout is not waited for; the deny list refuses the endpoint"
    )
    func observerTimeoutAndPolicy() async throws {
        let server = try await ChatCompletionServer()
        defer { server.stop() }
        var definition = try AgentDefinition.parse(yaml: llmAgent("llm-direct", server: server))
        let observed = Observed()
        var runner = HandlerRunner(logger: TestEnvironment.logger, httpClient: HandlerRunner.client)
        runner.environment = ["AGENTRY_TEST_LLM_KEY": "sk-direct"]
        runner.prices = try LLMPriceTable.parse(yaml: Self.prices)
        runner.llmObserver = { record in observed.records.withLock { $0.append(record) } }
        func context(_ payload: JSONObject) -> TaskContext {
            TaskContext(
                runID: UUID(), agent: definition, event: Event(type: "llm.direct", payload: payload, source: "test"), attempt: 1,
                workerID: "test-worker", instanceID: nil, timeout: .seconds(20), killGrace: .seconds(1), outputLimit: 64 * 1024)
        }

        let asked = context(["device_id": "tv-obs", "mode": "429", "answer": #"{"ok": true}"#])
        let outcome = await runner.run(asked)
        #expect(outcome.status == .succeeded && outcome.result == .object(["ok": .bool(true)]), "\(outcome.message ?? "")")
        let record = try #require(observed.records.withLock { $0.last })
        #expect(record.runID == asked.runID && record.agentID == "llm-direct" && record.agentVersion == "1.0.0")
        #expect(record.eventID == asked.event.id.rawValue && record.eventType == "llm.direct")
        #expect(record.model == "gpt-test" && record.baseURL == server.baseURL && record.system == "You triage device alerts.")
        #expect(record.prompt.hasPrefix("Device tv-obs. Answer JSON. MODE:429 ANSWER:"), "\(record.prompt)")
        #expect(record.output == #"{"ok": true}"# && record.statusCode == 200 && record.error == nil && record.attempts == 2)
        #expect(record.endedAt.timeIntervalSince(record.startedAt) >= 0.95, "the Retry-After wait is inside the call")
        #expect(record.usage?.inputTokens == 100 && abs((record.usage?.cost ?? 0) - Self.answerCost) < 1e-12, "\(String(describing: record.usage))")

        // A second (Retry-After: 1) that would end past a 1 s timeout is not waited for; the run's policy may retry.
        guard case .llm(var short)? = definition.handler else { return }
        short.timeoutSeconds = 1
        definition.handler = .llm(short)
        let hurried = await runner.run(context(["device_id": "tv-hurry", "mode": "429", "answer": "{}"]))
        #expect(hurried.status == .failed && hurried.retryable && hurried.exitStatus == 429, "\(hurried.status)")
        #expect(
            hurried.message?.contains("answered 429") == true && hurried.message?.contains("would pass the timeout") == true,
            "\(hurried.message ?? "")")
        #expect(observed.records.withLock { $0.last?.error } == hurried.message)

        // The worker's deny list holds for the endpoint as for an http handler.
        runner.policy.httpDeny = [try AddressRange("127.0.0.0/8")]
        let denied = await runner.run(context(["device_id": "tv-denied", "mode": "ok", "answer": "{}"]))
        #expect(denied.status == .failed && !denied.retryable && denied.message?.contains("refused") == true, "\(denied.message ?? "")")
        #expect(await server.requests(containing: "Device tv-denied.").isEmpty)
    }

    @Test("a run called again after its children records the sum of its steps' usage")
    func usageAcrossSteps() async throws {
        try await withWorkerHarness { h in
            let parent = TestEnvironment.uniqueName("usage-parent-")
            let child = TestEnvironment.uniqueName("usage-child-")
            _ = try await h.publishAgent(agentYAML(id: child, trigger: "never.\(child)", handler: "builtin: noop"))
            let first = #"{"delegate": [{"task": "check"}], "await": true, "usage": {"input_tokens": 10, "output_tokens": 1, "cost": 0.5}}"#
            let resumed = #"{"done": true, "usage": {"input_tokens": 5, "output_tokens": 2, "cost": 0.25, "model": "m-2"}}"#
            let script = #"in=$(cat); case "$in" in *'"children"'*) printf '%s' '\#(resumed)' ;; *) printf '%s' '\#(first)' ;; esac"#
            _ = try await h.publishAgent(
                agentYAML(
                    id: parent, trigger: "start.\(parent)",
                    handler: """
                        exec:
                          command: [/bin/sh, -c, '\(script.replacingOccurrences(of: "'", with: "''"))']
                        """,
                    extra: "subagents:\n  - {id: \(child), version: '^1.0.0', delegate_for: [check]}\n"))
            let worker = try WorkerProcess(agents: [parent, child])
            try await h.bus.publish(Event(type: "start.\(parent)", payload: [:], source: "test"))
            let runs = try await h.waitForRuns(parent, timeout: .seconds(30)) { $0.contains { $0.state.isFinished } }
            await worker.stop()
            let run = try #require(runs.first)
            #expect(run.state == .succeeded && run.steps == 2, "\(run.state) \(run.steps) \(run.message ?? "")")
            #expect(
                run.usage == RunUsage(inputTokens: 15, outputTokens: 3, cost: 0.75, currency: "USD", model: "m-2"), "\(String(describing: run.usage))"
            )
            await h.cleanup(parent)
            await h.cleanup(child)
        }
    }

    @Test("a worker refuses to start with a price table it cannot use, naming the problem and its place")
    func badPriceTable() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("agentry-bad-prices-\(UUID().uuidString.prefix(8)).yaml").path
        try "models:\n  gpt-4o-mini: {input_per_million: -1, output_per_million: 0.6}\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try TestEnvironment.run(TestEnvironment.agentryExecutable, ["worker", "--no-admin", "--llm-prices", path])
        #expect(result.status != 0)
        #expect(result.output.contains("\(path):2:") && result.output.contains("input_per_million must be a number, 0 or more"), "\(result.output)")
        let missing = try TestEnvironment.run(
            TestEnvironment.agentryExecutable, ["worker", "--no-admin"], environment: ["AGENTRY_LLM_PRICES": path + ".missing"])
        #expect(missing.status != 0 && missing.output.contains("cannot read the price table"), "\(missing.output)")
    }

    @Test("with LANGFUSE_* set, a worker traces each llm run to Langfuse: the run id as trace id, its prompts, answer and usage")
    func tracedToLangfuse() async throws {
        try await withWorkerHarness { h in
            let server = try await ChatCompletionServer()
            defer { server.stop() }
            let langfuse = try await LangfuseTestServer()
            defer { langfuse.stop() }
            let id = TestEnvironment.uniqueName("llm-traced-")
            _ = try await h.publishAgent(llmAgent(id, server: server))
            let worker = try WorkerProcess(
                agents: [id],
                environment: [
                    "AGENTRY_TEST_LLM_KEY": "sk-test", "LANGFUSE_HOST": langfuse.url, "LANGFUSE_PUBLIC_KEY": "pk-lf-test",
                    "LANGFUSE_SECRET_KEY": "sk-lf-secret",
                ])
            try await h.bus.publish(
                Event(type: "llm.\(id)", payload: ["device_id": "tv-9", "mode": "ok", "answer": #"{"verdict": "reboot"}"#], source: "test"))
            let run = try #require(try await h.waitForRuns(id) { $0.contains { $0.state == .succeeded } }.first { $0.state == .succeeded })
            let runID = run.runID.uuidString.lowercased()
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(20)) {
                    langfuse.bodies("generation-create").contains { $0[path: "traceId"]?.stringValue == runID }
                })
            await worker.stop()
            let generation = try #require(langfuse.bodies("generation-create").first { $0[path: "traceId"]?.stringValue == runID })
            #expect(generation[path: "model"]?.stringValue == ChatCompletionServer.model, "\(generation)")
            #expect(JSON.serialize(generation).contains("Device tv-9"), "the prompt is traced: \(generation)")
            #expect(JSON.serialize(generation).contains("reboot"), "the answer is traced")
            #expect(generation[path: "usageDetails.input"]?.intValue == Int64(ChatCompletionServer.promptTokens), "\(generation)")
            #expect(langfuse.bodies("trace-create").contains { $0[path: "id"]?.stringValue == runID && $0[path: "name"]?.stringValue == id })
            #expect(!worker.output.contains("sk-lf-secret"), "the secret key is never logged")
            await h.cleanup(id)
        }
    }
}
