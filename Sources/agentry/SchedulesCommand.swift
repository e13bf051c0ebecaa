import AgentryAdmin
import AgentryCore
import AgentryRuntime
import AgentryStore
import ArgumentParser
import Foundation
import Logging

/// Opens the database for a command about schedules or delayed events.
func withSchedules<T: Sendable>(
    _ options: GlobalOptions, _ body: @Sendable (ScheduleStore, DelayedEventStore) async throws -> T
) async throws -> T {
    let configuration = try options.resolve()
    let logger = try options.logger("agentry.schedules", default: .warning)
    do {
        return try await Database.with(configuration.database, logger: logger) { database in
            try await database.ping()
            return try await body(ScheduleStore(database: database, logger: logger), DelayedEventStore(database: database, logger: logger))
        }
    } catch {
        throw fail(error)
    }
}

extension Agentry {
    struct Schedules: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Schedules: events published at the ticks of a cron expression, once per tick across every worker.",
            discussion: """
                Every worker runs the scheduler (unless --no-scheduler); one at a time leads. Cron: 5 fields (minute hour \
                day-of-month month day-of-week) or 6 with seconds first; @hourly, @daily, @weekly, @monthly, @yearly, \
                @every 30s. Agents declare schedules with a `schedule` trigger; those change with the agent's YAML.
                """,
            subcommands: [Add.self, List.self, Show.self, Enable.self, Disable.self, Remove.self, Next.self])
    }
}

/// The fields of a schedule, as flags (add).
struct ScheduleFields: ParsableArguments {
    @Option(help: "The cron expression, e.g. '*/5 * * * *', '0 30 2 * * *', '@daily', '@every 30s'.")
    var cron: String

    @Option(help: "The type of the events it publishes, e.g. device.poll.")
    var type: String

    @Option(help: "Payload: a JSON object.")
    var payload: String = "{}"

    @Option(help: "critical, high, normal or low.")
    var priority: String = "normal"

    @Option(help: "IANA time zone the cron fields are read in, e.g. Europe/Berlin.")
    var timeZone: String = "UTC"

    @Option(help: "Ticks missed while no worker ran: skip (count and drop them) or fire_once (one event for the latest).")
    var missed: String = "skip"

    @Option(help: "Deliver each tick up to this many seconds late (the same delay on every host), to spread load.")
    var jitterSeconds: Int = 0

    @Option(help: "How late a tick may still be published; an older one counts as missed.")
    var graceSeconds: Int = Schedule.defaultGraceSeconds

    @Option(help: "No tick before this time (ISO 8601, e.g. 2026-12-24T00:00:00Z).")
    var starts: String?

    @Option(help: "No tick after this time (ISO 8601).")
    var ends: String?

    @Option(help: "What it is for.")
    var description: String = ""

    @Flag(help: "Make it disabled.")
    var disabled = false

    func schedule(named name: String) throws -> Schedule {
        let expression: CronExpression
        do {
            expression = try CronExpression(cron)
        } catch {
            throw ValidationError("--cron: \(error)")
        }
        let level = try priorityOption(priority)
        guard let policy = MissedTicks(rawValue: missed) else { throw ValidationError("--missed '\(missed)' is not skip or fire_once") }
        let object = try jsonObjectOption(payload, flag: "--payload")
        let schedule = Schedule(
            name: name, eventType: type, cron: expression, payload: object, priority: level, timeZone: timeZone, missed: policy,
            jitterSeconds: jitterSeconds, graceSeconds: graceSeconds, startsAt: try starts.map { try timeOption($0, flag: "--starts") },
            endsAt: try ends.map { try timeOption($0, flag: "--ends") },
            description: description, enabled: !disabled)
        if let problem = schedule.problem() { throw ValidationError(problem) }
        return schedule
    }
}

