/// Which of a configuration's endpoints a session tries next, and when a round of attempts has failed on every one
/// of them (only then does the session wait before trying again).
///
/// A failed attempt moves on to the next endpoint at once: with a node of a cluster down, waiting before asking
/// another would only lengthen the outage. A lost connection also moves on, so that the node that just went away is
/// the last one tried; a connection that stays up keeps its endpoint.
struct EndpointRotation: Sendable, Equatable {
    let count: Int
    /// The index of the endpoint connected to, or to try next.
    private(set) var current = 0
    /// Attempts that failed since the last successful connection or the last full round.
    private(set) var failuresInRound = 0

    init(count: Int) {
        precondition(count > 0, "no endpoint to rotate through")
        self.count = count
    }

    /// The attempt on ``current`` succeeded.
    mutating func connected() {
        failuresInRound = 0
    }

    /// The attempt on ``current`` failed: the next attempt goes to the next endpoint. Returns true when every
    /// endpoint has failed once in this round (the caller then backs off, and a new round begins).
    mutating func attemptFailed() -> Bool {
        current = (current + 1) % count
        failuresInRound += 1
        guard failuresInRound >= count else { return false }
        failuresInRound = 0
        return true
    }

    /// The connection on ``current`` was lost: the next attempt goes to the next endpoint (this one is likely down),
    /// and a new round begins.
    mutating func lost() {
        current = (current + 1) % count
        failuresInRound = 0
    }
}
