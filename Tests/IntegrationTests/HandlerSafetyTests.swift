import AMQP
import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import PostgresNIO
import Testing

@testable import AgentryRuntime

#if canImport(Glibc)
import Glibc
#endif

@Suite("Handler safety", .serialized)
struct HandlerSafetyTests {
    /// Publishes an agent with `handler`, starts a worker for it, publishes one event and waits for its run to end.
    func runOnce(
        _ h: WorkerHarness, handler: String, config: String = "auto_retry: false", extra: [String] = [],
        environment: [String: String] = [:]
    ) async throws -> TaskRun {
        let id = TestEnvironment.uniqueName("safe-")
        _ = try await h.publishAgent(agentYAML(id: id, trigger: "safe.\(id)", handler: handler, config: config))
        let worker = try WorkerProcess(agents: [id], extra: extra, environment: environment)
        try await h.bus.publish(Event(type: "safe.\(id)", payload: ["name": "ada"], priority: .high, source: "test"))
        let runs = try await h.waitForRuns(id, timeout: .seconds(30)) { runs in runs.contains { $0.state.isFinished && $0.retryAt == nil } }
        let log = worker.output
        await worker.stop()
        await h.cleanup(id)
        return try #require(runs.first { $0.state.isFinished && $0.retryAt == nil }, "runs: \(runs); worker log: \(log)")
    }

