import AgentryCore
import AgentryStore
import Foundation
import Logging
import NIOConcurrencyHelpers

/// The console's live charts: a `stats` message every second while clients are connected, and the queue depths'
/// history (``QueueHistory``) that `GET /api/stats` serves.
///
/// A `stats` message costs one statement (``AgentryStore/StatsStore/counts(step:count:)``, over the last few seconds
/// through migration 0028's indexes) and no broker request: its queue depths are the hub's latest reading, which it
/// takes every second while clients are connected anyway. It carries the last ``liveSeconds`` complete seconds, not
/// only the last: rows are stamped when their transaction starts and visible once it commits, so a second's counts
/// may still grow after it ended (the event log writes in batches); clients replace what they had for those seconds.
extension StatusHub {
    /// The complete seconds each `stats` message carries (the last one also at its top level).
    static let liveSeconds = 3
    /// How often queue depths are sampled for their history when no client is connected.
    static let historyInterval: Duration = .seconds(10)

    var statsStore: StatsStore { StatsStore(database: dependencies.database, logger: logger) }

    /// Sends a `stats` message every second while clients are connected.
    func sendStats() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            guard clientCount > 0 else { continue }
            do {
                broadcast(try await statsMessage())
            } catch {
                if !Task.isCancelled { logger.debug("cannot count the last seconds for the stats message", metadata: ["error": "\(error)"]) }
            }
        }
    }

    /// The last ``liveSeconds`` complete seconds' counts, and every queue's depth as last read.
    func statsMessage() async throws -> String {
        // One step more than sent: the last step is the present second, not over yet.
        let counts = try await statsStore.counts(step: 1, count: Self.liveSeconds + 1)
        let seconds = (0..<Self.liveSeconds).map { Representation.statsSecond(counts, $0) }
        var object: JSONObject = ["type": "stats", "seconds": .array(seconds)]
        if case .object(let last)? = seconds.last {
            for (key, value) in last { object[key] = value }
        }
        let queues = state.withLockedValue { $0.readings[.queues]?.value } ?? []
        var depths: JSONObject = [:]
        for queue in queues {
            if let name = queue[path: "name"]?.stringValue, let messages = queue[path: "messages"] { depths[name] = messages }
        }
        object["queues"] = .object(depths)
        return JSON.serialize(.object(object))
    }

    /// Keeps the queue depths' history going while no client is connected (with clients, the hub reads the queues
    /// every second, and each reading is recorded): a reading every ``historyInterval``.
    func sampleQueueHistory() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.historyInterval)
            let last = queueHistory.lastSample
            guard last.map({ Date().timeIntervalSince($0) >= Self.historyInterval.inSeconds - 0.5 }) ?? true else { continue }
            _ = try? await read(.queues)
        }
    }

    /// Keeps a reading of the queues (``queues()``) in the history.
    func recordQueueDepths(_ queues: [JSONValue]) {
        var depths: [String: Int] = [:]
        for queue in queues {
            if let name = queue[path: "name"]?.stringValue, let messages = queue[path: "messages"]?.intValue { depths[name] = Int(messages) }
        }
        queueHistory.record(depths)
    }
}
