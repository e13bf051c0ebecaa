import AgentryCore
import AgentryRuntime
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The exporter against a stand-in Langfuse (``LangfuseTestServer``, real HTTP on 127.0.0.1): what it sends, how it
/// batches, retries and reports refusals, and that neither a slow nor an absent Langfuse holds up whoever records.
@Suite("Langfuse exporter")
struct LangfuseExporterTests {
    static func configuration(_ host: String, _ change: (inout LangfuseConfiguration) -> Void = { _ in }) throws -> LangfuseConfiguration {
        var configuration = try LangfuseConfiguration(host: host, publicKey: "pk-lf-test", secretKey: "sk-lf-secret")
        configuration.retryDelay = .milliseconds(50)
        change(&configuration)
        return configuration
    }

    static func generation(
        model: String = "gpt-test", output: String? = "the screen is black: reboot", error: String? = nil, cost: Double? = 0.0042,
        currency: String? = "USD"
    ) -> LangfuseGeneration {
        let started = Date(timeIntervalSince1970: 1_796_000_000.125)
        return LangfuseGeneration(
            runID: UUID(), agentID: "screen-triage", agentVersion: "1.2.0", eventID: "01a21828-0116-716e-92fd-8b75fe0d6aa1",
            eventType: "alert.blackscreen", model: model, system: "You triage TV screens.", prompt: "Device tv-1 shows black.",
            output: output, inputTokens: 120, outputTokens: 30, cost: cost, currency: currency, startedAt: started,
            endedAt: started.addingTimeInterval(1.5), error: error, attempts: error == nil ? 1 : 3,
            modelParameters: ["temperature": 0.2, "max_tokens": 256])
    }

    /// Runs the exporter while `body` goes on, then shuts it down and waits for it.
    static func withExporter(
        _ exporter: LangfuseExporter, _ body: (LangfuseExporter) async throws -> Void
    ) async throws {
        let running = Task { await exporter.run() }
        do {
            try await body(exporter)
        } catch {
            exporter.shutdown()
            await running.value
            throw error
        }
        exporter.shutdown()
        await running.value
    }

    @Test("each generation is sent as a trace whose id is the run's, with its generation: model, prompts, output, usage, cost, timing")
    func sendsTraceAndGeneration() async throws {
        let server = try await LangfuseTestServer()
        defer { server.stop() }
        let exporter = LangfuseExporter(configuration: try Self.configuration(server.url), logger: TestEnvironment.logger)
        let good = Self.generation()
        let failed = Self.generation(output: nil, error: "POST /v1/chat/completions answered 503 three times", cost: nil)
        let euro = Self.generation(cost: 0.5, currency: "EUR")
        try await Self.withExporter(exporter) { exporter in
            for generation in [good, failed, euro] { exporter.record(generation) }
            let sent = try await TestEnvironment.eventually { exporter.statistics.sent == 3 }
            #expect(sent)
        }
        #expect(exporter.statistics == .init(sent: 3, failed: 0, dropped: 0, buffered: 0))
        let expectedAuth = "Basic " + Data("pk-lf-test:sk-lf-secret".utf8).base64EncodedString()
        #expect(!server.requests.isEmpty)
        #expect(server.requests.allSatisfy { $0.authorization == expectedAuth })
        let types = server.events.compactMap { $0[path: "type"]?.stringValue }
        #expect(types.filter { $0 == "trace-create" }.count == 3 && types.filter { $0 == "generation-create" }.count == 3)
        #expect(server.events.allSatisfy { $0[path: "id"]?.stringValue.flatMap(UUID.init(uuidString:)) != nil })
        #expect(server.events.allSatisfy { $0[path: "timestamp"]?.stringValue.flatMap(Timestamp.parse) != nil })

        let runID = good.runID.uuidString.lowercased()
        let trace = try #require(server.bodies("trace-create").first { $0[path: "id"]?.stringValue == runID })
        #expect(trace[path: "name"] == "screen-triage")
        #expect(trace[path: "version"] == "1.2.0")
        #expect(trace[path: "metadata.event_type"] == "alert.blackscreen")
        #expect(trace[path: "metadata.event_id"] == "01a21828-0116-716e-92fd-8b75fe0d6aa1")

        let generation = try #require(server.bodies("generation-create").first { $0[path: "traceId"]?.stringValue == runID })
        #expect(generation[path: "model"] == "gpt-test")
        #expect(
            generation[path: "input"] == [
                ["role": "system", "content": "You triage TV screens."], ["role": "user", "content": "Device tv-1 shows black."],
            ])
        #expect(generation[path: "output"] == "the screen is black: reboot")
        #expect(generation[path: "usageDetails"] == ["input": 120, "output": 30, "total": 150])
        #expect(generation[path: "costDetails"] == ["total": 0.0042])
        #expect(generation[path: "modelParameters"] == ["temperature": 0.2, "max_tokens": 256])
        #expect(generation[path: "startTime"] == "2026-11-30T00:53:20.125Z")
        #expect(generation[path: "endTime"] == "2026-11-30T00:53:21.625Z")
        #expect(generation[path: "level"] == "DEFAULT")
        #expect(generation[path: "statusMessage"] == nil)
        #expect(generation[path: "metadata.attempts"] == 1)

