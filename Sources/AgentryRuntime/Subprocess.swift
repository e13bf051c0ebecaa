import AgentryCore
import AgentryStore
import CSpawn
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process in a process group of its own, with its stdin fed from memory and its stdout and stderr captured
/// up to a limit (the rest is read and counted, so a chatty child never blocks on a full pipe).
///
/// The pipes and the exit are served by ``ChildReactor``, one thread for every child of the process; never the
/// concurrency pool.
final class Subprocess: Sendable {
    struct Output: Sendable {
        var status: Termination
        var stdout: [UInt8]
        var stdoutTruncated: Int
        var stderr: [UInt8]
        var stderrTruncated: Int
    }

    enum Termination: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        var description: String {
            switch self {
            case .exited(let code): return "exit status \(code)"
            case .signalled(let signal): return "killed by signal \(signal)"
            }
        }

        /// From a `waitpid` status. WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out: the macros are not imported.
        init(waitStatus status: Int32) {
            self = (status & 0x7f) == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
        }
    }

    struct SpawnError: Error, CustomStringConvertible {
        var description: String
    }

    let pid: pid_t
    private let exitStatus: Completion<Termination>
    private let stdoutCapture: Completion<Captured>
    private let stderrCapture: Completion<Captured>

    /// What a pipe gave: the first `limit` bytes, and how many more were read and dropped.
    struct Captured: Sendable {
        var bytes: [UInt8]
        var dropped: Int
    }

    /// Starts `program` (a path; by default `argv[0]` looked up in the environment's PATH) with `argv` and exactly
    /// `environment`, under a run guard (see `Sources/CSpawn/guard.c`): `pid` is the guard's, which exits with the
    /// program's status once the program and everything it started are gone.
    init(
        argv: [String], program: String? = nil, environment: [String: String], workingDirectory: String?, stdin: [UInt8],
        outputLimit: Int, limits: ExecLimits = ExecLimits(), user: ExecUser? = nil
    ) throws {
        guard let name = argv.first, !name.isEmpty else { throw SpawnError(description: "the command is empty") }
        guard
            let program = program
                ?? ExecAllowlist.locate(
                    name, path: environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
                    workingDirectory: workingDirectory)
        else {
            throw SpawnError(description: "cannot start \(name): no such program (looked up in PATH when it has no '/')")
        }
        let reactor = try ChildReactor.shared()
        var inPipe: [Int32] = [-1, -1], outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        for index in 0..<3 {
            let rc = index == 0 ? agentry_pipe(&inPipe) : index == 1 ? agentry_pipe(&outPipe) : agentry_pipe(&errPipe)
            if rc != 0 {
                for fd in inPipe + outPipe + errPipe where fd >= 0 { close(fd) }
                throw SpawnError(description: "cannot create a pipe: \(String(cString: strerror(rc)))")
            }
        }
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in cArgv { free(p) }
            for p in cEnv { free(p) }
        }
        var cLimits = agentry_limits(
            memory_bytes: limits.memoryMB.map { Int64($0) << 20 } ?? -1,
            cpu_seconds: limits.cpuSeconds.map(Int64.init) ?? -1,
            open_files: limits.openFiles.map(Int64.init) ?? -1,
            processes: limits.processes.map(Int64.init) ?? -1,
            uid: user.map { Int64($0.uid) } ?? -1, gid: user.map { Int64($0.gid) } ?? -1)
        var child: pid_t = 0
        let rc = cArgv.withUnsafeBufferPointer { argvBuffer in
            cEnv.withUnsafeBufferPointer { envBuffer in
                agentry_spawn_guarded(
                    program, argvBuffer.baseAddress, envBuffer.baseAddress, workingDirectory,
                    inPipe[0], outPipe[1], errPipe[1], &cLimits, &child)
            }
        }
        close(inPipe[0])
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(inPipe[1])
            close(outPipe[0])
            close(errPipe[0])
            var reason = String(cString: strerror(rc))
            if rc == ENOENT { reason = "no such program (looked up in PATH when it has no '/')" }
            if rc == EACCES, let user { reason += " for user \(user.name), whom this worker runs handlers as (--exec-user)" }
            if rc == EACCES { reason = "permission denied (is it executable?)" }
            if rc == ENOTDIR || (rc == ENOENT && workingDirectory != nil) {
                reason += workingDirectory.map { "; or the working directory \($0) does not exist" } ?? ""
            }
            throw SpawnError(description: "cannot start \(name): \(reason)")
        }
        pid = child
        exitStatus = Completion()
        stdoutCapture = Completion()
        stderrCapture = Completion()
        // The parent's ends do not block: the reactor's one thread serves every child.
        for fd in [inPipe[1], outPipe[0], errPipe[0]] { _ = agentry_set_nonblocking(fd) }
        var watches: [(fd: Int32, watch: ChildReactor.Watch)] = [
            (inPipe[1], .input(stdin)),
            (outPipe[0], .output(limit: outputLimit, done: stdoutCapture.complete)),
            (errPipe[0], .output(limit: outputLimit, done: stderrCapture.complete)),
        ]
        let pidfd = agentry_pidfd_open(child)
        if pidfd >= 0 {
            watches.append((pidfd, .exit(pid: child, done: exitStatus.complete)))
        } else {
            // No pidfd (a kernel before 5.3): a thread of its own waits for this child.
            let exitStatus = self.exitStatus
            let child = child
            Thread.detachNewThread {
                var status: Int32 = 0
                while waitpid(child, &status, 0) < 0 && errno == EINTR {}
                exitStatus.complete(Termination(waitStatus: status))
            }
        }
        reactor.watch(watches)
    }

    /// Waits for the guard to exit (the program and everything it started are gone by then) and collects the
    /// output.
    func wait() async -> Output {
        let status = await exitStatus.value
        let out = await stdoutCapture.value
        let err = await stderrCapture.value
        return Output(status: status, stdout: out.bytes, stdoutTruncated: out.dropped, stderr: err.bytes, stderrTruncated: err.dropped)
    }

    var hasExited: Bool { exitStatus.isComplete }

    /// SIGTERM to the program's process group and to every process it started (through the guard).
    func terminate() {
        Glibc.kill(pid, SIGTERM)
    }

    /// SIGKILL to the program and every process it started (through the guard, which then exits).
    func kill() {
        Glibc.kill(pid, SIGUSR1)
    }
}
