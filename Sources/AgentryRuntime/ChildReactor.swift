import CSpawn
import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// The one thread that serves the children of every exec handler in the process: it writes each child's stdin,
/// reads its stdout and stderr, and reaps it when its pidfd says it has exited, all from one `epoll` set.
///
/// Each child used to take four threads of its own (stdin, stdout, stderr and the wait); on a worker running
/// `/bin/true` their creation and teardown (`clone3`, the stacks' `mmap` and `munmap`, TLB shoot-downs) were about a
/// third of its CPU. The descriptors it is given are the parent's ends of the pipes, set non-blocking, and pidfds; it
/// closes each one when done with it, and hands the result to the `done` closure on its thread.
final class ChildReactor: Sendable {
    enum Watch: Sendable {
        /// Write these bytes, then close (early, when the child closed its end).
        case input([UInt8])
        /// Read to the end, keeping the first `limit` bytes and counting the rest.
        case output(limit: Int, done: @Sendable (Subprocess.Captured) -> Void)
        /// A pidfd: reap `pid` when it becomes readable.
        case exit(pid: pid_t, done: @Sendable (Subprocess.Termination) -> Void)
    }

    private let epoll: Int32
    private let wake: Int32
    private let pending = NIOLockedValueBox<[(fd: Int32, watch: Watch)]>([])

    private static let instance = NIOLockedValueBox<ChildReactor?>(nil)

    /// The process's reactor, started on first use.
    static func shared() throws -> ChildReactor {
        try instance.withLockedValue { instance in
            if let reactor = instance { return reactor }
            let reactor = try ChildReactor()
            instance = reactor
            Thread.detachNewThread {
                Thread.current.name = "agentry-exec"
                // The only thread that writes to children's stdin: EPIPE rather than SIGPIPE when one stops reading.
                _ = agentry_block_sigpipe()
                reactor.run()
            }
            return reactor
        }
    }

    private init() throws {
        let epoll = agentry_epoll_create()
        guard epoll >= 0 else { throw Subprocess.SpawnError(description: "cannot create an epoll set: \(String(cString: strerror(-epoll)))") }
        let wake = agentry_eventfd()
        guard wake >= 0 else {
            close(epoll)
            throw Subprocess.SpawnError(description: "cannot create an eventfd: \(String(cString: strerror(-wake)))")
        }
        let rc = agentry_epoll_add(epoll, wake, agentry_epollin, UInt64(wake))
        guard rc == 0 else {
            close(epoll)
            close(wake)
            throw Subprocess.SpawnError(description: "cannot watch the eventfd: \(String(cString: strerror(rc)))")
        }
        self.epoll = epoll
        self.wake = wake
    }

    /// Hands descriptors over to the reactor's thread; from here on it owns and closes them.
    func watch(_ watches: [(fd: Int32, watch: Watch)]) {
        pending.withLockedValue { $0.append(contentsOf: watches) }
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(wake, $0.baseAddress, 8) }
    }

    /// A descriptor being served, with what it has done so far.
    private struct Entry {
        var watch: Watch
        var written = 0
        var kept: [UInt8] = []
        var dropped = 0
        var termination: Subprocess.Termination?
    }

    private func run() {
        var entries: [Int32: Entry] = [:]
        var tokens = [UInt64](repeating: 0, count: 64)
        var events = [UInt32](repeating: 0, count: 64)
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = agentry_epoll_wait(epoll, &tokens, &events, 64, -1)
            if count < 0 {
                // EINTR only: the set and the arrays are this thread's own and valid.
                precondition(-count == EINTR, "epoll_wait failed: \(String(cString: strerror(-count)))")
                continue
            }
            for index in 0..<Int(count) {
                let fd = Int32(truncatingIfNeeded: tokens[index])
                if fd == wake {
                    var value: UInt64 = 0
                    _ = withUnsafeMutableBytes(of: &value) { read(wake, $0.baseAddress, 8) }
                    let added = pending.withLockedValue { list -> [(fd: Int32, watch: Watch)] in
                        defer { list = [] }
                        return list
                    }
                    for (fd, watch) in added {
                        var entry = Entry(watch: watch)
                        if step(fd, &entry, buffer: &buffer) {
                            finish(fd, entry, watched: false)
                        } else {
                            var interest = agentry_epollin
                            if case .input = watch { interest = agentry_epollout }
                            let rc = agentry_epoll_add(epoll, fd, interest, UInt64(fd))
                            precondition(rc == 0, "epoll_ctl(ADD) failed for a child's descriptor: \(String(cString: strerror(rc)))")
                            entries[fd] = entry
                        }
                    }
                    continue
                }
                guard var entry = entries[fd] else { continue }
                if step(fd, &entry, buffer: &buffer) {
                    entries[fd] = nil
                    finish(fd, entry, watched: true)
                } else {
                    entries[fd] = entry
                }
            }
        }
    }

    /// Does what can be done without blocking; true when the descriptor is done with.
    private func step(_ fd: Int32, _ entry: inout Entry, buffer: inout [UInt8]) -> Bool {
        switch entry.watch {
        case .input(let bytes):
            while entry.written < bytes.count {
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + entry.written, bytes.count - entry.written) }
                if n > 0 {
                    entry.written += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    return false
                } else {
                    return true  // EPIPE: the child stopped reading its stdin (SIGPIPE is blocked on this thread)
                }
            }
            return true
        case .output(let limit, _):
            // One read per readiness (level-triggered): a busy pipe does not hold up the others.
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    let room = max(0, limit - entry.kept.count)
                    entry.kept.append(contentsOf: buffer[0..<min(n, room)])
                    entry.dropped += max(0, n - room)
                    return false
                }
                if n < 0 && errno == EINTR { continue }
                return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))  // 0: the end; another error: stop
            }
        case .exit(let pid, _):
            while true {
                var status: Int32 = 0
                let reaped = waitpid(pid, &status, WNOHANG)
                if reaped == pid {
                    entry.termination = Subprocess.Termination(waitStatus: status)
                    return true
                }
                if reaped == 0 { return false }  // not yet (the pidfd was not readable)
                if errno == EINTR { continue }
                // ECHILD: reaped elsewhere. Nothing else in the process waits for children, so this does not happen;
                // should it, the run ends as failed rather than waiting for ever.
                entry.termination = .exited(-1)
                return true
            }
        }
    }

    private func finish(_ fd: Int32, _ entry: Entry, watched: Bool) {
        if watched { _ = agentry_epoll_remove(epoll, fd) }
        close(fd)
        switch entry.watch {
        case .input:
            break
        case .output(_, let done):
            done(Subprocess.Captured(bytes: entry.kept, dropped: entry.dropped))
        case .exit(_, let done):
            done(entry.termination ?? .exited(-1))
        }
    }
}