        let failure = try #require(
            server.bodies("generation-create").first { $0[path: "traceId"]?.stringValue == failed.runID.uuidString.lowercased() })
        #expect(failure[path: "level"] == "ERROR")
        #expect(failure[path: "statusMessage"] == "POST /v1/chat/completions answered 503 three times")
        #expect(failure[path: "output"] == nil)
        #expect(failure[path: "costDetails"] == nil)
        #expect(failure[path: "metadata.attempts"] == 3)

        // Langfuse counts cost in USD: a cost in euros stays in the metadata.
        let inEuros = try #require(
            server.bodies("generation-create").first { $0[path: "traceId"]?.stringValue == euro.runID.uuidString.lowercased() })
        #expect(inEuros[path: "costDetails"] == nil)
        #expect(inEuros[path: "metadata.cost"] == 0.5)
        #expect(inEuros[path: "metadata.currency"] == "EUR")
    }

    @Test("generations go in batches of at most batchSize; the retries of a run share its trace id")
    func batches() async throws {
        let server = try await LangfuseTestServer()
        defer { server.stop() }
        let exporter = LangfuseExporter(configuration: try Self.configuration(server.url), logger: TestEnvironment.logger)
        var retry = Self.generation(output: nil, error: "timed out", cost: nil)
        let runID = retry.runID
        try await Self.withExporter(exporter) { exporter in
            for _ in 0..<119 { exporter.record(Self.generation()) }
            exporter.record(retry)
            retry.error = nil
            retry.output = "done on the second attempt"
            exporter.record(retry)
            let sent = try await TestEnvironment.eventually { exporter.statistics.sent == 121 }
            #expect(sent)
        }
        // 50 generations (100 events) at most per request; nothing lost, nothing sent twice.
        #expect(server.requests.count >= 3)
        #expect(server.requests.allSatisfy { $0.events.count <= 100 })
        #expect(Set(server.events.compactMap { $0[path: "id"]?.stringValue }).count == 242)
        let traces = server.bodies("trace-create").filter { $0[path: "id"]?.stringValue == runID.uuidString.lowercased() }
        let generations = server.bodies("generation-create").filter { $0[path: "traceId"]?.stringValue == runID.uuidString.lowercased() }
        #expect(traces.count == 2)
        #expect(generations.compactMap { $0[path: "level"]?.stringValue }.sorted() == ["DEFAULT", "ERROR"])
    }

    @Test("a 500 is tried again; the events a 207 refuses are logged and counted as failed")
    func retriesAndReportsRefusals() async throws {
        let server = try await LangfuseTestServer()
        defer { server.stop() }
        server.failNext(1)
        let logs = LogCapture()
        let exporter = LangfuseExporter(configuration: try Self.configuration(server.url), logger: logs.logger())
        let accepted = Self.generation()
        let refused = Self.generation(model: LangfuseTestServer.refusedModel)
        try await Self.withExporter(exporter) { exporter in
            exporter.record(accepted)
            exporter.record(refused)
            let settled = try await TestEnvironment.eventually { exporter.statistics.sent + exporter.statistics.failed == 2 }
            #expect(settled)
        }
        #expect(exporter.statistics.sent == 1)
        #expect(exporter.statistics.failed == 1)
        // The same batch twice: the 500'd one, then again.
        let requests = server.requests
        #expect(requests.count == 2)
        if requests.count == 2 {
            #expect(requests[0].body == requests[1].body)
        }
        #expect(logs.entries("Langfuse did not take a batch; trying again").count == 1)
        let refusals = logs.entries("Langfuse refused an event")
        #expect(refusals.count == 1)
        #expect(refusals.first?.metadata["agentry.run.id"] == refused.runID.uuidString.lowercased())
        #expect(refusals.first?.metadata["langfuse.status"] == "400")
        #expect(refusals.first?.metadata["error"]?.contains("model is not allowed") == true)
    }

    @Test("with Langfuse down, record returns at once, a full buffer drops its oldest, and shutdown ends within the grace")
    func langfuseDown() async throws {
        // A port that was just listening and is closed now: every connection is refused.
        let gone = try await LangfuseTestServer()
        let port = gone.port
        gone.stop()
        let logs = LogCapture()
        let configuration = try Self.configuration("http://127.0.0.1:\(port)") { c in
            c.bufferLimit = 1000
            c.maxAttempts = 1000
            c.retryDelay = .milliseconds(100)
            c.shutdownGrace = .milliseconds(500)
        }
        let exporter = LangfuseExporter(configuration: configuration, logger: logs.logger())
        let running = Task { await exporter.run() }
        let clock = ContinuousClock()
        let generation = Self.generation()
        let recording = clock.measure {
            for _ in 0..<20_000 { exporter.record(generation) }
        }
        // 20,000 records in well under a second, though nothing can be sent: appending is all record does.
        #expect(recording < .seconds(2))
        #expect(try await TestEnvironment.eventually { logs.entries("Langfuse did not take a batch; trying again").count >= 2 })
        let dropped = exporter.statistics.dropped
        #expect(dropped >= 19_000 - configuration.batchSize)
        #expect(logs.entries("Langfuse does not keep up: dropped the oldest generations of a full buffer").count == 1)

        let stopping = clock.now
        exporter.shutdown()
        await running.value
        #expect(clock.now - stopping < .seconds(3))
        let statistics = exporter.statistics
        #expect(statistics.sent == 0)
        #expect(statistics.buffered == 0)
        #expect(statistics.failed + statistics.dropped == 20_000)
        #expect(logs.entries("dropping the generations not sent to Langfuse within the shutdown grace").count == 1)
    }

    @Test("a worker with the three variables runs the exporter and stops it on SIGTERM; with only some it does not start", .timeLimit(.minutes(1)))
    func worker() async throws {
        try await TestEnvironment.migrate()
        let server = try await LangfuseTestServer()
        defer { server.stop() }
        let keys = ["LANGFUSE_HOST": server.url, "LANGFUSE_PUBLIC_KEY": "pk-lf-worker", "LANGFUSE_SECRET_KEY": "sk-lf-worker-secret"]
        let worker = try WorkerProcess(agents: ["none"], environment: keys)
        let started = try await TestEnvironment.eventually(timeout: .seconds(30)) {
            worker.output.contains("worker ready") && worker.output.contains("tracing language-model generations to Langfuse")
        }
        #expect(started, "\(worker.output)")
        #expect(!worker.output.contains("sk-lf-worker-secret"))
        worker.signal(SIGTERM)
        let status = await worker.wait(timeout: .seconds(30))
        #expect(status == 0, "exit status \(status): \(worker.output)")
        #expect(worker.output.contains("Langfuse exporter stopped"), "\(worker.output)")
        await worker.stop()

        let partial = try WorkerProcess(agents: ["none"], environment: ["LANGFUSE_HOST": server.url, "LANGFUSE_PUBLIC_KEY": "pk-lf-worker"])
        let refused = await partial.wait(timeout: .seconds(30))
        #expect(refused != 0)
        #expect(partial.output.contains("LANGFUSE_SECRET_KEY not set"), "\(partial.output)")
        await partial.stop()
    }
}
