public import Foundation

/// Something that happened, that agents may react to.
public struct Event: Sendable, Hashable {
    public var id: EventID
    /// Dot-separated type, e.g. `alert.blackscreen`; the routing key on the bus.
    public var type: String
    public var payload: JSONObject
    public var priority: Priority
    public var timestamp: Date
    /// Who published it (`cli`, `scheduler`, an agent id …).
    public var source: String?
    /// The id shared by every event of one chain of work.
    public var correlationID: String?
    /// The id of the event that directly caused this one.
    public var causationID: String?

    public init(
        id: EventID = .generate(), type: String, payload: JSONObject = [:], priority: Priority = .normal,
        timestamp: Date = Date(), source: String? = nil, correlationID: String? = nil, causationID: String? = nil
    ) {
        self.id = id
        self.type = type
        self.payload = payload
        self.priority = priority
        self.timestamp = timestamp
        self.source = source
        self.correlationID = correlationID
        self.causationID = causationID
    }

    /// A follow-up event caused by this one: same correlation, causation = this event's id.
    public func followUp(type: String, payload: JSONObject = [:], priority: Priority? = nil, source: String? = nil) -> Event {
        Event(
            type: type, payload: payload, priority: priority ?? self.priority, source: source,
            correlationID: correlationID ?? id.rawValue, causationID: id.rawValue)
    }
}
