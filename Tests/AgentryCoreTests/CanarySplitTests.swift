import AgentryCore
import Foundation
import Testing

@Suite("Canary split")
struct CanarySplitTests {
    @Test(
        "a share reads as a whole percent from 1 to 100, with or without the sign",
        arguments: [("10%", 10), ("10", 10), (" 50 % ", 50), ("1%", 1), ("100%", 100)])
    func percents(text: String, expected: Int) {
        let parsed = try? CanarySplit.parsePercent(text).get()
        #expect(parsed == expected)
    }

    @Test("anything else is refused, naming the text", arguments: ["0%", "101%", "10.5%", "-5", "%", "", "ten", "10%%", "1e1"])
    func badPercents(text: String) {
        switch CanarySplit.parsePercent(text) {
        case .success(let value):
            Issue.record("'\(text)' read as \(value)")
        case .failure(let problem):
            #expect(problem.description.contains("'\(text)'") && problem.description.contains("1 to 100"), "\(problem)")
        }
    }

    @Test("an event's bucket is fixed by the agent and the event id, and is from 0 to 99")
    func bucketIsStable() {
        for index in 0..<200 {
            let id = "event-\(index)"
            let bucket = CanarySplit.bucket(agentID: "agent-a", eventID: id)
            #expect((0..<100).contains(bucket))
            #expect(CanarySplit.bucket(agentID: "agent-a", eventID: id) == bucket, "the same event lands in the same bucket every time")
        }
        // Known values: a change to the hash would move the events of running canaries between versions.
        #expect(CanarySplit.bucket(agentID: "agent-a", eventID: "event-1") == 61)
        #expect(CanarySplit.bucket(agentID: "agent-a", eventID: "event-2") == 0)
    }

    @Test("the buckets spread evenly: a 10% canary takes about a tenth of many events, 50% about half, 100% all")
    func spread() {
        let ids = (0..<10_000).map { _ in UUID().uuidString.lowercased() }
        for percent in [10, 50] {
            let taken = ids.filter { CanarySplit.takes(percent: percent, agentID: "spread", eventID: $0) }.count
            let expected = ids.count * percent / 100
            #expect(abs(taken - expected) < ids.count / 25, "\(percent)%: took \(taken) of \(ids.count)")
        }
        #expect(ids.allSatisfy { CanarySplit.takes(percent: 100, agentID: "spread", eventID: $0) })
        #expect(!ids.contains { CanarySplit.takes(percent: 0, agentID: "spread", eventID: $0) })
    }

    @Test("the agent id is part of the hash: two agents' canaries do not pick the same events")
    func agentsDiffer() {
        let ids = (0..<1_000).map { "e\($0)" }
        let a = ids.filter { CanarySplit.takes(percent: 50, agentID: "agent-a", eventID: $0) }
        let b = ids.filter { CanarySplit.takes(percent: 50, agentID: "agent-b", eventID: $0) }
        #expect(a != b)
        #expect(Set(a).intersection(b).count < 400, "about a quarter overlap, not all: \(Set(a).intersection(b).count)")
    }
}
