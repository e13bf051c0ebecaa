import Testing

@testable import AgentryCore

@Suite("EventType and topic patterns")
struct TopicPatternTests {
    @Test(
        "valid event types have no problem",
        arguments: [
            "alert.blackscreen", "a", "agent.started", "user:42.update-ok_x", "A.B.C9",
            String(repeating: "a", count: 255),
        ])
    func validTypes(type: String) {
        #expect(EventType.problem(with: type) == nil)
    }

    @Test(
        "invalid event types have a problem",
        arguments: [
            "", ".", "a..b", ".a", "a.", "a.b.", "a b", "a.*", "a.#", "*", "alert/x", "café.x", "a\u{0}b",
            String(repeating: "a", count: 256),
        ])
    func invalidTypes(type: String) {
        #expect(EventType.problem(with: type) != nil)
    }

    @Test("a too long type's problem states the length")
    func tooLongMessage() throws {
        let problem = try #require(EventType.problem(with: String(repeating: "a", count: 256)))
        #expect(problem.contains("256"))
    }

    @Test("a bad character's problem names the character")
    func badCharacterMessage() throws {
        let problem = try #require(EventType.problem(with: "a b"))
        #expect(problem.contains("' '"))
    }

    @Test("valid patterns have no problem", arguments: ["alert.*", "#", "*", "agent.#.done", "*.*", "#.x", "alert.blackscreen"])
    func validPatterns(pattern: String) {
        #expect(EventType.patternProblem(with: pattern) == nil)
    }

    @Test(
        "invalid patterns have a problem",
        arguments: [
            "al*rt.x", "a.#b", "a.b*", "", "a..b", ".#", "a b.*", String(repeating: "a", count: 256),
        ])
    func invalidPatterns(pattern: String) {
        #expect(EventType.patternProblem(with: pattern) != nil)
    }

    @Test(
        "matches follows RabbitMQ topic semantics",
        arguments: [
            ("a.b.c", "a.b.c", true),
            ("a.b.c", "a.b.d", false),
            ("a.b.c", "a.b", false),
            ("a.b", "a.b.c", false),
            ("ab.c", "a.c", false),
            ("a.b.c", "a.*.c", true),
            ("a.b", "a.*.c", false),
            ("a.x.y.c", "a.*.c", false),
            ("a", "*", true),
            ("a.b", "*", false),
            ("a.b.c", "*.b", false),
            ("a.b.c", "*.*.*", true),
            ("a.b", "*.*.*", false),
            ("a", "a.#", true),
            ("a.b", "a.#", true),
            ("a.b.c.d", "a.#", true),
            ("b", "a.#", false),
            ("a.b.c", "#", true),
            ("a", "#", true),
            ("a.b.c", "a.#.c", true),
            ("a.c", "a.#.c", true),
            ("a.x.y.z.c", "a.#.c", true),
            ("a.c.b", "a.#.c", false),
            ("c", "#.c", true),
            ("a.b.c", "#.c", true),
            ("a.b.c", "#.#", true),
            ("a.b.c", "a.#.#.c", true),
            ("a.b", "#.b.#", true),
            ("a.b.c", "a.*.#", true),
            ("a.b", "a.*.#", true),
            ("a", "a.*.#", false),
            ("alert.blackscreen", "alert.*", true),
            ("alert", "alert.*", false),
            ("agent.x.done", "agent.#.done", true),
            ("agent.done", "agent.#.done", true),
            ("agent.x.failed", "agent.#.done", false),
        ])
    func matches(type: String, pattern: String, expected: Bool) {
        #expect(EventType.matches(type, pattern: pattern) == expected)
    }

    @Test("matching stays fast with many '#' words")
    func manyHashes() {
        let type = Array(repeating: "a", count: 60).joined(separator: ".")
        let pattern = Array(repeating: "#", count: 60).joined(separator: ".") + ".b"
        #expect(!EventType.matches(type, pattern: pattern))
        #expect(EventType.matches(type + ".b", pattern: pattern))
    }

    @Test(
        "system types are agent., resource. and event.",
        arguments: [
            ("agent.started", true), ("resource.low", true), ("event.unhandled", true),
            ("agents.x", false), ("alert.x", false), ("agent", false), ("resources.x", false), ("events.x", false),
            ("x.agent.y", false),
        ])
    func isSystem(type: String, expected: Bool) {
        #expect(EventType.isSystem(type) == expected)
    }
}
