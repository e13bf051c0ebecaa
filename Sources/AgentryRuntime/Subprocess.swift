import CSpawn
import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// A child process in a process group of its own, with its stdin fed from memory and its stdout and stderr captured
/// up to a limit (the rest is read and counted, so a chatty child never blocks on a full pipe).
///
/// Blocking calls (`write`, `read`, `waitpid`) run on threads of their own: a handful per running exec handler, never
/// on the concurrency pool.
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
    }

    struct SpawnError: Error, CustomStringConvertible {
        var description: String
    }

    let pid: pid_t
    private let exitStatus: NIOLockedValueBox<(status: Termination?, waiters: [CheckedContinuation<Termination, Never>])>
    private let stdoutCapture: Capture
    private let stderrCapture: Capture

    /// Starts `argv` (argv[0] is looked up in PATH when it has no slash) with exactly `environment`.
    init(argv: [String], environment: [String: String], workingDirectory: String?, stdin: [UInt8], outputLimit: Int) throws {
        guard let program = argv.first, !program.isEmpty else { throw SpawnError(description: "the command is empty") }
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
        exitStatus = NIOLockedValueBox((nil, []))
        stdoutCapture = Capture(fd: outPipe[0], limit: outputLimit)
        stderrCapture = Capture(fd: errPipe[0], limit: outputLimit)

        let stdinFD = inPipe[1]
        Thread.detachNewThread {
            stdin.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = write(stdinFD, buffer.baseAddress! + offset, buffer.count - offset)
                    if n < 0 { if errno == EINTR { continue }; break }   // EPIPE: the child does not read stdin
                    offset += n
                }
            }
            close(stdinFD)
        }
        let box = exitStatus
        let spawned = child
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) < 0 && errno == EINTR {}
            // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out: the macros are not imported.
            let termination: Termination = (status & 0x7f) == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
            let waiters = box.withLockedValue { state -> [CheckedContinuation<Termination, Never>] in
                state.status = termination
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: termination) }
        }
    }

    /// Waits for the process to exit; then stops what is left of its process group (background children still
    /// holding the output pipes) and collects the output.
    func wait() async -> Output {
        let status = await withCheckedContinuation { (continuation: CheckedContinuation<Termination, Never>) in
            let done = exitStatus.withLockedValue { state -> Termination? in
                if let status = state.status { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
        // Leftover members of the group would keep stdout open and the run from ending.
        kill(-pid, SIGKILL)
        let out = await stdoutCapture.result()
        let err = await stderrCapture.result()
        return Output(status: status, stdout: out.bytes, stdoutTruncated: out.dropped, stderr: err.bytes, stderrTruncated: err.dropped)
    }

    var hasExited: Bool { exitStatus.withLockedValue { $0.status != nil } }

    /// Sends a signal to the whole process group.
    func signalGroup(_ signal: Int32) {
        kill(-pid, signal)
    }

    /// Reads a pipe to its end on a thread of its own, keeping the first `limit` bytes.
    final class Capture: Sendable {
        private let state = NIOLockedValueBox<(result: (bytes: [UInt8], dropped: Int)?, waiters: [CheckedContinuation<(bytes: [UInt8], dropped: Int), Never>])>((nil, []))

        init(fd: Int32, limit: Int) {
            let state = self.state
            Thread.detachNewThread {
                var kept: [UInt8] = []
                var dropped = 0
                var buffer = [UInt8](repeating: 0, count: 16 * 1024)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n < 0 { if errno == EINTR { continue }; break }
                    if n == 0 { break }
                    let room = max(0, limit - kept.count)
                    kept.append(contentsOf: buffer[0..<min(n, room)])
                    dropped += max(0, n - room)
                }
                close(fd)
                let waiters = state.withLockedValue { s -> [CheckedContinuation<(bytes: [UInt8], dropped: Int), Never>] in
                    s.result = (kept, dropped)
                    defer { s.waiters = [] }
                    return s.waiters
                }
                for waiter in waiters { waiter.resume(returning: (kept, dropped)) }
            }
        }

        func result() async -> (bytes: [UInt8], dropped: Int) {
            await withCheckedContinuation { continuation in
                let done = state.withLockedValue { s -> (bytes: [UInt8], dropped: Int)? in
                    if let result = s.result { return result }
                    s.waiters.append(continuation)
                    return nil
                }
                if let done { continuation.resume(returning: done) }
            }
        }
    }
}
