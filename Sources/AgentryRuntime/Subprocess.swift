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

    /// Starts `argv` (argv[0] is looked up in PATH when it has no slash) with exactly `environment`.
    init(argv: [String], environment: [String: String], workingDirectory: String?, stdin: [UInt8], outputLimit: Int) throws {
        guard let program = argv.first, !program.isEmpty else { throw SpawnError(description: "the command is empty") }
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
        var child: pid_t = 0
        let rc = cArgv.withUnsafeBufferPointer { argvBuffer in
            cEnv.withUnsafeBufferPointer { envBuffer in
                agentry_spawn(program, argvBuffer.baseAddress, envBuffer.baseAddress, workingDirectory,
                              inPipe[0], outPipe[1], errPipe[1], &child)
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
            if rc == EACCES { reason = "permission denied (is it executable?)" }
            if rc == ENOTDIR || (rc == ENOENT && workingDirectory != nil) {
                reason += workingDirectory.map { "; or the working directory \($0) does not exist" } ?? ""
            }
            throw SpawnError(description: "cannot start \(program): \(reason)")
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

    /// Waits for the process to exit; then stops what is left of its process group (background children still
    /// holding the output pipes) and collects the output.
    func wait() async -> Output {
        let status = await exitStatus.value
        // Leftover members of the group would keep stdout open and the run from ending.
        kill(-pid, SIGKILL)
        let out = await stdoutCapture.value
        let err = await stderrCapture.value
        return Output(status: status, stdout: out.bytes, stdoutTruncated: out.dropped, stderr: err.bytes, stderrTruncated: err.dropped)
    }

    var hasExited: Bool { exitStatus.isComplete }

    /// Sends a signal to the whole process group.
    func signalGroup(_ signal: Int32) {
        kill(-pid, signal)
    }
}
