import AgentryBus
import AgentryCore
import AgentryStore
import Foundation

/// Publishing events: the seed's two alerts (Step 4.1) and any event.
extension AdminAPI {
    func publishBlackscreenAlert(_ input: Operations.PublishBlackscreenAlert.Input) async throws -> Operations.PublishBlackscreenAlert.Output {
        let body = input.body.map { body in
            switch body {
            case .json(let json): json
            }
        }
        let device = try required("device_id", input.query.deviceId, body?.deviceId)
        let event = Event(
            type: "alert.blackscreen", payload: ["device_id": .string(device), "severity": "critical"],
            priority: .critical, source: "agentry.admin")
        return .accepted(try await publish(event, message: "Alert published"))
    }

    func publishDeviceOfflineAlert(_ input: Operations.PublishDeviceOfflineAlert.Input) async throws -> Operations.PublishDeviceOfflineAlert.Output {
        let body = input.body.map { body in
            switch body {
            case .json(let json): json
            }
        }
        let device = try required("device_id", input.query.deviceId, body?.deviceId)
        guard let duration = input.query.duration ?? body?.duration else {
            throw AdminError.badRequest("'duration' is required (as a query parameter or in a JSON body)")
        }
        guard duration >= 0 else {
            throw AdminError.badRequest("duration must be a whole number of seconds (0 or more), not '\(duration)'")
        }
        let event = Event(
            type: "alert.device_offline",
            payload: ["device_id": .string(device), "duration_seconds": .int(Int64(duration)), "severity": "high"],
            priority: .high, source: "agentry.admin")
        return .accepted(try await publish(event, message: "Alert published"))
    }

    func publishEvent(_ input: Operations.PublishEvent.Input) async throws -> Operations.PublishEvent.Output {
        let body =
            switch input.body {
            case .json(let json): json
            }
        if let problem = EventType.problem(with: body._type) { throw AdminError.badRequest("type: \(problem)") }
        let payload = try payloadObject(body.payload)
        let priority = try priorityLevel(body.priority)
        var event = Event(
            type: body._type, payload: payload, priority: priority, source: body.source ?? "agentry.admin",
            correlationID: body.correlationId, causationID: body.causationId)
        if let id = body.id {
            guard let eventID = EventID(id) else { throw AdminError.badRequest("'id' is not an event id (1 to 255 bytes, no NUL)") }
            event.id = eventID
        }
        if EventWireFormat.encode(event).count > EventWireFormat.defaultMaxBodySize {
            throw AdminError.tooLarge(EventWireFormat.defaultMaxBodySize)
        }
        if body.deliverAt != nil && body.delaySeconds != nil { throw AdminError.badRequest("give 'deliver_at' or 'delay_seconds', not both") }
        if let deliverAt = body.deliverAt ?? body.delaySeconds.map({ Date().addingTimeInterval($0) }) {
            // Its timestamp is its delivery time: when it enters the bus.
            event.timestamp = deliverAt
            let kept = try await delayed.add(event, deliverAt: deliverAt)
            return .accepted(
                published(
                    event, message: kept ? "Event kept until its delivery time" : "An event with this id was kept before; nothing changed",
                    deliverAt: deliverAt, keptBefore: !kept))
        }
        return .accepted(try await publish(event, message: "Event published"))
    }

    private func publish(_ event: Event, message: String) async throws -> Components.Responses.EventPublished {
        do {
            try await dependencies.bus.publish(event)
        } catch {
            throw AdminError.unavailable("RabbitMQ did not take the event: \(error)")
        }
        return published(event, message: message)
    }

    func published(
        _ event: Event, message: String, deliverAt: Date? = nil, keptBefore: Bool? = nil
    ) -> Components.Responses.EventPublished {
        let priority: Components.Schemas.Priority
        switch event.priority {
        case .critical: priority = .critical
        case .high: priority = .high
        case .normal: priority = .normal
        case .low: priority = .low
        }
        return .init(
            body: .json(
                .init(
                    eventId: event.id.rawValue, _type: event.type, priority: priority, message: message, deliverAt: deliverAt, keptBefore: keptBefore)
            ))
    }
}
