import Foundation
import Testing

@testable import AgentryRuntime

/// The child processes of exec handlers, served by one reactor thread: stdin in, stdout and stderr out, the exit.
@Suite("Exec handler children")
struct SubprocessTests {
    static let environment = ["PATH": "/usr/local/bin:/usr/bin:/bin"]

    func run(_ argv: [String], stdin: [UInt8] = [], limit: Int = 1 << 20) async throws -> Subprocess.Output {
        let process = try Subprocess(argv: argv, environment: Self.environment, workingDirectory: nil, stdin: stdin, outputLimit: limit)
        return await process.wait()
    }

    func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// This process's open pipes and pidfds (sockets of other tests' connections are left out).
    func childDescriptors() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count { name in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)") else { return false }
            return target.hasPrefix("pipe:") || target == "anon_inode:[pidfd]"
        }
    }

    @Test("stdin reaches the child; stdout and stderr come back apart")
    func pipes() async throws {
        let output = try await run(["sh", "-c", "cat; echo to-stderr >&2"], stdin: Array("from stdin\n".utf8))
        #expect(output.status == .exited(0))
        #expect(text(output.stdout) == "from stdin\n")
        #expect(text(output.stderr) == "to-stderr\n")
        #expect(output.stdoutTruncated == 0 && output.stderrTruncated == 0)
    }

    @Test("a stdin larger than a pipe's buffer is written whole")
    func largeStdin() async throws {
        let input = [UInt8](repeating: UInt8(ascii: "x"), count: 3 << 20)
        let output = try await run(["wc", "-c"], stdin: input)
        #expect(output.status == .exited(0))
        #expect(text(output.stdout).trimmingCharacters(in: .whitespacesAndNewlines) == "\(3 << 20)")
    }

    @Test("output over the limit is read to the end and counted, not kept")
    func outputLimit() async throws {
        let output = try await run(["head", "-c", "300000", "/dev/zero"], limit: 1000)
        #expect(output.status == .exited(0))
        #expect(output.stdout.count == 1000)
        #expect(output.stdoutTruncated == 299_000)
    }

    @Test("exit statuses and signals are told apart")
    func termination() async throws {
        #expect(try await run(["sh", "-c", "exit 3"]).status == .exited(3))
        #expect(try await run(["sh", "-c", "kill -9 $$"]).status == .signalled(9))
    }

    @Test("a child that exits without reading a large stdin ends the run")
    func unreadStdin() async throws {
        let output = try await run(["true"], stdin: [UInt8](repeating: 0, count: 4 << 20))
        #expect(output.status == .exited(0))
        #expect(output.stdout.isEmpty)
    }

    @Test("a background child still holding stdout does not keep the run open")
    func backgroundChild() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        let output = try await run(["sh", "-c", "sleep 30 & echo started"])
        #expect(output.status == .exited(0))
        #expect(text(output.stdout) == "started\n")
        #expect(clock.now - started < .seconds(20))
    }

    @Test("a program that does not exist is refused with its name")
    func missingProgram() throws {
        #expect {
            _ = try Subprocess(
                argv: ["agentry-no-such-program"], environment: Self.environment, workingDirectory: nil, stdin: [],
                outputLimit: 100)
        } throws: { error in
            "\(error)".contains("cannot start agentry-no-such-program: no such program")
        }
    }

    @Test("many children at once each get their own output, and every descriptor is closed afterwards")
    func manyChildren() async throws {
        _ = try await run(["true"])  // the reactor's own descriptors exist from here on
        let before = try childDescriptors()
        let outputs = try await withThrowingTaskGroup(of: (Int, Subprocess.Output).self) { group in
            for index in 0..<200 {
                group.addTask {
                    (index, try await run(["sh", "-c", "cat; echo \(index) >&2"], stdin: Array("child \(index)\n".utf8)))
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        #expect(outputs.count == 200)
        for (index, output) in outputs {
            #expect(output.status == .exited(0))
            #expect(text(output.stdout) == "child \(index)\n")
            #expect(text(output.stderr) == "\(index)\n")
        }
        // Three pipes and a pidfd per child, every one closed again.
        #expect(try childDescriptors() == before)
    }
}
