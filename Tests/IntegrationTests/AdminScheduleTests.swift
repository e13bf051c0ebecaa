import AgentryCore
import AgentryStore
import AsyncHTTPClient
import Foundation
import NIOHTTP1
import Testing

/// The admin API's schedules and delayed events, as a client uses them.
@Suite("Admin endpoint: schedules and delayed events", .serialized)
struct AdminScheduleTests {
    @Test("a schedule is made, read with its next ticks, changed, disabled, enabled and removed through the API")
    func scheduleLifecycle() async throws {
        try await withAdminServer { a in
            let name = TestEnvironment.uniqueName("api-sched-")
            let body = """
                {"name": "\(name)", "cron": "@every 30s", "type": "test.api.\(name)", "payload": {"pool": "lab-1"}, "time_zone": "Europe/Berlin",
                 "missed": "fire_once", "description": "made by the API test"}
                """
            let anonymous = try await a.request(.POST, "/api/schedules", body: body, authorized: false)
            #expect(anonymous.status == 401, "making a schedule needs the token")
            let created = try await a.request(.POST, "/api/schedules", body: body)
            #expect(created.status == 201, "\(created.text)")
            #expect(created.json?[path: "name"]?.stringValue == name)
            #expect(created.json?[path: "missed"] == "fire_once" && created.json?[path: "time_zone"] == "Europe/Berlin")
            #expect(created.json?[path: "upcoming"]?.arrayValue?.count == 5)
            #expect(created.json?[path: "next_run"] != .null)
            let again = try await a.request(.POST, "/api/schedules", body: body)
            #expect(again.status == 409 && again.errorCode == "conflict", "\(again.text)")

            let read = try await a.request(.GET, "/api/schedules/\(name)?upcoming=3")
            #expect(read.status == 200 && read.json?[path: "upcoming"]?.arrayValue?.count == 3, "\(read.text)")
            let listed = try await a.request(.GET, "/api/schedules")
            #expect(listed.json?[path: "schedules"]?.arrayValue?.contains { $0[path: "name"]?.stringValue == name } == true)

            let changed = try await a.request(.PUT, "/api/schedules/\(name)", body: #"{"cron": "@every 60s", "type": "test.api.changed"}"#)
            #expect(
                changed.status == 200 && changed.json?[path: "cron"] == "@every 60s" && changed.json?[path: "missed"] == "skip", "\(changed.text)")
            let disabled = try await a.request(.POST, "/api/schedules/\(name)/disable")
            #expect(disabled.status == 200 && disabled.json?[path: "enabled"] == .bool(false) && disabled.json?[path: "next_run"] == .null)
            let enabled = try await a.request(.POST, "/api/schedules/\(name)/enable")
            #expect(enabled.status == 200 && enabled.json?[path: "enabled"] == .bool(true) && enabled.json?[path: "next_run"] != .null)

            let removed = try await a.request(.DELETE, "/api/schedules/\(name)")
            #expect(removed.status == 200, "\(removed.text)")
            #expect(try await a.request(.GET, "/api/schedules/\(name)").status == 404)
            #expect(try await a.request(.DELETE, "/api/schedules/\(name)").status == 404)
        }
    }

    @Test(
        "bad schedules are refused with 400 naming the field",
        arguments: [
            (#"{"name": "bad-1", "cron": "@every 0s", "type": "test.bad"}"#, "cron:"),
            (#"{"name": "bad-2", "cron": "@every 30s", "type": "test.#"}"#, "pattern"),
            (#"{"name": "bad-3", "cron": "@every 30s", "type": "test.bad", "time_zone": "Nowhere/City"}"#, "IANA"),
            (#"{"name": "bad name", "cron": "@every 30s", "type": "test.bad"}"#, "schedule name"),
            (#"{"name": "bad-4", "cron": "@every 30s", "type": "test.bad", "payload": [1]}"#, "payload"),
        ])
    func badSchedules(body: String, expected: String) async throws {
        try await withAdminServer { a in
            let answer = try await a.request(.POST, "/api/schedules", body: body)
            #expect(answer.status == 400 && answer.errorMessage.contains(expected), "\(answer.status) \(answer.text)")
        }
    }

    @Test("POST /api/events with deliver_at keeps the event (once per id), lists it, and DELETE cancels it")
    func delayedEvents() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("api-delayed-")
            let at = Timestamp.format(Date().addingTimeInterval(3600))
            let body = #"{"type": "test.api.delayed", "id": "\#(id)", "deliver_at": "\#(at)", "payload": {"n": 1}}"#
            let kept = try await a.request(.POST, "/api/events", body: body)
            #expect(
                kept.status == 202 && kept.json?[path: "event_id"]?.stringValue == id && kept.json?[path: "kept_before"] == .bool(false),
                "\(kept.text)")
            let twice = try await a.request(.POST, "/api/events", body: body)
            #expect(twice.status == 202 && twice.json?[path: "kept_before"] == .bool(true), "\(twice.text)")
            let listed = try await a.request(.GET, "/api/events/scheduled")
            let mine = listed.json?[path: "events"]?.arrayValue?.filter { $0[path: "event_id"]?.stringValue == id } ?? []
            // The time as sent, to the millisecond (PostgreSQL keeps microseconds; a Double may land a hair below).
            let listedAt = mine.first?[path: "deliver_at"]?.stringValue.flatMap(Timestamp.parse)
            #expect(mine.count == 1, "\(listed.text)")
            #expect(listedAt.map { abs($0.timeIntervalSince(Timestamp.parse(at)!)) < 0.002 } == true, "\(listed.text)")
            let one = try await a.request(.GET, "/api/events/scheduled/\(id)")
            #expect(one.status == 200 && one.json?[path: "state"] == "pending" && one.json?[path: "payload.n"] == .int(1))
            #expect(try await a.request(.DELETE, "/api/events/scheduled/\(id)", authorized: false).status == 401)
            let cancelled = try await a.request(.DELETE, "/api/events/scheduled/\(id)")
            #expect(cancelled.status == 200, "\(cancelled.text)")
            #expect(try await a.request(.GET, "/api/events/scheduled/\(id)").json?[path: "state"] == "cancelled")
            #expect(try await a.request(.DELETE, "/api/events/scheduled/no-such-\(id)").status == 404)
            let both = try await a.request(
                .POST, "/api/events", body: #"{"type": "test.api.delayed", "deliver_at": "\#(at)", "delay_seconds": 5}"#)
            #expect(both.status == 400 && both.errorMessage.contains("not both"), "\(both.text)")
        }
    }

    @Test("POST /api/events with an id twice is one event in the log")
    func idempotentPublish() async throws {
        try await withEventLog { _, log, _ in
            try await withAdminServer { a in
                let id = TestEnvironment.uniqueName("api-id-")
                for _ in 0..<2 {
                    let answer = try await a.request(.POST, "/api/events", body: #"{"type": "test.api.id", "id": "\#(id)"}"#)
                    #expect(answer.status == 202 && answer.json?[path: "event_id"]?.stringValue == id, "\(answer.text)")
                }
                #expect(try await TestEnvironment.eventually { try await log.count(eventID: EventID(id)!) == 1 })
                #expect(try await TestEnvironment.waitUntilSettled("agentry.event-log"))
                #expect(try await log.count(eventID: EventID(id)!) == 1)
            }
        }
    }
}
