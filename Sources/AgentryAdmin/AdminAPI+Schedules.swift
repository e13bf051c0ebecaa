import AgentryCore
import AgentryStore
import Foundation
import HTTPTypes

/// Schedules (made, changed, enabled, removed, listed) and delayed events (listed, cancelled).
extension AdminAPI {
    var schedules: ScheduleStore { ScheduleStore(database: dependencies.database, logger: logger) }
    var delayed: DelayedEventStore { DelayedEventStore(database: dependencies.database, logger: logger) }

    func listSchedules(_ input: Operations.ListSchedules.Input) async throws -> Operations.ListSchedules.Output {
        let records = try await schedules.records()
        return .ok(.init(body: .json(.init(schedules: records.map { Representation.schedule($0) }, count: records.count))))
    }

    func getSchedule(_ input: Operations.GetSchedule.Input) async throws -> Operations.GetSchedule.Output {
        let count = input.query.upcoming ?? 5
        guard (0...1000).contains(count) else { throw AdminError.badRequest("upcoming must be 0 to 1000, not \(count)") }
        let record = try await existing(input.path.name)
        return .ok(.init(body: .json(representation(record, upcoming: count))))
    }

    func createSchedule(_ input: Operations.CreateSchedule.Input) async throws -> Operations.CreateSchedule.Output {
        let body =
            switch input.body {
            case .json(let json): json
            }
        let schedule = try schedule(named: body.value2.name, body.value1)
        try await schedules.save(schedule, replacing: false)
        return .created(.init(body: .json(representation(try await existing(schedule.name)))))
    }

    func putSchedule(_ input: Operations.PutSchedule.Input) async throws -> Operations.PutSchedule.Output {
        let body =
            switch input.body {
            case .json(let json): json
            }
        let schedule = try schedule(named: input.path.name, body)
        try await schedules.save(schedule, replacing: true)
        return .ok(.init(body: .json(representation(try await existing(schedule.name)))))
    }

    func deleteSchedule(_ input: Operations.DeleteSchedule.Input) async throws -> Operations.DeleteSchedule.Output {
        guard try await schedules.remove(input.path.name) else { throw AdminError.notFound("no schedule named '\(input.path.name)'") }
        return .ok(.init(body: .json(.init(message: "Schedule \(input.path.name) removed; its ticks waiting for delivery were cancelled"))))
    }

    func enableSchedule(_ input: Operations.EnableSchedule.Input) async throws -> Operations.EnableSchedule.Output {
        guard try await schedules.setEnabled(input.path.name, true) else { throw AdminError.notFound("no schedule named '\(input.path.name)'") }
        return .ok(.init(body: .json(representation(try await existing(input.path.name)))))
    }

    func disableSchedule(_ input: Operations.DisableSchedule.Input) async throws -> Operations.DisableSchedule.Output {
        guard try await schedules.setEnabled(input.path.name, false) else { throw AdminError.notFound("no schedule named '\(input.path.name)'") }
        return .ok(.init(body: .json(representation(try await existing(input.path.name)))))
    }

    func listScheduledEvents(_ input: Operations.ListScheduledEvents.Input) async throws -> Operations.ListScheduledEvents.Output {
        let pending = try await delayed.pending(limit: try limit(input.query.limit, default: 100))
        return .ok(.init(body: .json(.init(events: pending.map(Representation.delayedEvent), count: pending.count))))
    }

    func getScheduledEvent(_ input: Operations.GetScheduledEvent.Input) async throws -> Operations.GetScheduledEvent.Output {
        let id = try eventID(input.path.eventId)
        guard let event = try await delayed.event(id) else { throw AdminError.notFound("no delayed event has the id \(id)") }
        return .ok(.init(body: .json(Representation.delayedEvent(event))))
    }

    func cancelScheduledEvent(_ input: Operations.CancelScheduledEvent.Input) async throws -> Operations.CancelScheduledEvent.Output {
        let id = try eventID(input.path.eventId)
        switch try await delayed.cancel(id, by: "admin API (\(AdminRequest.current.head.authority ?? "local"))") {
        case .cancelled, .alreadyCancelled: return .ok(.init(body: .json(.init(message: "Event \(id) cancelled"))))
        case .notFound: throw AdminError.notFound("no delayed event has the id \(id)")
        case .published(let at): throw AdminError.conflict("event \(id) was published already\(at.map { " at \(Timestamp.format($0))" } ?? "")")
        case .publishing: throw AdminError.conflict("event \(id) is being published at this moment; it can no longer be cancelled")
        }
    }

    // MARK: Helpers

    func eventID(_ text: String) throws -> EventID {
        guard let id = EventID(text) else { throw AdminError.badRequest("'\(text)' is not an event id (1 to 255 bytes, no NUL)") }
        return id
    }

    private func existing(_ name: String) async throws -> ScheduleRecord {
        guard let record = try await schedules.record(named: name) else { throw AdminError.notFound("no schedule named '\(name)'") }
        return record
    }

    private func representation(_ record: ScheduleRecord, upcoming count: Int = 5) -> JSONValue {
        Representation.schedule(record, upcoming: record.upcoming(count))
    }

    private func schedule(named name: String, _ input: Components.Schemas.ScheduleInput) throws -> Schedule {
        let cron: CronExpression
        do {
            cron = try CronExpression(input.cron)
        } catch {
            throw AdminError.badRequest("cron: \(error)")
        }
        let schedule = Schedule(
            name: name, eventType: input._type, cron: cron, payload: try payloadObject(input.payload), priority: try priorityLevel(input.priority),
            timeZone: input.timeZone ?? "UTC",
            missed: input.missed.flatMap { MissedTicks(rawValue: $0.rawValue) } ?? .skip, jitterSeconds: input.jitterSeconds ?? 0,
            graceSeconds: input.graceSeconds ?? Schedule.defaultGraceSeconds, startsAt: input.startsAt, endsAt: input.endsAt,
            description: input.description ?? "", enabled: input.enabled ?? true)
        if let problem = schedule.problem() { throw AdminError.badRequest(problem) }
        return schedule
    }
}
