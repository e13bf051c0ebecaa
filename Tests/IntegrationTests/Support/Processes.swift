import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Whether `pid` is a live process (a zombie counts as gone).
func isRunning(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    return !stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
}

/// The pids written one per line to `path`, once it holds `count` of them.
func pids(in path: String, count: Int) async throws -> [Int32] {
    var found: [Int32] = []
    _ = try await TestEnvironment.eventually(timeout: .seconds(15)) {
        found = ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int32($0) }
        return found.count >= count
    }
    return found
}

/// Waits for `process` to end, SIGKILL after `timeout`; its exit status (-1 when it had to be killed).
@discardableResult
func waitForExit(_ process: Process, timeout: Duration) async -> Int32 {
    let pid = process.processIdentifier
    let exited = (try? await TestEnvironment.eventually(timeout: timeout) { !process.isRunning }) ?? false
    if !exited {
        kill(pid, SIGKILL)
        process.waitUntilExit()
        return -1
    }
    process.waitUntilExit()
    return process.terminationStatus
}

/// Waits for a process that is not our child (`pid`) to be gone (a zombie counts as gone); SIGKILL after `timeout`.
/// Whether it ended by itself.
@discardableResult
func waitForExit(pid: Int32, timeout: Duration) async -> Bool {
    let exited = (try? await TestEnvironment.eventually(timeout: timeout) { !isRunning(pid) }) ?? false
    if !exited { kill(pid, SIGKILL) }
    return exited
}

/// As ``waitForExit(pid:timeout:)``, blocking the thread: for `defer` blocks and other synchronous cleanup.
@discardableResult
func blockingWaitForExit(pid: Int32, timeout: Duration) -> Bool {
    let deadline = ContinuousClock.now + timeout
    while isRunning(pid) && ContinuousClock.now < deadline { usleep(20_000) }
    if isRunning(pid) {
        kill(pid, SIGKILL)
        return false
    }
    return true
}
