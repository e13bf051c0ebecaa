import Foundation
import Testing

@testable import AgentryCore

@Suite("Event")
struct EventTests {
    @Test("followUp keeps the parent's correlation and is caused by the parent")
    func followUpInheritsCorrelation() {
        let parent = Event(type: "alert.blackscreen", priority: .high, correlationID: "chain-1", causationID: "root")
        let child = parent.followUp(type: "agent.done", payload: ["ok": true])
        #expect(child.correlationID == "chain-1")
        #expect(child.causationID == parent.id.rawValue)
        #expect(child.id != parent.id)
        #expect(child.type == "agent.done")
        #expect(child.payload == ["ok": true])
    }

    @Test("followUp of an event without correlation correlates to the parent's id")
    func followUpStartsCorrelation() {
        let parent = Event(type: "alert.blackscreen")
        #expect(parent.correlationID == nil)
        let child = parent.followUp(type: "agent.done")
        #expect(child.correlationID == parent.id.rawValue)
        #expect(child.causationID == parent.id.rawValue)
        // A grandchild stays in the same chain but is caused by the child.
        let grandchild = child.followUp(type: "agent.more")
        #expect(grandchild.correlationID == parent.id.rawValue)
        #expect(grandchild.causationID == child.id.rawValue)
    }

    @Test("followUp inherits the priority unless given one")
    func followUpPriority() {
        let parent = Event(type: "alert.blackscreen", priority: .critical, source: "cli")
        #expect(parent.followUp(type: "x.y").priority == .critical)
        #expect(parent.followUp(type: "x.y", priority: .low).priority == .low)
        #expect(parent.followUp(type: "x.y").source == nil)
        #expect(parent.followUp(type: "x.y", source: "agent-1").source == "agent-1")
    }

    @Test("a new event gets a fresh id, NORMAL priority and the current time")
    func defaults() {
        let before = Date()
        let a = Event(type: "t.x")
        let b = Event(type: "t.x")
        #expect(a.id != b.id)
        #expect(a.priority == .normal)
        #expect(a.payload.isEmpty)
        #expect(a.timestamp >= before.addingTimeInterval(-0.001))
        #expect(a.timestamp <= Date())
    }
}
