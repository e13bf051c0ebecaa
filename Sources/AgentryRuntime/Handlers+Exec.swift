import AgentryCore
import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

extension HandlerRunner {
    /// The worker's variables that exec handlers inherit, read once: `ProcessInfo.environment` copies the whole
    /// environment into a new dictionary on every call (5% of a worker's CPU when it ran one per run). Only these
    /// names pass: never the worker's credentials (`AGENTRY_DATABASE_URL`, `AGENTRY_AMQP_URL`, `AGENTRY_ADMIN_TOKEN`,
    /// `PGPASSWORD`, …).
    static let inheritedEnvironment: [String: String] = {
        let inherited = ProcessInfo.processInfo.environment
        var environment: [String: String] = [:]
        for name in ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME"] {
            if let value = inherited[name] { environment[name] = value }
        }
        if environment["PATH"] == nil { environment["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        return environment
    }()

    /// The variables every exec handler gets besides its own `env`: a few of the worker's (PATH, HOME, LANG, …,
    /// never its credentials) and the run's identity.
    static func environment(for exec: ExecHandler, _ context: TaskContext) -> [String: String] {
        var environment = inheritedEnvironment
        for (name, value) in exec.env {
            environment[name] = EventTemplate.renderText(value, with: context.event)
        }
        environment["AGENTRY_RUN_ID"] = context.runID.uuidString.lowercased()
        environment["AGENTRY_AGENT_ID"] = context.agent.metadata.id
        environment["AGENTRY_AGENT_VERSION"] = context.agent.metadata.version
        environment["AGENTRY_EVENT_ID"] = context.event.id.rawValue
        environment["AGENTRY_EVENT_TYPE"] = context.event.type
        environment["AGENTRY_EVENT_PRIORITY"] = context.event.priority.name
        environment["AGENTRY_ATTEMPT"] = String(context.attempt)
        environment["AGENTRY_STEP"] = String(context.step)
        // What the definition grants, qualified and comma-separated (`devices.read,devices.take_control`).
        environment["AGENTRY_PERMISSIONS"] = context.agent.grantedPermissions.joined(separator: ",")
        if let tree = context.tree {
            environment["AGENTRY_PARENT_RUN_ID"] = tree.parent.uuidString.lowercased()
            environment["AGENTRY_ROOT_RUN_ID"] = tree.root.uuidString.lowercased()
            environment["AGENTRY_DEPTH"] = String(tree.depth)
            environment["AGENTRY_TASK"] = tree.task
        }
        environment["AGENTRY_WORKER_ID"] = context.workerID
        if let token = context.runToken { environment["AGENTRY_RUN_TOKEN"] = token }
        if let url = context.adminURL { environment["AGENTRY_ADMIN_URL"] = url }
        environment["AGENTRY_TIMEOUT_SECONDS"] = String(context.timeout.components.seconds)
        if let token = context.fencingTokens.values.max() {
            // A guarded system that remembers the largest token it has seen can refuse a holder that lost its lock.
            environment["AGENTRY_RESOURCES"] = context.resourcesText
            environment["AGENTRY_FENCING_TOKEN"] = String(token)
        }
        return environment
    }

    func runExec(_ exec: ExecHandler, _ context: TaskContext) async -> HandlerOutcome {
        // command[0] holds no template (definitions refuse one); the arguments are filled from the event.
        let argv = exec.command.map { EventTemplate.renderText($0, with: context.event) }
        let environment = Self.environment(for: exec, context)
        guard let program = ExecAllowlist.locate(argv[0], path: environment["PATH"] ?? "", workingDirectory: exec.workingDirectory) else {
            return .failed(
                "cannot start \(argv[0]): no such program (a name without '/' is looked up in PATH: \(environment["PATH"] ?? ""))",
                retryable: false)
        }
        if let refusal = policy.execAllow.refusal(of: program, named: argv[0]) {
            return .failed(refusal, retryable: false)
        }
        let limits = (exec.limits ?? ExecLimits()).withDefaults(timeoutSeconds: Int(context.timeout.components.seconds))
        let process: Subprocess
        do {
            process = try Subprocess(
                argv: argv, program: program, environment: environment, workingDirectory: exec.workingDirectory,
                stdin: context.input, outputLimit: context.outputLimit, limits: limits,
                user: policy.execUser)
        } catch {
            return .failed("\(error)")
        }
        // The timer and cancellation stop the handler and everything it started: TERM, then KILL after the grace.
        let stopped = NIOLockedValueBox<HandlerOutcome.Status?>(nil)
        let timeout = context.timeout
        let grace = context.killGrace
        @Sendable func stopAll(_ why: HandlerOutcome.Status) {
            let first = stopped.withLockedValue { state -> Bool in
                guard state == nil else { return false }
                state = why
                return true
            }
            guard first, !process.hasExited else { return }
            process.terminate()
            Task {
                try? await Task.sleep(for: grace)
                if !process.hasExited { process.kill() }
            }
        }
        // A timer on an event loop, not a sleeping task: the run nearly always ends long before its timeout (an hour
        // by default), and a cancelled `Task.sleep` keeps its wake-up job allocated until the deadline it slept for
        // (https://github.com/swiftlang/swift/issues/60441), which made a worker running exec handlers grow by about
        // 750 bytes per run for an hour (20 MB over 30,000 runs of `/bin/true`). A cancelled scheduled task is
        // dropped at once.
        let timer = httpClient.eventLoopGroup.any().scheduleTask(in: TimeAmount(timeout)) { stopAll(.timedOut) }
        let output = await withTaskCancellationHandler {
            await process.wait()
        } onCancel: {
            stopAll(.cancelled)
        }
        timer.cancel()
        var status: HandlerOutcome.Status
        var message: String?
        switch stopped.withLockedValue({ $0 }) {
        case .timedOut?:
            status = .timedOut
            message =
                "\(argv[0]) did not finish within \(timeout.components.seconds) s (timeout_seconds); it and every process it started were stopped"
        case .cancelled?:
            status = .cancelled
            message = "the run was cancelled; \(argv[0]) and every process it started were stopped"
        default:
            status = output.status == .exited(0) ? .succeeded : .failed
            if status == .failed { message = "\(argv[0]) ended with \(output.status)" }
        }
        let stdout = Self.text(output.stdout, dropped: output.stdoutTruncated)
        let stderr = output.stderr.isEmpty ? nil : Self.text(output.stderr, dropped: output.stderrTruncated)
        var result: JSONValue?
        var plain: String? = stdout.isEmpty ? nil : stdout
        if output.stdoutTruncated == 0, !stdout.isEmpty, let parsed = try? JSON.parse(Array(stdout.utf8)) {
            result = parsed
            plain = nil
        }
        let exitStatus: Int? = if case .exited(let code) = output.status { Int(code) } else { nil }
        return HandlerOutcome(status: status, result: result, output: plain, stderr: stderr, exitStatus: exitStatus, message: message)
    }

    static func text(_ bytes: [UInt8], dropped: Int) -> String {
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return dropped > 0 ? text + "\n… (\(dropped) more bytes not kept)" : text
    }
}
