import Testing

@testable import AgentryCore

@Suite("Priority")
struct PriorityTests {
    @Test("amqpPriority is 5 − level", arguments: zip([Priority.critical, .high, .normal, .low], [UInt8(4), 3, 2, 1]))
    func amqpPriority(priority: Priority, expected: UInt8) {
        #expect(priority.amqpPriority == expected)
        #expect(Int(priority.amqpPriority) == 5 - priority.rawValue)
    }

    @Test("levels are 1 CRITICAL … 4 LOW")
    func rawLevels() {
        #expect(Priority.critical.rawValue == 1)
        #expect(Priority.high.rawValue == 2)
        #expect(Priority.normal.rawValue == 3)
        #expect(Priority.low.rawValue == 4)
    }

    @Test("a message without priority, or with priority 0, counts as LOW")
    func missingAMQPPriorityIsLow() {
        #expect(Priority(amqpPriority: nil) == .low)
        #expect(Priority(amqpPriority: 0) == .low)
    }

    @Test("AMQP priorities 1…4 map back to the level", arguments: Priority.allCases)
    func amqpPriorityRoundTrip(priority: Priority) {
        #expect(Priority(amqpPriority: priority.amqpPriority) == priority)
    }

    @Test("AMQP priorities above 4 are not Agentry's", arguments: [UInt8(5), 9, 255])
    func amqpPriorityOutOfRange(value: UInt8) {
        #expect(Priority(amqpPriority: value) == nil)
    }

    @Test("names parse in any case")
    func namesInAnyCase() {
        #expect(Priority(name: "critical") == .critical)
        #expect(Priority(name: "CRITICAL") == .critical)
        #expect(Priority(name: "High") == .high)
        #expect(Priority(name: "nOrMaL") == .normal)
        #expect(Priority(name: "low") == .low)
    }

    @Test("level digits parse", arguments: zip(["1", "2", "3", "4"], [Priority.critical, .high, .normal, .low]))
    func levelDigits(text: String, expected: Priority) {
        #expect(Priority(name: text) == expected)
    }

    @Test("unknown names are rejected", arguments: ["urgent", "", "0", "5", "critical ", "medium"])
    func unknownNames(text: String) {
        #expect(Priority(name: text) == nil)
    }

    @Test("name is the upper-case name and parses back", arguments: Priority.allCases)
    func nameRoundTrip(priority: Priority) {
        #expect(priority.name == priority.name.uppercased())
        #expect(Priority(name: priority.name) == priority)
        #expect(priority.description == priority.name)
    }

    @Test("more urgent compares smaller")
    func ordering() {
        #expect(Priority.critical < .low)
        #expect(Priority.critical < .high)
        #expect(Priority.high < .normal)
        #expect(Priority.normal < .low)
        #expect(!(Priority.low < .critical))
        #expect([Priority.low, .critical, .normal, .high].sorted() == [.critical, .high, .normal, .low])
    }
}