    @Test("NUL bytes on stdout and stderr, and \\u0000 in a JSON result, are stored as U+FFFD and the run ends")
    func nulOutput() async throws {
        try await withWorkerHarness { h in
            let raw = try await runOnce(h, handler: #"exec: {command: [/bin/sh, -c, 'printf "a\000b"; printf "e\000f" >&2']}"#)
            #expect(raw.state == .succeeded, "\(raw)")
            #expect(raw.output == "a\u{FFFD}b")
            #expect(raw.stderr == "e\u{FFFD}f")
            let json = try await runOnce(h, handler: #"exec: {command: [/bin/sh, -c, 'printf "%s" "$1"; exit 3', sh, '{"k\u0000": "x\u0000y"}']}"#)
            #expect(json.state == .failed, "\(json)")
            let result = try #require(json.result.flatMap { try? JSON.parse(Array($0.utf8)) }, "\(json)")
            #expect(result == .object(["k\u{FFFD}": .string("x\u{FFFD}y")]))
        }
    }

    @Test("a worker killed with SIGKILL leaves no handler process behind, not even a setsid child")
    func noOrphansAfterWorkerKill() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("orphan-")
            let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("\(id).pids").path
            defer { try? FileManager.default.removeItem(atPath: pidFile) }
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "orphan.\(id)",
                    handler: """
                        exec:
                          command: [/bin/sh, -c, 'echo $$ >> \(pidFile); /usr/bin/setsid /bin/sh -c "echo \\$\\$ >> \(pidFile); exec sleep 300" & sleep 300']
                        """))
            let worker = try WorkerProcess(agents: [id])
            try await h.bus.publish(Event(type: "orphan.\(id)", payload: [:], priority: .high, source: "test"))
            let started = try await pids(in: pidFile, count: 2)
            #expect(started.allSatisfy(isRunning))
            worker.signal(SIGKILL)
            await worker.wait()
            let gone = try await TestEnvironment.eventually(timeout: .seconds(10)) { !started.contains(where: isRunning) }
            for pid in started where isRunning(pid) { kill(pid, SIGKILL) }
            #expect(gone, "still running: \(started.filter(isRunning))")
            await h.cleanup(id)
        }
    }

    @Test("a setsid child holding stdout neither keeps a finished handler's run open nor outlives a timeout")
    func setsidChildHoldingStdout() async throws {
        try await withWorkerHarness { h in
            let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("setsid-\(UUID().uuidString.prefix(8)).pids").path
            defer { try? FileManager.default.removeItem(atPath: pidFile) }
            // The main process exits at once; the child it left in a session of its own still holds stdout.
            let finished = try await runOnce(
                h,
                handler: """
                    exec: {command: [/bin/sh, -c, '/usr/bin/setsid /bin/sh -c "echo \\$\\$ >> \(pidFile); exec sleep 300" & sleep 0.2; echo done']}
                    """)
            #expect(finished.state == .succeeded, "\(finished)")
            #expect(finished.output == "done")
            // The main process runs past its timeout.
            let timedOut = try await runOnce(
                h,
                handler: """
                    exec: {command: [/bin/sh, -c, '/usr/bin/setsid /bin/sh -c "echo \\$\\$ >> \(pidFile); exec sleep 300" & sleep 300']}
                    """, config: "auto_retry: false\ntimeout_seconds: 1")
            #expect(timedOut.state == .timedOut, "\(timedOut)")
            let children = try await pids(in: pidFile, count: 2)
            let gone = try await TestEnvironment.eventually(timeout: .seconds(10)) { !children.contains(where: isRunning) }
            for pid in children where isRunning(pid) { kill(pid, SIGKILL) }
            #expect(gone, "still running: \(children.filter(isRunning))")
        }
    }

    @Test("a handler's environment holds none of the worker's credentials, and it cannot read the worker's (as root: with --exec-user nobody)")
    func credentialsUnreadable() async throws {
        try await withWorkerHarness { h in
            // A root worker's handlers run as root, who can read even a non-dumpable process's /proc files: such a
            // worker runs them as another user (--exec-user). A worker of another user is non-dumpable, enough there.
            let asRoot = getuid() == 0
            let run = try await runOnce(
                h,
                handler: """
                    exec: {command: [/bin/sh, -c, 'echo "uid=$(id -u)"; w=$(cut -d" " -f4 /proc/$PPID/stat); for p in $PPID $w; do if tr "\\\\0" "\\\\n" < /proc/$p/environ 2>/dev/null | grep -q CANARY; then echo "read $p"; fi; done; env']}
                    """, extra: asRoot ? ["--exec-user", "nobody"] : [],
                environment: ["PGPASSWORD": "canary-pg", "AGENTRY_TEST_CANARY": "CANARY"])
            #expect(run.state == .succeeded, "\(run)")
            let output = run.output ?? ""
            #expect(!output.contains("read "), "the handler read the worker's environment: \(output)")
            if asRoot { #expect(output.contains("uid=\(try ExecUser.lookUp("nobody").uid)"), "\(output)") }
            #expect(
                !output.contains("AGENTRY_DATABASE_URL") && !output.contains("AGENTRY_AMQP_URL") && !output.contains("canary-pg")
                    && !output.contains("CANARY"), "\(output)")
            #expect(output.contains("AGENTRY_RUN_ID="))
        }
    }

    @Test("resource limits from the definition apply, and the defaults otherwise")
    func limits() async throws {
        try await withWorkerHarness { h in
            let set = try await runOnce(
                h,
                handler: """
                    exec:
                      command: [/bin/sh, -c, 'ulimit -n; ulimit -t; ulimit -v']
                      limits: {open_files: 64, cpu_seconds: 7, memory_mb: 2048}
                    """)
            #expect(set.output == "64\n7\n\(2048 * 1024)", "\(set)")
            let defaults = try await runOnce(
                h, handler: "exec: {command: [/bin/sh, -c, 'ulimit -n; ulimit -t']}", config: "auto_retry: false\ntimeout_seconds: 120")
            #expect(defaults.output == "1024\n120", "\(defaults)")
        }
    }

    @Test("a program the worker does not allow fails the run at once, naming the program and the flag")
    func allowlist() async throws {
        try await withWorkerHarness { h in
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.uniqueName("allowed-")).path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try "#!/bin/sh\necho allowed\n".write(toFile: dir + "/hello", atomically: true, encoding: .utf8)
            chmod(dir + "/hello", 0o755)
            // auto_retry on: a refusal is not retried all the same.
            let refused = try await runOnce(
                h, handler: "exec: {command: [sh, -c, 'echo hi']}", config: "auto_retry: true",
                extra: ["--exec-allow", dir])
            #expect(refused.state == .failed, "\(refused)")
            #expect(refused.attempt == 1)
            let message = refused.message ?? ""
            #expect(message.contains("does not allow the program 'sh'") && message.contains("--exec-allow /usr/bin/dash"), "\(message)")
            let allowed = try await runOnce(h, handler: "exec: {command: [\(dir)/hello]}", extra: ["--exec-allow", dir])
            #expect(allowed.state == .succeeded, "\(allowed)")
            #expect(allowed.output == "allowed")
        }
    }

    @Test("http: a redirect is refused unless follow_redirects; link-local addresses are refused; an answer over the limit is not retried")
    func httpRules() async throws {
        try await withWorkerHarness { h in
            let server = try await HTTPTestServer()
            defer { server.stop() }
            let redirected = try await runOnce(h, handler: "http: {url: 'http://127.0.0.1:\(server.port)/redirect', timeout_seconds: 5}")
            #expect(redirected.state == .failed, "\(redirected)")
            #expect(redirected.exitStatus == 302)
            #expect(redirected.message?.contains("follow_redirects") == true, "\(redirected.message ?? "")")
            let followed = try await runOnce(
                h, handler: "http: {url: 'http://127.0.0.1:\(server.port)/redirect', follow_redirects: true, timeout_seconds: 5}")
            #expect(followed.state == .succeeded, "\(followed)")
            #expect(
                followed.result == #"{"reached": "ok"}"# || followed.result.flatMap { try? JSON.parse(Array($0.utf8)) } == .object(["reached": "ok"]))
            // A name goes through the pinned clients.
            let named = try await runOnce(h, handler: "http: {url: 'http://localhost:\(server.port)/ok', timeout_seconds: 5}")
            #expect(named.state == .succeeded, "\(named)")
            let denied = try await runOnce(h, handler: "http: {url: 'http://169.254.169.254/latest/meta-data', timeout_seconds: 5}")
            #expect(denied.state == .failed, "\(denied)")
            #expect(denied.message?.contains("169.254.0.0/16") == true && denied.message?.contains("--http-deny") == true, "\(denied.message ?? "")")
            let big = try await runOnce(
                h, handler: "http: {url: 'http://127.0.0.1:\(server.port)/big', timeout_seconds: 5}", config: "auto_retry: true")
            #expect(big.state == .failed, "\(big)")
            #expect(big.attempt == 1)
            #expect(big.message?.contains("larger than") == true, "\(big.message ?? "")")
        }
    }

    @Test("a stored version that fails today's checks (a template in command[0]) is not served: logged once, its events kept")
    func storedDefinitionRechecked() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("stale-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "work.\(id)", handler: "exec:\n  command: [/bin/echo, ok]"))
            // As an earlier version, which did not check templates in commands, could have stored it.
            try await h.database.query(
                PostgresQuery(
                    unsafeSQL: """
                        UPDATE agent_registry SET definition = jsonb_set(definition, '{handler,exec,command,0}', '"{{payload.program}}"')
                        WHERE agent_id = '\(id)'
                        """), logger: TestEnvironment.logger)
            let worker = try WorkerProcess(agents: [id])
            try await h.bus.publish(Event(type: "work.\(id)", payload: ["program": "/bin/true"], priority: .normal, source: "test"))
            let logged = try await TestEnvironment.eventually(timeout: .seconds(20)) {
                worker.output.contains("cannot read the definition of \(id) 1.0.0")
            }
            #expect(logged, "\(worker.output.suffix(2000))")
            #expect(worker.output.contains("command[0]"), "the log says what to correct: \(worker.output.suffix(2000))")
            // Several syncs later (it syncs every second; its heartbeats show it has been up 3 s): still logged
            // once, no run, the event still queued.
            #expect(try await h.waitUntilUp(worker, for: 3))
            #expect(worker.output.components(separatedBy: "cannot read the definition of \(id)").count == 2, "\(worker.output.suffix(3000))")
            #expect(try await h.runs(id).isEmpty)
            await worker.stop()
            #expect(try await h.connection.queueStatus("agentry.agent.\(id)").messageCount == 1)
            // Put the readable definition back, so that the agent retires like any other and nothing later (the
            // API's contract test among them) meets the unreadable one.
            try await h.database.query(
                PostgresQuery(
                    unsafeSQL: """
                        UPDATE agent_registry SET definition = jsonb_set(definition, '{handler,exec,command,0}', '"/bin/echo"')
                        WHERE agent_id = '\(id)'
                        """), logger: TestEnvironment.logger)
            await h.cleanup(id)
        }
    }
}
