import Foundation

/// Why a message on the bus is not an event. Such messages are parked in `agentry.dead` with this reason.
public struct EventDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Reason: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public static let tooLarge = Reason("too-large")
        public static let notUTF8 = Reason("not-utf8")
        public static let notJSON = Reason("not-json")
        public static let notAnObject = Reason("not-an-object")
        public static let unknownPriority = Reason("unknown-priority")
        public static let invalidType = Reason("invalid-type")
        public static let invalidField = Reason("invalid-field")
        public var description: String { name }
    }

    /// A short, stable name of the problem (`not-json`, `unknown-priority` …), for headers and metrics.
    public var reason: Reason
    /// What is wrong, in words.
    public var message: String

    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { message }
}

/// The event wire format of docs/design.md, in both directions.
///
/// Body: JSON `{"id", "type", "payload", "priority", "timestamp"}` (priority 1 CRITICAL … 4 LOW, ISO 8601 UTC
/// timestamp), plus `source`, `correlation_id` and `causation_id` when set. A body that is any other JSON object is a
/// *plain publish* from another AMQP client: the body is the payload, the type is the routing key, the id comes from
/// `message_id` (or is generated), the priority from the AMQP priority property (none counts as LOW).
public enum EventWireFormat {
    /// Default largest body accepted: 1 MiB.
    public static let defaultMaxBodySize = 1 << 20

    /// What the AMQP layer tells about a received message, beside its body.
    public struct Envelope: Sendable {
        public var routingKey: String
        public var messageID: String?
        public var typeProperty: String?
        public var amqpPriority: UInt8?
        /// Seconds since 1970.
        public var amqpTimestamp: UInt64?
        public var correlationID: String?

        public init(
            routingKey: String, messageID: String? = nil, typeProperty: String? = nil, amqpPriority: UInt8? = nil,
            amqpTimestamp: UInt64? = nil, correlationID: String? = nil
        ) {
            self.routingKey = routingKey
            self.messageID = messageID
            self.typeProperty = typeProperty
            self.amqpPriority = amqpPriority
            self.amqpTimestamp = amqpTimestamp
            self.correlationID = correlationID
        }
    }

