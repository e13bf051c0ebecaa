public import AgentryCore
public import AgentryStore
public import Foundation

extension Representation {
    /// A schedule with what the schedulers wrote about it, and its next ticks (`upcoming`).
    public static func schedule(_ record: ScheduleRecord, upcoming: [Date] = []) -> JSONValue {
        let schedule = record.schedule
        return .object([
            "name": .string(schedule.name), "event_type": .string(schedule.eventType), "cron": .string(schedule.cron.text),
            "payload": .object(schedule.payload), "priority": .string(schedule.priority.name), "time_zone": .string(schedule.timeZone),
            "missed": .string(schedule.missed.rawValue), "jitter_seconds": .int(Int64(schedule.jitterSeconds)),
            "grace_seconds": .int(Int64(schedule.graceSeconds)), "starts_at": time(schedule.startsAt), "ends_at": time(schedule.endsAt),
            "description": .string(schedule.description), "enabled": .bool(schedule.enabled), "agent_id": string(schedule.agentID),
            "next_run": time(record.nextRun), "last_run": time(record.lastRun),
            "ticks_published": .int(Int64(record.ticksPublished)), "ticks_missed": .int(Int64(record.ticksMissed)),
            "created_at": time(record.createdAt), "updated_at": time(record.updatedAt),
            "upcoming": .array(upcoming.map { .string(Timestamp.format($0)) }),
        ])
    }

    /// A webhook delivery received (accepted or refused).
    public static func webhookDelivery(_ d: WebhookStore.Delivery) -> JSONValue {
        .object([
            "source": .string(d.source), "delivery_id": string(d.deliveryID), "received_at": time(d.receivedAt),
            "event_id": string(d.eventID), "outcome": .string(d.outcome.rawValue), "reason": string(d.reason),
            "detail": string(d.detail), "remote": string(d.remote),
        ])
    }

    /// A delayed event (or a schedule's tick waiting for its delivery time).
    public static func delayedEvent(_ delayed: DelayedEvent) -> JSONValue {
        let event = delayed.event
        return .object([
            "event_id": .string(event.id.rawValue), "event_type": .string(event.type), "payload": .object(event.payload),
            "priority": .string(event.priority.name), "timestamp": time(event.timestamp), "source": string(event.source),
            "correlation_id": string(event.correlationID), "causation_id": string(event.causationID),
            "deliver_at": time(delayed.deliverAt), "state": .string(delayed.state.rawValue), "schedule": string(delayed.scheduleName),
            "attempts": .int(Int64(delayed.attempts)), "last_error": string(delayed.lastError), "created_at": time(delayed.createdAt),
            "finished_at": time(delayed.finishedAt), "cancelled_by": string(delayed.cancelledBy),
        ])
    }
}
