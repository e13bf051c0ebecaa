import AgentryCore
import AgentryStore
import Foundation
import NIOHTTP1
import PostgresNIO
import Testing

/// `GET /api/events` and `GET /api/runs`: each filter keeps exactly the rows it names, paging by cursor shows every
/// row once and in order (also while rows arrive), bad parameters are 400s that name the parameter. Each test's
/// rows carry a tag of their own (types `<tag>.…`, agents `<tag>-…`), so that other tests' rows in the shared
/// database stay out of what is checked.
@Suite("Search: the events and runs API", .serialized)
struct SearchAPITests {
    static let base = Date(timeIntervalSince1970: 1_796_000_000)  // 2026-11-30

    /// `/api/...?k=v&...` with the values percent-encoded (`#`, `+` and `:` included).
    static func path(_ path: String, _ query: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~*")
        let parts = query.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.1)" }
        return parts.isEmpty ? path : path + "?" + parts.joined(separator: "&")
    }

    /// The ids an answer lists under `key` (`events` → `id`, `runs` → `run_id`), in order.
    static func ids(_ answer: AdminHarness.Answer, _ key: String) -> [String] {
        let field = key == "events" ? "id" : "run_id"
        return answer.json?[path: key]?.arrayValue?.compactMap { $0[path: field]?.stringValue } ?? []
    }

    /// Every page of a listing, following next_cursor; `between` runs after each page but the last.
    static func allPages(
        _ a: AdminHarness, _ listing: String, _ query: [(String, String)], limit: Int, between: @Sendable (Int) async throws -> Void = { _ in }
    ) async throws -> [String] {
        var seen: [String] = []
        var cursor: String? = nil
        var page = 0
        repeat {
            let answer = try await a.request(
                .GET, path("/api/\(listing)", query + [("limit", String(limit))] + (cursor.map { [("cursor", $0)] } ?? [])))
            #expect(answer.status == 200, "\(answer.text)")
            let ids = ids(answer, listing)
            #expect(ids.count <= limit)
            #expect(answer.json?[path: "count"]?.intValue == Int64(ids.count))
            seen += ids
            cursor = answer.json?[path: "next_cursor"]?.stringValue
            if cursor != nil {
                #expect(ids.count == limit, "a page before the last is full")
                try await between(page)
            }
            page += 1
            if page > 100 { break }
        } while cursor != nil
        return seen
    }

    struct Logged: Sendable {
        var event: Event
        var agent: String
    }

    /// Events of types `<tag>.alert.blackscreen`, `<tag>.alert.offline`, `<tag>.build.deployed.prod`, one a minute
    /// back from `base`, with priorities, sources, agents and device ids varying by index.
    static func logEvents(_ store: EventLogStore, tag: String, count: Int) async throws -> [Logged] {
        var logged: [Logged] = []
        for i in 0..<count {
            let type = ["\(tag).alert.blackscreen", "\(tag).alert.offline", "\(tag).build.deployed.prod"][i % 3]
            let agent = "\(tag)-agent-\(i % 4)"
            // Half say their agent in the payload (as agent.task.* do), half by being its source (as its follow-ups).
            var payload: JSONObject = ["device_id": .string(i % 5 == 0 ? "TV-3\(i)" : "stb-\(i)"), "n": .int(Int64(i))]
            if i % 2 == 0 { payload["agent_id"] = .string(agent) }
            let event = Event(
                type: type, payload: payload, priority: [Priority.critical, .high, .normal, .low][i % 4],
                timestamp: base.addingTimeInterval(-60 * Double(i)), source: i % 2 == 0 ? "agentry.worker" : agent)
            logged.append(Logged(event: event, agent: agent))
        }
        try await store.insert(logged.map(\.event))
        return logged
    }

    @Test("GET /api/events: type (exact and pattern), agent, priority, since/until and q each keep exactly their events, newest first")
    func eventFilters() async throws {
        try await withAdminServer { a in
            let tag = TestEnvironment.uniqueName("se")
            let logged = try await Self.logEvents(EventLogStore(database: a.worker.database, logger: TestEnvironment.logger), tag: tag, count: 40)
            func expect(_ query: [(String, String)], _ keep: (Logged) -> Bool, _ note: String) async throws {
                let answer = try await a.request(.GET, Self.path("/api/events", query + [("limit", "1000")]))
                #expect(answer.status == 200, "\(note): \(answer.text)")
                let want = logged.filter(keep).map(\.event.id.rawValue)
                #expect(!want.isEmpty, "\(note): the test data has matching events")
                #expect(Self.ids(answer, "events") == want, "\(note)")
                #expect(answer.json?[path: "next_cursor"] == .null, "\(note): one page")
            }
            let everything: (String, String) = ("type", "\(tag).#")
            try await expect([everything], { _ in true }, "type pattern with #")
            try await expect([("type", "\(tag).alert.blackscreen")], { $0.event.type == "\(tag).alert.blackscreen" }, "exact type")
            try await expect([("type", "\(tag).alert.*")], { $0.event.type.hasPrefix("\(tag).alert.") }, "type pattern with *")
            try await expect([("type", "\(tag).*.deployed.prod")], { $0.event.type.hasSuffix("deployed.prod") }, "* in the middle")
            try await expect([everything, ("agent", "\(tag)-agent-1")], { $0.agent == "\(tag)-agent-1" }, "agent by source")
            try await expect([everything, ("agent", "\(tag)-agent-2")], { $0.agent == "\(tag)-agent-2" }, "agent by payload")
            try await expect([everything, ("priority", "Critical")], { $0.event.priority == .critical }, "priority, any case")
            let since = Self.base.addingTimeInterval(-60 * 20), until = Self.base.addingTimeInterval(-60 * 10)
            try await expect(
                [everything, ("since", Timestamp.format(since)), ("until", Timestamp.format(until))],
                { $0.event.timestamp >= since && $0.event.timestamp < until }, "since (inclusive) and until (exclusive)")
            try await expect(
                [everything, ("since", "2026-11-30T01:30:00+01:00")], { $0.event.timestamp >= Timestamp.parse("2026-11-30T00:30:00Z")! },
                "a time with an offset")
            try await expect(
                [("q", "tv-3"), everything], { JSONValue.object($0.event.payload).jsonText.lowercased().contains("tv-3") }, "q, any case")
            try await expect(
                [everything, ("q", "\"n\": 7")], { $0.event.payload["n"] == .int(7) }, "q over the JSON text, keys included")
            try await expect(
                [("type", "\(tag).alert.*"), ("agent", "\(tag)-agent-0"), ("priority", "critical"), ("q", "TV-3")],
                {
                    $0.event.type.hasPrefix("\(tag).alert.") && $0.agent == "\(tag)-agent-0" && $0.event.priority == .critical
                        && $0.event.payload["device_id"]?.stringValue?.hasPrefix("TV-3") == true
                },
                "filters together")
            let none = try await a.request(.GET, Self.path("/api/events", [everything, ("q", "no-such-text-\(tag)")]))
            #expect(none.status == 200 && Self.ids(none, "events").isEmpty && none.json?[path: "next_cursor"] == .null, "\(none.text)")
            let noType = try await a.request(.GET, Self.path("/api/events", [("type", "\(tag).nothing.*")]))
            #expect(noType.status == 200 && Self.ids(noType, "events").isEmpty, "\(noType.text)")
        }
    }

    /// Runs of agents `<tag>-a` (even indexes) and `<tag>-b` (odd), one a minute back from `base`, for logged events
    /// whose payloads name a device (`tv-9…` every seventh); each agent's runs go succeeded, failed, succeeded,
    /// skipped; types and priorities vary by index too. Returns (run id, agent, state, type, priority,
    /// started, device) per run, newest first.
    static func recordRuns(
        _ database: Database, tag: String, count: Int, minutesBack: @Sendable (Int) -> Double = { Double($0) }
    ) async throws -> [(id: String, agent: String, state: String, type: String, priority: Int, started: Date, device: String)] {
        var runs: [(id: String, agent: String, state: String, type: String, priority: Int, started: Date, device: String)] = []
        var events: [Event] = []
        for i in 0..<count {
            let device = i % 7 == 0 ? "tv-9\(i)" : "stb-\(i)"
            let type = i % 3 == 0 ? "\(tag).alert.blackscreen" : "\(tag).device.offline"
            let event = Event(type: type, payload: ["device_id": .string(device)], priority: .normal, source: "test")
            events.append(event)
            runs.append(
                (
                    UUID().uuidString.lowercased(), i % 2 == 0 ? "\(tag)-a" : "\(tag)-b", ["succeeded", "failed", "succeeded", "skipped"][i / 2 % 4],
                    type,
                    i % 4 + 1, base.addingTimeInterval(-60 * minutesBack(i)), device
                ))
        }
        try await EventLogStore(database: database, logger: TestEnvironment.logger).insert(events)
        try await database.client.query(
            """
            INSERT INTO task_runs (run_id, agent_id, agent_version, event_id, event_type, priority, state, started_at, finished_at)
            SELECT r, a, '1.0.0', e, t, p, s, st, st + interval '1 second'
            FROM unnest(\(runs.map { UUID(uuidString: $0.id)! })::uuid[], \(runs.map(\.agent))::text[], \(events.map(\.id.rawValue))::text[],
                        \(runs.map(\.type))::text[], \(runs.map(\.priority))::int8[], \(runs.map(\.state))::text[], \(runs.map(\.started))::timestamptz[])
                 AS x(r, a, e, t, p, s, st)
            """, logger: TestEnvironment.logger)
        return runs
    }

    @Test("GET /api/runs: agent (and agent_id), state, type, priority, since/until, event_id and q each keep exactly their runs")
    func runFilters() async throws {
        try await withAdminServer { a in
            let tag = TestEnvironment.uniqueName("sr")
            let runs = try await Self.recordRuns(a.worker.database, tag: tag, count: 36)
            func expect(
                _ query: [(String, String)],
                _ keep: ((id: String, agent: String, state: String, type: String, priority: Int, started: Date, device: String)) -> Bool,
                _ note: String
            ) async throws {
                let answer = try await a.request(.GET, Self.path("/api/runs", query + [("limit", "1000")]))
                #expect(answer.status == 200, "\(note): \(answer.text)")
                let want = runs.filter(keep).map(\.id)
                #expect(!want.isEmpty, "\(note): the test data has matching runs")
                #expect(Self.ids(answer, "runs") == want, "\(note)")
            }
            let everything: (String, String) = ("type", "\(tag).#")
            try await expect([everything], { _ in true }, "type pattern with #")
            try await expect([("agent", "\(tag)-a")], { $0.agent == "\(tag)-a" }, "agent")
            try await expect([("agent_id", "\(tag)-b")], { $0.agent == "\(tag)-b" }, "agent_id, as before")
            try await expect([("agent", "\(tag)-a"), ("state", "failed")], { $0.agent == "\(tag)-a" && $0.state == "failed" }, "agent and state")
            try await expect([("agent", "\(tag)-b"), ("state", "failed")], { $0.agent == "\(tag)-b" && $0.state == "failed" }, "the other agent")
            try await expect([everything, ("state", "skipped")], { $0.state == "skipped" }, "state")
            try await expect([("type", "\(tag).alert.blackscreen")], { $0.type == "\(tag).alert.blackscreen" }, "exact type")
            try await expect([("type", "\(tag).*.offline")], { $0.type == "\(tag).device.offline" }, "type pattern with *")
            try await expect([everything, ("priority", "HIGH")], { $0.priority == 2 }, "priority")
            let since = Self.base.addingTimeInterval(-60 * 12), until = Self.base.addingTimeInterval(-60 * 3)
            try await expect(
                [everything, ("since", Timestamp.format(since)), ("until", Timestamp.format(until))], { $0.started >= since && $0.started < until },
                "since and until")
            try await expect([everything, ("q", "TV-9")], { $0.device.hasPrefix("tv-9") }, "q in the event's payload")
            try await expect(
                [("agent", "\(tag)-a"), ("q", "tv-9"), ("state", "succeeded")],
                { $0.agent == "\(tag)-a" && $0.device.hasPrefix("tv-9") && $0.state == "succeeded" }, "together")
            let one = try await a.request(.GET, Self.path("/api/runs", [("agent", "\(tag)-a")]))
            let first = try #require(one.json?[path: "runs"]?.arrayValue?.first)
            let eventID = try #require(first[path: "event_id"]?.stringValue)
            let byEvent = try await a.request(.GET, Self.path("/api/runs", [("event_id", eventID)]))
            #expect(Self.ids(byEvent, "runs") == [first[path: "run_id"]?.stringValue ?? ""], "event_id")
        }
    }

    @Test("paging by cursor shows every event and run once, newest first, also when rows arrive between pages and times tie")
    func paging() async throws {
        try await withAdminServer { a in
            let tag = TestEnvironment.uniqueName("sp")
            let store = EventLogStore(database: a.worker.database, logger: TestEnvironment.logger)
            // 47 events, in groups of three at the same time: the id breaks the ties.
            let events = (0..<47).map { i in
                Event(
                    type: "\(tag).page.event", payload: ["i": .int(Int64(i))], timestamp: Self.base.addingTimeInterval(-Double(i / 3)), source: "test"
                )
            }
            try await store.insert(events)
            let newer = { @Sendable (page: Int) async throws in
                // Rows arriving while a client pages: newer than its cursor, so not on the pages below it.
                _ = try await store.insert(
                    (0..<3).map { j in
                        Event(type: "\(tag).page.event", payload: ["late": .int(Int64(page * 10 + j))], timestamp: Date(), source: "test")
                    })
            }
            let seen = try await Self.allPages(a, "events", [("type", "\(tag).page.event")], limit: 10, between: newer)
            #expect(seen.count == Set(seen).count, "no event twice")
            #expect(
                Set(seen) == Set(events.map(\.id.rawValue)), "every event that was there, and none that came later: \(seen.count) of \(events.count)")
            let answer = try await a.request(.GET, Self.path("/api/events", [("type", "\(tag).page.event"), ("limit", "1000")]))
            let times = answer.json?[path: "events"]?.arrayValue?.compactMap { $0[path: "timestamp"]?.stringValue } ?? []
            #expect(times == times.sorted(by: >), "newest first")
            #expect(times.count == events.count + 3 * 4, "the late events are listed when read again")

            // Runs: 33, in pairs started at the same time; a run started between pages is not on the pages below.
            let runs = try await Self.recordRuns(a.worker.database, tag: tag, count: 33, minutesBack: { Double($0 / 2) })
            let moreRuns = { @Sendable (page: Int) async throws in _ = try await Self.recordRuns(a.worker.database, tag: "\(tag)l\(page)", count: 2) }
            let seenRuns = try await Self.allPages(a, "runs", [("type", "\(tag).#")], limit: 7, between: moreRuns)
            #expect(seenRuns.count == Set(seenRuns).count, "no run twice")
            #expect(Set(seenRuns) == Set(runs.map(\.id)), "every run: \(seenRuns.count) of \(runs.count)")
            let all = try await a.request(.GET, Self.path("/api/runs", [("type", "\(tag).#"), ("limit", "1000")]))
            let started = all.json?[path: "runs"]?.arrayValue?.compactMap { $0[path: "started_at"]?.stringValue } ?? []
            #expect(started == started.sorted(by: >), "newest first")
            #expect(Set(started).count < started.count, "the test has runs that started at the same time")
        }
    }

    @Test("bad parameters are 400s that name the parameter: cursor, priority, times, type, limit, q, state")
    func badParameters() async throws {
        try await withAdminServer { a in
            let cases: [(String, [(String, String)], String)] = [
                ("events", [("cursor", "not-a-cursor")], "cursor"),
                ("runs", [("cursor", "AAAA")], "cursor"),
                ("events", [("priority", "urgent")], "priority"),
                ("runs", [("priority", "9")], "priority"),
                ("events", [("since", "yesterday")], "since"),
                ("runs", [("until", "2026-13-01T00:00:00Z")], "until"),
                ("events", [("since", "2026-12-06T22:00:00Z"), ("until", "2026-12-06T21:00:00Z")], "until"),
                ("events", [("type", "alert..x")], "type"),
                ("runs", [("type", "alert.*x")], "type"),
                ("events", [("limit", "0")], "limit"),
                ("runs", [("limit", "10001")], "limit"),
                ("events", [("q", String(repeating: "x", count: 201))], "q"),
                ("runs", [("agent", "a"), ("agent_id", "b")], "agent"),
            ]
            for (listing, query, name) in cases {
                let answer = try await a.request(.GET, Self.path("/api/\(listing)", query))
                #expect(answer.status == 400, "\(listing) \(query): \(answer.status) \(answer.text)")
                #expect(answer.errorMessage.contains(name), "\(listing) \(query): the message names \(name): \(answer.errorMessage)")
            }
            let state = try await a.request(.GET, Self.path("/api/runs", [("state", "exploded")]))
            #expect(state.status == 400, "\(state.text)")
            // A cursor of one listing does not page the other.
            let runCursor = SearchCursor(kind: .runs, time: Date(), id: UUID()).token
            let crossed = try await a.request(.GET, Self.path("/api/events", [("cursor", runCursor)]))
            #expect(crossed.status == 400 && crossed.errorMessage.contains("runs"), "\(crossed.text)")
            let eventCursor = SearchCursor(kind: .events, time: Date(), id: UUID()).token
            let crossedBack = try await a.request(.GET, Self.path("/api/runs", [("cursor", eventCursor)]))
            #expect(crossedBack.status == 400 && crossedBack.errorMessage.contains("events"), "\(crossedBack.text)")
        }
    }
}
