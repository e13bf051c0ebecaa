import Testing

@testable import AMQP

/// The order in which a session tries a cluster's nodes, and when it waits.
@Suite("Endpoint rotation")
struct EndpointRotationTests {
    /// Fails `count` attempts in a row: for each, the endpoint it moved to and whether the round ended.
    static func fail(_ rotation: inout EndpointRotation, _ count: Int) -> [(next: Int, roundEnded: Bool)] {
        (0..<count).map { _ in
            let ended = rotation.attemptFailed()
            return (rotation.current, ended)
        }
    }

    @Test("failed attempts move on at once; the round ends, for a backoff, when every endpoint failed once")
    func failedAttempts() {
        var rotation = EndpointRotation(count: 3)
        #expect(rotation.current == 0)
        let steps = Self.fail(&rotation, 4)
        #expect(steps.map(\.next) == [1, 2, 0, 1])
        #expect(steps.map(\.roundEnded) == [false, false, true, false], "all three failed: back off, then a new round")
    }

    @Test("a connection that comes up stays on its endpoint and starts a new round")
    func connectedKeepsEndpoint() {
        var rotation = EndpointRotation(count: 3)
        _ = Self.fail(&rotation, 1)
        rotation.connected()
        #expect(rotation.current == 1)
        #expect(Self.fail(&rotation, 3).map(\.roundEnded) == [false, false, true])
    }

    @Test("a lost connection reconnects to the next endpoint first, wrapping around, and tries its own last")
    func lostMovesOn() {
        var rotation = EndpointRotation(count: 3)
        var visited: [Int] = []
        for _ in 0..<3 {
            rotation.lost()
            visited.append(rotation.current)
            rotation.connected()
        }
        #expect(visited == [1, 2, 0])
        // Lost on 0: the round goes 1, 2, then 0 (the node that went away) last.
        rotation.lost()
        let steps = Self.fail(&rotation, 3)
        #expect(steps.map(\.next) == [2, 0, 1])
        #expect(steps.map(\.roundEnded) == [false, false, true])
    }

    @Test("with one endpoint every failure ends a round, so the session backs off as it always did")
    func single() {
        var rotation = EndpointRotation(count: 1)
        #expect(Self.fail(&rotation, 2).map(\.roundEnded) == [true, true])
        rotation.lost()
        #expect(rotation.current == 0)
    }

    @Test("a queue whose home node is down is passing; a missing queue or a conflict is not")
    func homeNodeDown() {
        let down = AMQPError(
            .channelClosedByBroker, "cannot declare queue 'agentry.agent.a'", replyCode: 404,
            replyText: "NOT_FOUND - home node 'rabbit@n1' of durable queue 'agentry.agent.a' in vhost 'v' is down or inaccessible")
        let missing = AMQPError(.channelClosedByBroker, "x", replyCode: 404, replyText: "NOT_FOUND - no queue 'q' in vhost 'v'")
        let conflict = AMQPError(
            .channelClosedByBroker, "x", replyCode: 406,
            replyText: "PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue 'q' in vhost 'v': received '4' but current is '10'")
        #expect(down.isQueueHomeNodeDown)
        #expect(!missing.isQueueHomeNodeDown)
        #expect(!conflict.isQueueHomeNodeDown)
    }
}