    /// The JSON body of an event.
    public static func encode(_ event: Event) -> [UInt8] {
        // Written field by field in sorted key order: the same text as the envelope as a JSON object with sorted keys
        // (`JSON.serialize`), without building the object (every publish and every exec or http run encodes one).
        var out: [UInt8] = []
        out.reserveCapacity(192)
        func field(_ key: String, first: Bool = false) {
            if !first { out.append(UInt8(ascii: ",")) }
            JSON.writeString(key, into: &out)
            out.append(UInt8(ascii: ":"))
        }
        out.append(UInt8(ascii: "{"))
        var first = true
        if let causation = event.causationID {
            field("causation_id", first: first)
            first = false
            JSON.writeString(causation, into: &out)
        }
        if let correlation = event.correlationID {
            field("correlation_id", first: first)
            first = false
            JSON.writeString(correlation, into: &out)
        }
        field("id", first: first)
        JSON.writeString(event.id.rawValue, into: &out)
        field("payload")
        JSON.write(.object(event.payload), into: &out)
        field("priority")
        out.append(contentsOf: String(event.priority.rawValue).utf8)
        if let source = event.source {
            field("source")
            JSON.writeString(source, into: &out)
        }
        field("timestamp")
        out.append(UInt8(ascii: "\""))
        Timestamp.write(event.timestamp, into: &out)
        out.append(UInt8(ascii: "\""))
        field("type")
        JSON.writeString(event.type, into: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Reads an event from a message body and its AMQP envelope.
    public static func decode(body: [UInt8], envelope: Envelope, maxBodySize: Int = defaultMaxBodySize) throws(EventDecodingError) -> Event {
        guard body.count <= maxBodySize else {
            throw EventDecodingError(.tooLarge, "body is \(body.count) bytes; the limit is \(maxBodySize) bytes")
        }
        // JSON text is UTF-8; the parser would read a bad sequence as U+FFFD and log an event that was never sent.
        if !isValidUTF8(body) {
            throw EventDecodingError(.notUTF8, "body is not valid UTF-8 (JSON text must be); it was not logged with replacement characters")
        }
        let value: JSONValue
        do {
            value = try JSON.parse(body)
        } catch {
            let preview = String(decoding: body.prefix(60), as: UTF8.self)
            throw EventDecodingError(.notJSON, "body is not JSON (starts with \(preview.debugDescription)): \(error)")
        }
        guard case .object(let object) = value else {
            throw EventDecodingError(.notAnObject, "body is \(value.kindName), not a JSON object")
        }
        if containsNULEscape(body) {
            throw EventDecodingError(
                .invalidField, "a string in the body contains \\u0000 (NUL), which PostgreSQL cannot store; leave it out or encode it (e.g. base64)")
        }
        if case .string? = object["type"], case .object? = object["payload"] {
            return try decodeEnvelope(object, envelope: envelope, body: body)
        }
        return try decodePlain(object, envelope: envelope, body: body)
    }

    private static func decodeEnvelope(_ object: JSONObject, envelope: Envelope, body: [UInt8]) throws(EventDecodingError) -> Event {
        guard case .string(let type)? = object["type"], case .object(let payload)? = object["payload"] else {
            throw EventDecodingError(.invalidField, "envelope needs 'type' (string) and 'payload' (object)")
        }
        if let problem = EventType.problem(with: type) { throw EventDecodingError(.invalidType, problem) }

        let id: EventID
        switch object["id"] {
        case .string(let text)?:
            guard let parsed = EventID(text) else { throw EventDecodingError(.invalidField, "'id' must be 1…255 bytes without NUL") }
            id = parsed
        case .int(let number)?:
            id = EventID(String(number))!
        case .double(let number)? where number.rounded() == number && abs(number) < 1e15:
            id = EventID(String(Int64(number)))!
        case nil, .null?:
            id = try messageID(envelope) ?? derivedID(envelope, body)
        case let other?:
            throw EventDecodingError(.invalidField, "'id' is \(other.kindName); expected a string")
        }

        let priority: Priority
        switch object["priority"] {
        case .int(let level)?:
            guard let p = Priority(rawValue: Int(level)) else {
                throw EventDecodingError(.unknownPriority, "priority \(level) is not one of 1 (CRITICAL), 2 (HIGH), 3 (NORMAL), 4 (LOW)")
            }
            priority = p
        case .string(let name)?:
            guard let p = Priority(name: name) else {
                throw EventDecodingError(.unknownPriority, "priority '\(name)' is not one of CRITICAL, HIGH, NORMAL, LOW")
            }
            priority = p
        case nil, .null?:
            priority = try amqpPriority(envelope)
        case let other?:
            throw EventDecodingError(.unknownPriority, "priority is \(other.kindName); expected 1…4 or a name")
        }

        let timestamp: Date
        switch object["timestamp"] {
        case .string(let text)?:
            guard let date = Timestamp.parse(text) else {
                throw EventDecodingError(.invalidField, "timestamp '\(text)' is not ISO 8601 (e.g. 2026-11-25T21:44:35.123Z)")
            }
            timestamp = date
        case .int(let seconds)?:
            timestamp = try epoch(Double(seconds))
        case .double(let seconds)?:
            timestamp = try epoch(seconds)
        case nil, .null?:
            timestamp = envelope.amqpTimestamp.map { Date(timeIntervalSince1970: Double($0)) } ?? Date()
        case let other?:
            throw EventDecodingError(.invalidField, "timestamp is \(other.kindName); expected an ISO 8601 string")
        }

        func optionalString(_ key: String) throws(EventDecodingError) -> String? {
            switch object[key] {
            case nil, .null?: return nil
            case .string(let s)?:
                // The event log keeps these as varchar(255).
                guard s.unicodeScalars.count <= 255 else {
                    throw EventDecodingError(.invalidField, "'\(key)' is \(s.unicodeScalars.count) characters long; the limit is 255")
                }
                return s
            case let other?: throw EventDecodingError(.invalidField, "'\(key)' is \(other.kindName); expected a string")
            }
        }
        return Event(
            id: id, type: type, payload: payload, priority: priority, timestamp: timestamp,
            source: try optionalString("source"),
            correlationID: try optionalString("correlation_id") ?? envelope.correlationID,
            causationID: try optionalString("causation_id"))
    }

    private static func decodePlain(_ object: JSONObject, envelope: Envelope, body: [UInt8]) throws(EventDecodingError) -> Event {
        let type = envelope.routingKey.isEmpty ? (envelope.typeProperty ?? "") : envelope.routingKey
        if type.isEmpty {
            throw EventDecodingError(.invalidType, "message has neither a routing key nor a 'type' property to name its event type")
        }
        if let problem = EventType.problem(with: type) { throw EventDecodingError(.invalidType, problem) }
        return Event(
            id: try messageID(envelope) ?? derivedID(envelope, body), type: type, payload: object,
            priority: try amqpPriority(envelope),
            timestamp: envelope.amqpTimestamp.map { Date(timeIntervalSince1970: Double($0)) } ?? Date(),
            source: nil, correlationID: envelope.correlationID, causationID: nil)
    }

    /// The AMQP `message_id`, any string of 1…255 bytes (`order-42` as well as a UUID), or nil when there is none.
    private static func messageID(_ envelope: Envelope) throws(EventDecodingError) -> EventID? {
        guard let text = envelope.messageID, !text.isEmpty else { return nil }
        guard let id = EventID(text) else {
            throw EventDecodingError(.invalidField, "message_id must be 1…255 bytes of UTF-8 without NUL")
        }
        return id
    }

    /// A timestamp in seconds since 1970, within what PostgreSQL's timestamptz holds (years 1…9999 here).
    private static func epoch(_ seconds: Double) throws(EventDecodingError) -> Date {
        guard seconds.isFinite, seconds >= -62_135_596_800, seconds < 253_402_300_800 else {
            throw EventDecodingError(.invalidField, "timestamp \(seconds) is outside the years 1…9999")
        }
        return Date(timeIntervalSince1970: seconds)
    }

    /// Whether `bytes` are valid UTF-8; a pass over ASCII only for the usual, ASCII body.
    static func isValidUTF8(_ bytes: [UInt8]) -> Bool {
        guard bytes.contains(where: { $0 >= 0x80 }) else { return true }
        return String(validating: bytes, as: UTF8.self) != nil
    }

    /// Whether a JSON text holds the escape `\u0000` (a string PostgreSQL's jsonb refuses). A scan
    /// for the six bytes, counting the backslashes before each, so that `\\u0000` (a backslash, then `u0000`) is not one.
    static func containsNULEscape(_ bytes: [UInt8]) -> Bool {
        let backslash = UInt8(ascii: "\\"), u = UInt8(ascii: "u"), zero = UInt8(ascii: "0")
        var index = bytes.startIndex
        while let found = bytes[index...].firstIndex(of: backslash) {
            var run = found
            while run < bytes.endIndex, bytes[run] == backslash { run += 1 }
            // A run of n backslashes escapes the byte after it only when n is odd.
            if (run - found) % 2 == 1, run + 4 < bytes.endIndex, bytes[run] == u,
                bytes[run + 1] == zero, bytes[run + 2] == zero, bytes[run + 3] == zero, bytes[run + 4] == zero
            {
                return true
            }
            index = run
            if index >= bytes.endIndex { break }
        }
        return false
    }

    /// Without `message_id`, every reader of the message must still agree on its id: derive it from the message.
    private static func derivedID(_ envelope: Envelope, _ body: [UInt8]) -> EventID {
        EventID.derived(from: [
            Array(envelope.routingKey.utf8), body, Array(String(envelope.amqpTimestamp ?? 0).utf8),
            Array(String(envelope.amqpPriority ?? 0).utf8),
        ])
    }

    private static func amqpPriority(_ envelope: Envelope) throws(EventDecodingError) -> Priority {
        guard let priority = Priority(amqpPriority: envelope.amqpPriority) else {
            throw EventDecodingError(.unknownPriority, "AMQP priority \(envelope.amqpPriority ?? 0) is not one of 1 (LOW) … 4 (CRITICAL)")
        }
        return priority
    }
}
