import Foundation
import Testing

@testable import AgentryCore

/// What a scheduler does with a due schedule: which ticks it publishes, which it counts as missed, where it goes on.
@Suite("Schedule plans")
struct SchedulePlanTests {
    /// A whole second, so that `@every 1s` ticks fall on it.
    let t = Date(timeIntervalSince1970: 1_800_000_000)

    func schedule(missed: MissedTicks = .skip, grace: Int = 10, starts: Date? = nil, ends: Date? = nil, jitter: Int = 0) throws -> Schedule {
        Schedule(
            name: "poll", eventType: "device.poll", cron: try CronExpression("@every 1s"), missed: missed, jitterSeconds: jitter,
            graceSeconds: grace, startsAt: starts, endsAt: ends)
    }

    func seconds(_ offsets: ClosedRange<Int>) -> [Date] { offsets.map { t.addingTimeInterval(Double($0)) } }

    @Test("a tick due now is published with those of the lookahead, and the schedule moves past them")
    func onTime() throws {
        let plan = try schedule().plan(nextRun: t, now: t, lookahead: .seconds(2))
        #expect(plan == TickPlan(fire: seconds(0...2), missed: 0, nextRun: t.addingTimeInterval(3)))
    }

    @Test("ticks later than now but within the grace are still published, each")
    func lateWithinGrace() throws {
        let plan = try schedule(grace: 10).plan(nextRun: t.addingTimeInterval(-5), now: t, lookahead: .zero)
        #expect(plan == TickPlan(fire: seconds(-5...0), missed: 0, nextRun: t.addingTimeInterval(1)))
    }

    @Test("skip drops and counts the ticks older than the grace")
    func skipMissed() throws {
        let plan = try schedule(missed: .skip, grace: 10).plan(nextRun: t.addingTimeInterval(-20), now: t, lookahead: .zero)
        #expect(plan == TickPlan(fire: seconds(-10...0), missed: 10, nextRun: t.addingTimeInterval(1)))
    }

    @Test("fire_once publishes one event for the latest missed tick, before the ticks within the grace")
    func fireOnceMissed() throws {
        let plan = try schedule(missed: .fireOnce, grace: 10).plan(nextRun: t.addingTimeInterval(-20), now: t, lookahead: .zero)
        #expect(plan == TickPlan(fire: [t.addingTimeInterval(-11)] + seconds(-10...0), missed: 10, nextRun: t.addingTimeInterval(1)))
    }

    @Test("a day down on an every-second schedule: the plan stays bounded and resumes within the grace")
    func farBehind() throws {
        let plan = try schedule(missed: .fireOnce, grace: 5).plan(nextRun: t.addingTimeInterval(-86_400), now: t, lookahead: .zero)
        #expect(plan.fire.count == 7, "one for the missed ticks, then the six within the grace")
        #expect(Array(plan.fire.dropFirst()) == seconds(-5...0))
        #expect(plan.missed >= Schedule.planLimit)
        #expect(plan.nextRun == t.addingTimeInterval(1))
    }

    @Test("no tick after the end: the schedule has no next tick once it is past")
    func ends() throws {
        let plan = try schedule(ends: t.addingTimeInterval(1)).plan(nextRun: t, now: t, lookahead: .seconds(5))
        #expect(plan == TickPlan(fire: seconds(0...1), missed: 0, nextRun: nil))
    }

    @Test("no tick before the start")
    func starts() throws {
        let s = try schedule(starts: t.addingTimeInterval(100))
        #expect(s.tick(after: t) == t.addingTimeInterval(100))
        #expect(s.ticks(after: t, count: 3) == seconds(100...102))
    }

    @Test("a tick's event: its id derived from the schedule and the tick, its timestamp the tick")
    func tickEvents() throws {
        let s = try schedule()
        let id = UUID()
        let a = s.event(tick: t, scheduleID: id)
        #expect(a.id == s.event(tick: t, scheduleID: id).id, "the same tick on any host is the same event")
        #expect(a.id != s.event(tick: t.addingTimeInterval(1), scheduleID: id).id)
        #expect(a.id != s.event(tick: t, scheduleID: UUID()).id, "another schedule's tick is another event")
        #expect(a.timestamp == t && a.type == "device.poll" && a.source == "schedule:poll")
    }

    @Test("jitter delays a tick by the same amount on every host, within its bound")
    func jitter() throws {
        let s = try schedule(jitter: 30)
        let delays = (0..<200).map { s.deliveryTime(of: t.addingTimeInterval(Double($0))).timeIntervalSince(t.addingTimeInterval(Double($0))) }
        #expect(delays.allSatisfy { (0...30).contains($0) })
        #expect(Set(delays).count > 100, "spread, not one delay")
        #expect(s.deliveryTime(of: t) == s.deliveryTime(of: t))
        #expect(try schedule(jitter: 0).deliveryTime(of: t) == t)
    }

    @Test(
        "a schedule's problems are named",
        arguments: [
            ("bad name!", "device.poll", "UTC", "schedule name"),
            ("poll", "device.*", "UTC", "pattern"),
            ("poll", "device.poll", "Mars/Olympus", "IANA"),
        ])
    func problems(name: String, type: String, zone: String, expected: String) throws {
        let s = Schedule(name: name, eventType: type, cron: try CronExpression("@every 1s"), timeZone: zone)
        #expect(s.problem()?.contains(expected) == true, "\(s.problem() ?? "no problem")")
    }
}
