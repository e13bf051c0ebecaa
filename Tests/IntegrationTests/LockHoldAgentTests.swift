import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import NIOHTTP1
import Testing

/// An agent that locks `device:{{payload.device}}` and reports the fencing token it ran under.
func deviceAgentYAML(_ id: String) -> String {
    agentYAML(
        id: id, trigger: "check.\(id)",
        handler: #"""
            exec:
              command: [/bin/sh, -c, 'printf "{\"token\": %s}" "$AGENTRY_FENCING_TOKEN"']
            """#,
        extra: "permissions:\n  devices: [read, take_control]\nresources: [\"device:{{payload.device}}\"]\n")
}

@Suite("People's holds: the admin API and agents' runs", .serialized)
struct LockHoldAgentTests {
    let agentry = TestEnvironment.agentryExecutable

    @Test("the admin API takes a device in the caller's name, refuses someone else's give-back, times a wait out naming the holder, gives it back")
    func adminAPI() async throws {
        try await withAdminServer { a in
            let keeper = HoldKeeper(database: a.worker.database, keeperID: TestEnvironment.uniqueName("hold-keeper-"), logger: TestEnvironment.logger)
            {
                _ in
            }
            let running = Task { await keeper.run() }
            defer { running.cancel() }
            try await waitForHoldKeeper(a.worker.database)
            let resource = device(TestEnvironment.uniqueName("hold-api-"))
            let path = "/api/locks/\(resource)"

            let anonymous = try await a.request(.POST, path + "/acquire", body: "{}", authorized: false)
            #expect(anonymous.status == 401)

            let taken = try await a.request(.POST, path + "/acquire", body: #"{"for_seconds": 600, "priority": "high"}"#)
            #expect(taken.status == 200, "\(taken.text)")
            #expect(taken.json?[path: "owner"]?.stringValue == "admin")
            #expect(taken.json?[path: "owner_type"]?.stringValue == "user")
            #expect(taken.json?[path: "state"]?.stringValue == "held")
            #expect(taken.json?[path: "priority"]?.stringValue == "HIGH")
            let until = try #require(taken.json?[path: "hold_until"]?.stringValue)

            let lock = try await a.request(.GET, path)
            #expect(lock.json?[path: "owner"]?.stringValue == "admin")
            #expect(lock.json?[path: "owner_type"]?.stringValue == "user")
            #expect(lock.json?[path: "expires_at"]?.stringValue == until)

            let refused = try await a.request(.POST, path + "/give-back", body: #"{"owner": "mallory"}"#)
            #expect(refused.status == 409)
            #expect(refused.errorCode == "not_owner")
            #expect(refused.errorMessage.contains("it is held by user admin until \(until), not by user mallory"), "\(refused.errorMessage)")

            let started = ContinuousClock.now
            let late = try await a.request(.POST, path + "/acquire", body: #"{"owner": "zoe", "wait_seconds": 2}"#)
            #expect(late.status == 409, "\(late.text)")
            #expect(late.errorCode == "timed_out")
            #expect(late.errorMessage.contains("\(resource) is held by user admin until \(until)"), "\(late.errorMessage)")
            #expect(ContinuousClock.now - started >= .seconds(2))

            let holds = try await a.request(.GET, "/api/holds")
            let listed = holds.json?[path: "holds"]?.arrayValue ?? []
            #expect(listed.contains { $0[path: "resource"]?.stringValue == resource.description && $0[path: "state"]?.stringValue == "held" })
            let all = try await a.request(.GET, "/api/holds?all=true")
            #expect(
                (all.json?[path: "holds"]?.arrayValue ?? []).contains {
                    $0[path: "owner"]?.stringValue == "zoe" && $0[path: "state"]?.stringValue == "timed_out"
                })
            let id = try #require(taken.json?[path: "hold_id"]?.stringValue)
            #expect(try await a.request(.GET, "/api/holds/\(id)").json?[path: "state"]?.stringValue == "held")

            let given = try await a.request(.POST, path + "/give-back", body: "{}")
            #expect(given.status == 200, "\(given.text)")
            #expect(given.json?[path: "state"]?.stringValue == "released")
            #expect(try await TestEnvironment.eventually { try await a.request(.GET, path).json?[path: "status"]?.stringValue == "available" })
            let again = try await a.request(.POST, path + "/give-back", body: "{}")
            #expect(again.status == 404, "\(again.text)")
            running.cancel()
            await running.value
        }
    }

    @Test("an agent's run that needs the device waits while a person holds it, and runs when it is given back")
    func agentWaitsForPerson() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("holdagent-")
            let resource = device("\(id)-tv")
            _ = try await h.publishAgent(deviceAgentYAML(id))
            let worker = try WorkerProcess(agents: [id])
            let locks = LockStore(database: h.database, logger: TestEnvironment.logger)
            // The worker's keeper takes the request.
            try await waitForHoldKeeper(h.database)
            let taken = try TestEnvironment.run(agentry, ["locks", "acquire", resource.description, "--owner", "gwen", "--wait", "30s"])
            #expect(taken.status == 0, "\(taken.output)")
            let person = try #require(try await locks.status(resource).holder)
            #expect(person.owner == .user("gwen"))

            try await h.bus.publish(Event(type: "check.\(id)", payload: ["device": .string("\(id)-tv")], priority: .normal, source: "test"))
            // The run waits for the lock: it is a waiter, the person the holder.
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(20)) {
                    try await locks.status(resource).waiters.contains { $0.owner == .agent(id) && $0.runID != nil }
                })
            let waiting = try await h.runs(id)
            #expect(waiting.count == 1 && waiting.allSatisfy { $0.state != .succeeded }, "\(waiting.map(\.state))")
            #expect(try await locks.status(resource).holder?.owner == .user("gwen"))

            let given = try TestEnvironment.run(agentry, ["locks", "release", resource.description, "--owner", "gwen"])
            #expect(given.status == 0, "\(given.output)")
            let runs = try await h.waitForRuns(id, timeout: .seconds(20)) { $0.contains { $0.state == .succeeded } }
            let run = try #require(runs.first { $0.state == .succeeded })
            let token = try #require(run.result.flatMap { try? JSON.parse(Array($0.utf8)) }?[path: "token"]?.intValue)
            #expect(token > person.fencingToken ?? .max, "the run's token \(token) must follow the person's \(person.fencingToken ?? -1)")
            await worker.stop()
            await h.cleanup(id)
        }
    }
}
