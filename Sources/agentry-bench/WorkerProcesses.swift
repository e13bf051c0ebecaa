import AgentryCore
import Dispatch
import Foundation
import Synchronization

/// `agentry worker --agents <id>` child processes. They are stopped with SIGTERM by pid (SIGKILL after 40 s), and
/// also when this program gets SIGTERM or SIGINT (see `ChildProcesses`).
final class WorkerProcesses: Sendable {
    let executable: String
    let agentID: String
    let environment: [String: String]
    let logDirectory: String
    /// pid → log file, in start order.
    let started = Mutex<[(pid: pid_t, log: String)]>([])

    init(executable: String, agentID: String, environment: [String: String], logDirectory: String) {
        self.executable = executable
        self.agentID = agentID
        self.environment = environment
        self.logDirectory = logDirectory
    }

    func start(count: Int) throws {
        // The admin endpoint on a free port: a bench worker must not take 8000 from a worker the user runs.
        let admin = ProcessInfo.processInfo.environment["AGENTRY_BENCH_NO_ADMIN"] == "1" ? ["--no-admin"] : ["--admin-addr", "127.0.0.1:0"]
        // The exec bench runs /bin/true, which the default allowlist does not hold.
        // AGENTRY_BENCH_WORKER_FLAGS adds flags to every bench worker (`--no-scheduler`, say), to compare runs.
        let extra = (ProcessInfo.processInfo.environment["AGENTRY_BENCH_WORKER_FLAGS"] ?? "").split(separator: " ").map(String.init)
        let arguments = [executable, "worker", "--agents", agentID, "--shutdown-grace", "5", "--exec-allow", "/bin/true"] + admin + extra
        let variables = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }.map { "\($0.key)=\($0.value)" }
        for index in 1...count {
            let log = "\(logDirectory)/worker-\(index).log"
            let pid = try spawn(arguments, environment: variables, output: log)
            started.withLock { $0.append((pid, log)) }
            ChildProcesses.add(pid)
        }
    }

    /// posix_spawn, stdin from /dev/null, stdout and stderr to `output` (this program reaps the child itself).
    private func spawn(_ arguments: [String], environment: [String], output: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, nil, argv, envp)
        guard result == 0 else { throw BenchError("cannot start \(arguments[0]): \(String(cString: strerror(result)))") }
        return pid
    }

    var pids: [pid_t] { started.withLock { $0.map(\.pid) } }

    /// The pid of a worker that is no longer running, if any.
    func exited() -> pid_t? {
        started.withLock { $0 }.first { !ChildProcesses.isRunning($0.pid) }?.pid
    }

    /// SIGTERM to every worker, then waits for each to exit (SIGKILL after 40 s).
    func stopAll() async {
        let all = started.withLock { list in
            defer { list.removeAll() }
            return list
        }
        for (pid, _) in all { kill(pid, SIGTERM) }
        for (pid, log) in all {
            let status = await ChildProcesses.wait(pid, killAfter: .seconds(40))
            if status != 0 {
                warn("worker \(pid) exited with status \(status); its log: \(log)")
            }
        }
    }

    func printLogTails() {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: logDirectory))?.filter { $0.hasPrefix("worker-") }.sorted() ?? []
        for file in files {
            let path = "\(logDirectory)/\(file)"
            guard let text = try? String(contentsOfFile: path, encoding: .utf8), !text.isEmpty else { continue }
            let tail = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(20).joined(separator: "\n")
            FileHandle.standardError.write(Data("--- \(path) (last lines)\n\(tail)\n".utf8))
        }
    }
}

/// The children this program started, reaped with waitpid, and stopped with SIGTERM should this program get SIGTERM
/// or SIGINT before it stops them itself.
enum ChildProcesses {
    static let running = Mutex<Set<pid_t>>([])
    /// Exit statuses of children reaped by `isRunning`.
    static let statuses = Mutex<[pid_t: Int32]>([:])

    static func add(_ pid: pid_t) {
        running.withLock { _ = $0.insert(pid) }
    }

    /// Reaps the child when it has exited; true while it runs.
    static func isRunning(_ pid: pid_t) -> Bool {
        if statuses.withLock({ $0[pid] }) != nil { return false }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == 0 { return true }
        let code: Int32
        if result == pid {
            let signal = status & 0x7f
            code = signal == 0 ? (status >> 8) & 0xff : 128 + signal
        } else {
            code = -1  // not our child any more (reaped elsewhere)
        }
        statuses.withLock { $0[pid] = code }
        running.withLock { _ = $0.remove(pid) }
        return false
    }

    /// Waits for a child to exit, sending SIGKILL after `killAfter`; returns its exit status (128 + signal).
    static func wait(_ pid: pid_t, killAfter: Duration) async -> Int32 {
        let clock = ContinuousClock()
        let deadline = clock.now + killAfter
        var killed = false
        while isRunning(pid) {
            if !killed && clock.now > deadline {
                warn("worker \(pid) still runs \(String(format: "%.0f", killAfter.inSeconds)) s after SIGTERM: SIGKILL")
                kill(pid, SIGKILL)
                killed = true
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return statuses.withLock { $0[pid] } ?? -1
    }

    /// On SIGTERM or SIGINT: SIGTERM to the running children, wait up to 10 s for them, then exit.
    static func installSignalHandlers() {
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                let pids = running.withLock { $0 }
                for pid in pids { kill(pid, SIGTERM) }
                let deadline = Date().addingTimeInterval(10)
                while Date() < deadline, pids.contains(where: { isRunning($0) }) { usleep(20_000) }
                for pid in pids where isRunning(pid) { kill(pid, SIGKILL) }
                FileHandle.standardError.write(Data("agentry-bench: interrupted; stopped \(pids.count) worker(s)\n".utf8))
                exit(128 + signalNumber)
            }
            source.resume()
            // Kept for the life of the process.
            _ = Unmanaged.passRetained(source as AnyObject)
        }
    }
}
