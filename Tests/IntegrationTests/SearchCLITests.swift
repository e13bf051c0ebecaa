import AgentryCore
import AgentryStore
import Foundation
import Testing

@Suite("agentry runs list and events list: filters and cursor", .serialized)
struct SearchCLITests {
    static func agentry(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try TestEnvironment.run(TestEnvironment.agentryExecutable, arguments)
    }

    /// The cursor in a table's last line, `more: the same with --cursor X`.
    static func cursor(_ output: String) -> String? {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("more: ") }) else { return nil }
        return line.split(separator: " ").last.map(String.init)
    }

    @Test("runs list: --agent and --state narrow, a full page prints the --cursor of the next, which shows the rest once")
    func runsList() async throws {
        try await withWorkerHarness { h in
            let tag = TestEnvironment.uniqueName("sc")
            let runs = try await SearchAPITests.recordRuns(h.database, tag: tag, count: 48)
            let failed = runs.filter { $0.agent == "\(tag)-b" && $0.state == "failed" }.map(\.id)
            #expect(failed.count == 6)
            let first = try Self.agentry(["runs", "list", "--agent", "\(tag)-b", "--state", "failed", "--limit", "4"])
            #expect(first.status == 0, "\(first.output)")
            let firstIDs = failed.filter { first.output.contains($0) }
            #expect(firstIDs == Array(failed.prefix(4)), "\(first.output)")
            let cursor = try #require(Self.cursor(first.output), "a full page names the next: \(first.output)")
            let second = try Self.agentry(["runs", "list", "--agent", "\(tag)-b", "--state", "failed", "--limit", "4", "--cursor", cursor, "--json"])
            #expect(second.status == 0, "\(second.output)")
            let json = try JSON.parse(Array(second.output.utf8))
            #expect(json[path: "runs"]?.arrayValue?.compactMap { $0[path: "run_id"]?.stringValue } == Array(failed.suffix(2)))
            #expect(json[path: "next_cursor"] == .null)
            let bad = try Self.agentry(["runs", "list", "--cursor", "nonsense"])
            #expect(bad.status != 0 && bad.output.contains("--cursor"), "\(bad.output)")
            let crossed = try Self.agentry(["events", "list", "--cursor", cursor])
            #expect(crossed.status != 0 && crossed.output.contains("runs, not events"), "\(crossed.output)")
        }
    }

    @Test("events list: a type pattern, payload text and priority narrow; --json gives next_cursor")
    func eventsList() async throws {
        try await withWorkerHarness { h in
            let tag = TestEnvironment.uniqueName("sce")
            let logged = try await SearchAPITests.logEvents(EventLogStore(database: h.database, logger: TestEnvironment.logger), tag: tag, count: 30)
            let want = logged.filter { $0.event.type.hasPrefix("\(tag).alert.") && $0.event.priority == .critical }.map(\.event.id.rawValue)
            let answer = try Self.agentry(["events", "list", "--type", "\(tag).alert.*", "--priority", "critical", "--limit", "100", "--json"])
            #expect(answer.status == 0, "\(answer.output)")
            let json = try JSON.parse(Array(answer.output.utf8))
            #expect(json[path: "events"]?.arrayValue?.compactMap { $0[path: "id"]?.stringValue } == want)
            #expect(json[path: "next_cursor"] == .null)
            let text = try Self.agentry(["events", "list", "--type", "\(tag).#", "--q", "tv-30"])
            let others = logged.dropFirst().map(\.event.id.rawValue).filter { text.output.contains($0) }
            #expect(text.status == 0 && text.output.contains(logged[0].event.id.rawValue) && others.isEmpty, "only the TV-30 event: \(text.output)")
            let bad = try Self.agentry(["events", "list", "--type", "a..b"])
            #expect(bad.status != 0 && bad.output.contains("--type"), "\(bad.output)")
        }
    }
}
