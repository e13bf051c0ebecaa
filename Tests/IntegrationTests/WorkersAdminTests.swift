import AgentryCore
import Foundation
import NIOHTTP1
import Testing

/// `GET /api/workers` and the status stream's `workers` and `dead` kinds: live workers first with their heartbeat
/// age, labels, running tasks and resident memory.
@Suite("Workers in the admin API", .serialized)
struct WorkersAdminTests {
    @Test("a worker reports its RSS, labels and running tasks; stopped, it is listed after the live ones; the stream sends both kinds")
    func workersListed() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("wk-")
            let answers = try await a.publishSleepingAlertAgent(id, seconds: 3)
            #expect(answers.registered == 201 && answers.published == 200)
            let label = "zone=\(id)"
            let first = try WorkerProcess(agents: [id], extra: ["--label", label])
            let firstPID = Int(first.pid)
            let listener = StatusListener(port: a.port)
            defer { listener.stop() }
            func worker(_ pid: Int) async throws -> JSONValue? {
                try await a.request(.GET, "/api/workers").json?[path: "workers"]?.arrayValue?.first { $0[path: "pid"]?.intValue == Int64(pid) }
            }
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(20)) {
                    try await worker(firstPID)?[path: "alive"] == true
                }, "the worker registers")
            let live = try #require(try await worker(firstPID))
            #expect((live[path: "rss_bytes"]?.intValue ?? 0) > 1 << 20, "a worker's RSS is megabytes: \(live)")
            #expect(live[path: "labels"]?[path: "zone"] == .string(id))
            #expect((live[path: "heartbeat_age_ms"]?.intValue ?? 99_999) < 5_000, "\(live)")
            #expect(live[path: "stopped_at"] == .null)

            #expect(try await a.request(.POST, "/api/events/alerts/blackscreen?device_id=tv-\(id)").status == 202)
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(10)) { try await worker(firstPID)?[path: "running_tasks"] == 1 },
                "the running task counts")

            // The stream sends the workers (this one among them) and the parking lot's depth.
            let streamed = await listener.first(within: .seconds(10)) { message in
                (message[path: "workers"]?.arrayValue ?? []).contains { $0[path: "pid"]?.intValue == Int64(firstPID) }
            }
            #expect(streamed != nil, "the snapshot or a workers message lists the worker")
            let dead = await listener.first(within: .seconds(5)) { $0[path: "dead"]?.arrayValue?.first?[path: "messages"]?.intValue != nil }
            #expect(dead?[path: "dead"]?.arrayValue?.first?[path: "queue"] == "agentry.dead")

            await first.stop()
            let second = try WorkerProcess(agents: [id])
            let secondPID = Int(second.pid)
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(20)) {
                    guard let workers = try await a.request(.GET, "/api/workers").json?[path: "workers"]?.arrayValue else { return false }
                    let ours = workers.filter { [Int64(firstPID), Int64(secondPID)].contains($0[path: "pid"]?.intValue ?? 0) }
                    return ours.map { $0[path: "pid"]?.intValue ?? 0 } == [Int64(secondPID), Int64(firstPID)]
                        && ours.last?[path: "status"] == "stopped" && ours.last?[path: "stopped_at"] != .null
                }, "the live worker is listed before the stopped one")
            // Every live worker comes before every other.
            let all = try await a.request(.GET, "/api/workers").json?[path: "workers"]?.arrayValue ?? []
            let alive = all.map { $0[path: "alive"] == true }
            #expect(alive == alive.sorted { $0 && !$1 }, "\(alive)")
            await second.stop()
            await a.worker.cleanup(id)
        }
    }
}