extension Agentry.Schedules {
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a schedule (--replace changes one that exists).",
            discussion: "Example: agentry schedules add lab-poll --cron '*/5 * * * *' --type device.poll --payload '{\"pool\": \"lab-1\"}'")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The schedule's name (letters, digits, '.', '_', ':', '-').") var name: String
        @OptionGroup var fields: ScheduleFields
        @Flag(help: "Replace the schedule of that name if there is one.") var replace = false

        func validate() throws { _ = try fields.schedule(named: name) }

        func run() async throws {
            let schedule = try fields.schedule(named: name)
            let replace = self.replace
            let record = try await withSchedules(options) { schedules, _ in
                try await schedules.save(schedule, replacing: replace)
                return try await schedules.record(named: schedule.name)
            }
            let next = record?.nextRun.map { Timestamp.format($0) } ?? "none"
            print("schedule \(schedule.name) saved: \(schedule.eventType) at '\(schedule.cron.text)' (\(schedule.timeZone)); next tick \(next)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every schedule with its next tick.")
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let records = try await withSchedules(options) { schedules, _ in try await schedules.records() }
            if json {
                printJSON(.object(["schedules": .array(records.map { Representation.schedule($0) }), "count": .int(Int64(records.count))]))
                return
            }
            if records.isEmpty {
                print("no schedules; make one with `agentry schedules add NAME --cron '*/5 * * * *' --type device.poll`")
                return
            }
            printTable(
                header: ["NAME", "CRON", "ZONE", "TYPE", "ENABLED", "NEXT", "LAST", "PUBLISHED", "MISSED", "AGENT"],
                rows: records.map { record in
                    let s = record.schedule
                    return [
                        s.name, s.cron.text, s.timeZone, s.eventType, s.enabled ? "yes" : "no", record.nextRun.map(Timestamp.format) ?? "-",
                        record.lastRun.map(Timestamp.format) ?? "-", String(record.ticksPublished), String(record.ticksMissed), s.agentID ?? "-",
                    ]
                })
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One schedule, with its next ticks.")
        @OptionGroup var options: GlobalOptions
        @Argument var name: String
        @Option(name: .short, help: "How many next ticks to show.") var n: Int = 5

        func run() async throws {
            let name = self.name
            guard let record = try await withSchedules(options, { schedules, _ in try await schedules.record(named: name) }) else {
                throw fail(StoreError(.notFound, "no schedule named '\(name)' (agentry schedules list)"))
            }
            printJSON(Representation.schedule(record, upcoming: record.upcoming(n)))
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enable a schedule: its next tick is computed from now (ticks while disabled are not caught up).")
        @OptionGroup var options: GlobalOptions
        @Argument var name: String
        func run() async throws { try await setEnabled(options, name, true) }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disable a schedule: it publishes nothing until enabled; its ticks waiting for delivery are cancelled.")
        @OptionGroup var options: GlobalOptions
        @Argument var name: String
        func run() async throws { try await setEnabled(options, name, false) }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a schedule made on its own (an agent's go with its YAML).")
        @OptionGroup var options: GlobalOptions
        @Argument var name: String
        func run() async throws {
            let name = self.name
            guard try await withSchedules(options, { schedules, _ in try await schedules.remove(name) }) else {
                throw fail(StoreError(.notFound, "no schedule named '\(name)' (agentry schedules list)"))
            }
            print("schedule \(name) removed")
        }
    }

    struct Next: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The next ticks of a schedule, or of an expression (--cron, --time-zone) before you save it.",
            discussion: "Example: agentry schedules next --cron '30 2 * * *' --time-zone Europe/Berlin -n 10")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "A schedule's name (or give --cron).") var name: String?
        @Option(help: "An expression to try.") var cron: String?
        @Option(help: "The time zone for --cron.") var timeZone: String = "UTC"
        @Option(name: .short, help: "How many ticks.") var n: Int = 10

        func validate() throws {
            guard (name == nil) != (cron == nil) else { throw ValidationError("give a schedule's name or --cron EXPRESSION, not both") }
            guard (1...1000).contains(n) else { throw ValidationError("-n must be 1…1000") }
        }

        func run() async throws {
            let schedule: Schedule
            if let cron {
                let expression: CronExpression
                do {
                    expression = try CronExpression(cron)
                } catch {
                    throw ValidationError("--cron: \(error)")
                }
                schedule = Schedule(name: "try", eventType: "try.it", cron: expression, timeZone: timeZone)
                if let problem = schedule.problem() { throw ValidationError(problem) }
            } else {
                let name = self.name ?? ""
                guard let record = try await withSchedules(options, { schedules, _ in try await schedules.record(named: name) }) else {
                    throw fail(StoreError(.notFound, "no schedule named '\(name)' (agentry schedules list)"))
                }
                schedule = record.schedule
            }
            let zone = schedule.zone
            let local = DateFormatter()
            local.timeZone = zone
            local.dateFormat = "yyyy-MM-dd HH:mm:ss zzz"
            local.locale = Locale(identifier: "en_US_POSIX")
            for tick in schedule.ticks(after: Date(), count: n) {
                print("\(Timestamp.format(tick))  \(local.string(from: tick))")
            }
        }
    }
}

func setEnabled(_ options: GlobalOptions, _ name: String, _ enabled: Bool) async throws {
    guard try await withSchedules(options, { schedules, _ in try await schedules.setEnabled(name, enabled) }) else {
        throw fail(StoreError(.notFound, "no schedule named '\(name)' (agentry schedules list)"))
    }
    print("schedule \(name) \(enabled ? "enabled" : "disabled")")
}
