import AgentryCore
import AgentryStore
import Foundation

/// `GET /api/stats`: the console's charts over a window (``AgentryStore/StatsStore``, and the hub's
/// ``QueueHistory``).
extension AdminAPI {
    /// At most this many steps in a window.
    static let maxStatsPoints = 1000
    /// The longest window.
    static let maxStatsWindow = 31 * 86_400
    /// The steps a window gets when none is given: the shortest that gives at most ``defaultStatsPoints`` points.
    static let defaultSteps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 43_200, 86_400]
    static let defaultStatsPoints = 360

    func getStats(_ input: Operations.GetStats.Input) async throws -> Operations.GetStats.Output {
        let window = try Self.statsDuration(input.query.window ?? "1h", "window")
        guard window <= Self.maxStatsWindow else {
            throw AdminError.badRequest("window '\(input.query.window ?? "")' is longer than 31 days (\(Self.maxStatsWindow) s)")
        }
        let step: Int
        if let given = input.query.step {
            step = try Self.statsDuration(given, "step")
            guard step <= window else { throw AdminError.badRequest("step '\(given)' (\(step) s) is longer than the window (\(window) s)") }
        } else {
            step = Self.defaultSteps.first { (window + $0 - 1) / $0 <= Self.defaultStatsPoints } ?? 86_400
        }
        let points = (window + step - 1) / step
        guard points <= Self.maxStatsPoints else {
            let least = (window + Self.maxStatsPoints - 1) / Self.maxStatsPoints
            throw AdminError.badRequest(
                "a window of \(window) s in steps of \(step) s makes \(points) points; at most \(Self.maxStatsPoints): take a step of \(least) s or more"
            )
        }
        let store = StatsStore(database: dependencies.database, logger: logger)
        let counts = try await store.counts(step: step, count: points)
        // The durations count the present second too: runs that just finished show at once (the live messages carry
        // no durations).
        let durations = try await store.durations(from: counts.start, until: counts.until.addingTimeInterval(1))
        let queues = status.queueHistory.series(start: counts.start, step: step, count: points)
        let body = Representation.stats(counts, window: window, durations: durations, queues: queues, since: status.queueHistory.since)
        return .ok(.init(body: .json(body)))
    }

    /// Seconds in `text`: a whole number with a unit, `s`, `m`, `h` or `d` (`10s`, `5m`, `1h`, `1d`), or without one
    /// (seconds); 400 naming `name` otherwise.
    static func statsDuration(_ text: String, _ name: String) throws -> Int {
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        var digits = Substring(trimmed)
        var unit = 1
        if let last = trimmed.last, let multiplier = units[last] {
            digits = digits.dropLast()
            unit = multiplier
        }
        guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let value = Int(digits), value > 0
        else {
            throw AdminError.badRequest(
                "\(name) '\(text)' is not a duration: a whole number of seconds, minutes, hours or days above 0, such as 10s, 5m, 1h or 1d")
        }
        return value * unit
    }
}
