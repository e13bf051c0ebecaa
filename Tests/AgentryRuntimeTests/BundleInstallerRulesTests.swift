import AgentryCore
import Foundation
import Testing

@testable import AgentryRuntime

/// The installer's decisions that need no server: which setups count as loopback-only (where --allow-unsigned is
/// allowed), where a bundled exec handler runs, and in which order a bundle's agents are published.
@Suite("Bundle installer rules")
struct BundleInstallerRulesTests {
    @Test(
        "loopback: localhost, 127.0.0.0/8, ::1 and Unix sockets; anything else is not",
        arguments: [
            ("localhost", true), ("127.0.0.1", true), ("127.8.9.10", true), ("::1", true), ("[::1]", true), ("::ffff:127.0.0.1", true),
            ("/var/run/postgresql", true), ("LOCALHOST", true), ("10.0.0.1", false), ("db.example.com", false), ("::2", false),
            ("128.0.0.1", false), ("0.0.0.0", false),
        ])
    func loopback(host: String, expected: Bool) {
        #expect(LoopbackHost.isLoopback(host) == expected, "\(host)")
    }

    @Test("a bundled handler runs in its version's directory, or a directory below it; an absolute or climbing one is refused")
    func workingDirectory() throws {
        let root = "/var/lib/agentry/bundles/device-check/1.0.0"
        #expect(try BundleInstaller.workingDirectory(nil, in: root).get() == root)
        #expect(try BundleInstaller.workingDirectory(".", in: root).get() == root)
        #expect(try BundleInstaller.workingDirectory("handlers/", in: root).get() == root + "/handlers")
        #expect(throws: (any Error).self) { try BundleInstaller.workingDirectory("/srv", in: root).get() }
        #expect(throws: (any Error).self) { try BundleInstaller.workingDirectory("../other", in: root).get() }
    }

    @Test("a relative program may not climb out of the bundle; an absolute one is the allowlist's to judge")
    func programs() {
        let root = "/b/x/1.0.0"
        #expect(BundleInstaller.programProblem("handlers/run.sh", workingDirectory: root, root: root) == nil)
        #expect(BundleInstaller.programProblem("../lib/run.sh", workingDirectory: root + "/handlers", root: root) == nil)
        #expect(BundleInstaller.programProblem("../../bin/sh", workingDirectory: root, root: root)?.contains("climbs out") == true)
        #expect(BundleInstaller.programProblem("/usr/bin/python3", workingDirectory: root, root: root) == nil)
        #expect(BundleInstaller.programProblem("python3", workingDirectory: root, root: root) == nil)
    }

    @Test("subagents of the bundle are published before the agents that delegate to them")
    func publicationOrder() throws {
        func agent(_ id: String, subagents: [String]) throws -> AgentDefinition {
            let list = subagents.map { "{id: \($0), version: '^1.0.0', delegate_for: [work]}" }.joined(separator: ", ")
            return try AgentDefinition.parse(
                yaml: """
                    metadata: {id: \(id), name: \(id), version: 1.0.0, author: tests, description: x}
                    goal: {type: continuous, description: x}
                    triggers: [{type: work.\(id), priority: normal}]
                    \(subagents.isEmpty ? "" : "subagents: [\(list)]")
                    """)
        }
        let ordered = BundleInstaller.publicationOrder([
            try agent("top", subagents: ["middle"]), try agent("middle", subagents: ["leaf", "outside"]), try agent("leaf", subagents: []),
        ])
        #expect(ordered.map(\.metadata.id) == ["leaf", "middle", "top"])
    }
}
