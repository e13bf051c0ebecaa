import Foundation
import NIOConcurrencyHelpers

/// Queue depths over time, as this process sampled them: RabbitMQ keeps no history of a queue's depth, so the
/// status hub keeps its own samples in memory, bounded, and `GET /api/stats` serves them.
///
/// Two rings: one second for the last ten minutes (filled while status clients are connected, as the hub samples the
/// queues every second then) and ten seconds for the last day (filled always: without clients the hub samples every
/// ten seconds for it). A slot keeps the deepest sample taken in it. Each queue has one array per ring, of 32-bit
/// depths (-1 for none): a day of a hundred queues is about 3.5 MB. The history starts when the process did.
final class QueueHistory: Sendable {
    /// Samples of one resolution, in a ring of slots indexed by `bucket % capacity`.
    struct Ring: Sendable {
        let resolution: Int
        let capacity: Int
        /// The bucket (seconds since the epoch / resolution) each slot holds, or -1.
        var buckets: [Int64]
        var depths: [String: [Int32]] = [:]

        init(resolution: Int, capacity: Int) {
            self.resolution = resolution
            self.capacity = capacity
            buckets = Array(repeating: -1, count: capacity)
        }

        var span: Int { resolution * capacity }

        mutating func record(_ sample: [String: Int], at seconds: Int64) {
            let bucket = seconds / Int64(resolution)
            let slot = Int(bucket % Int64(capacity))
            if buckets[slot] != bucket {
                buckets[slot] = bucket
                for name in depths.keys { depths[name]![slot] = -1 }
            }
            for (name, depth) in sample {
                if depths[name] == nil { depths[name] = Array(repeating: -1, count: capacity) }
                depths[name]![slot] = max(depths[name]![slot], Int32(clamping: depth))
            }
        }

        /// The deepest sample of `name` in each of `count` steps of `step` seconds from `start` (nil where none).
        func series(_ name: String, start: Int64, step: Int, count: Int) -> [Int?] {
            guard let values = depths[name] else { return Array(repeating: nil, count: count) }
            var result: [Int?] = Array(repeating: nil, count: count)
            let first = start / Int64(resolution)
            let last = (start + Int64(step * count) - 1) / Int64(resolution)
            guard last >= first else { return result }
            for bucket in first...last {
                let slot = Int(bucket % Int64(capacity))
                guard buckets[slot] == bucket, values[slot] >= 0 else { continue }
                let index = Int((bucket * Int64(resolution) - start) / Int64(step))
                guard index >= 0, index < count else { continue }
                result[index] = max(result[index] ?? 0, Int(values[slot]))
            }
            return result
        }
    }

    struct State: Sendable {
        var fine = Ring(resolution: 1, capacity: 600)
        var coarse = Ring(resolution: 10, capacity: 8640)
        var lastSample: Date?
    }

    let state = NIOLockedValueBox(State())
    /// When this history began (the process's start, or rather its hub's).
    let since = Date()

    /// Keeps a sample of every queue's depth (ready messages), taken at `at`.
    func record(_ depths: [String: Int], at: Date = Date()) {
        let seconds = Int64(at.timeIntervalSince1970.rounded(.down))
        state.withLockedValue { s in
            s.fine.record(depths, at: seconds)
            s.coarse.record(depths, at: seconds)
            s.lastSample = at
        }
    }

    /// When the last sample was taken.
    var lastSample: Date? { state.withLockedValue { $0.lastSample } }

    /// Each queue's deepest sample per step, from the one-second ring when the steps are shorter than ten seconds
    /// and it reaches back to `start`, else from the ten-second ring; with the resolution used.
    func series(start: Date, step: Int, count: Int) -> (resolution: Int, series: [String: [Int?]]) {
        let from = Int64(start.timeIntervalSince1970.rounded(.down))
        let now = Int64(Date().timeIntervalSince1970)
        return state.withLockedValue { s in
            let ring = step < s.coarse.resolution && now - from < Int64(s.fine.span) ? s.fine : s.coarse
            var series: [String: [Int?]] = [:]
            for name in ring.depths.keys {
                let values = ring.series(name, start: from, step: step, count: count)
                if values.contains(where: { $0 != nil }) { series[name] = values }
            }
            return (ring.resolution, series)
        }
    }
}
