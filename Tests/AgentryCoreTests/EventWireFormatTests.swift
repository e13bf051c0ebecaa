import Foundation
import Testing

@testable import AgentryCore

@Suite("EventWireFormat")
struct EventWireFormatTests {
    typealias Envelope = EventWireFormat.Envelope

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// The error `decode` throws, or nil when it decodes.
    private func decodingError(
        _ body: [UInt8], _ envelope: Envelope, maxBodySize: Int = EventWireFormat.defaultMaxBodySize
    )
        -> EventDecodingError?
    {
        do {
            _ = try EventWireFormat.decode(body: body, envelope: envelope, maxBodySize: maxBodySize)
            return nil
        } catch {
            return error
        }
    }

    /// The encoded body as a JSON object.
    private func jsonObject(_ body: [UInt8]) throws -> [String: JSONValue] {
        try JSONDecoder().decode([String: JSONValue].self, from: Data(body))
    }

    static let richPayload: JSONObject = [
        "device": ["id": "tv-1", "ports": [1, 2, 3]],
        "count": 42,
        "big": .int(9_007_199_254_740_993),
        "ratio": 0.75,
        "on": true,
        "off": false,
        "nothing": nil,
        "text": "Grüße, 日本, ☕️ \"quoted\" / slash\nnewline",
        "list": [["a": 1], "two", 3.5, nil, []],
        "empty": [:],
    ]

    @Test("the envelope is the event as one JSON object with sorted keys, with and without its optional fields")
    func envelopeText() throws {
        let full = Event(
            id: .generate(), type: "alert.blackscreen", payload: Self.richPayload, priority: .critical,
            timestamp: Date(timeIntervalSince1970: 1_700_000_000.5), source: "cli \"quoted\"",
            correlationID: "chain-1", causationID: "evt_0\n")
        let bare = Event(id: .generate(), type: "t.x", payload: [:], priority: .low, timestamp: Date(timeIntervalSince1970: 5))
        for event in [full, bare] {
            var object: JSONObject = [
                "id": .string(event.id.rawValue), "type": .string(event.type), "payload": .object(event.payload),
                "priority": .int(Int64(event.priority.rawValue)), "timestamp": .string(Timestamp.format(event.timestamp)),
            ]
            if let source = event.source { object["source"] = .string(source) }
            if let correlation = event.correlationID { object["correlation_id"] = .string(correlation) }
            if let causation = event.causationID { object["causation_id"] = .string(causation) }
            #expect(String(decoding: EventWireFormat.encode(event), as: UTF8.self) == JSON.serialize(.object(object)))
        }
        #expect(
            String(decoding: EventWireFormat.encode(bare), as: UTF8.self).hasSuffix(
                #""priority":4,"timestamp":"1970-01-01T00:00:05.000Z","type":"t.x"}"#))
    }

    @Test("strings are escaped: quotes, backslashes and control characters")
    func stringEscapes() {
        #expect(JSON.serialize(.string("plain")) == #""plain""#)
        #expect(JSON.serialize(.string("a\"b\\c\nd\u{1}e")) == #""a\"b\\c\nd\u0001e""#)
        #expect(JSON.serialize(.string("\u{1f}Grüße")) == #""\u001fGrüße""#)
    }

    @Test("encode → decode keeps every field")
    func roundTrip() throws {
        let event = Event(
            id: .generate(), type: "alert.blackscreen", payload: Self.richPayload, priority: .high,
            timestamp: Date(timeIntervalSince1970: 1_700_000_000.123), source: "cli",
            correlationID: "chain-1", causationID: "evt_0")
        let decoded = try EventWireFormat.decode(body: EventWireFormat.encode(event), envelope: Envelope(routingKey: "alert.blackscreen"))
        #expect(decoded.id == event.id)
        #expect(decoded.type == event.type)
        #expect(decoded.payload == event.payload)
        #expect(decoded.payload["count"] == .int(42))
        #expect(decoded.payload["ratio"] == .double(0.75))
        #expect(decoded.payload["big"] == .int(9_007_199_254_740_993))
        #expect(decoded.priority == .high)
        #expect(abs(decoded.timestamp.timeIntervalSince(event.timestamp)) < 0.001)
        #expect(Timestamp.format(decoded.timestamp) == Timestamp.format(event.timestamp))
        #expect(decoded.source == "cli")
        #expect(decoded.correlationID == "chain-1")
        #expect(decoded.causationID == "evt_0")
    }

    @Test("encode → decode keeps each priority", arguments: Priority.allCases)
    func roundTripPriority(priority: Priority) throws {
        let event = Event(type: "t.x", priority: priority)
        let decoded = try EventWireFormat.decode(body: EventWireFormat.encode(event), envelope: Envelope(routingKey: "t.x"))
        #expect(decoded.priority == priority)
    }

    @Test("encode → decode keeps the timestamp to the millisecond, for any millisecond")
    func roundTripTimestamp() throws {
        for millis in stride(from: 0, to: 1000, by: 1) {
            let event = Event(type: "t.x", timestamp: Date(timeIntervalSince1970: 1_700_000_000 + Double(millis) / 1000))
            let decoded = try EventWireFormat.decode(body: EventWireFormat.encode(event), envelope: Envelope(routingKey: "t.x"))
            #expect(Timestamp.format(decoded.timestamp) == Timestamp.format(event.timestamp))
        }
    }

    @Test("encoded JSON has id, type, payload, priority (1…4) and timestamp")
    func encodedKeys() throws {
        let event = Event(
            type: "alert.blackscreen", payload: ["device_id": "tv-1"], priority: .critical,
            timestamp: Date(timeIntervalSince1970: 1_700_000_000.5))
        let object = try jsonObject(EventWireFormat.encode(event))
        #expect(Set(object.keys) == ["id", "type", "payload", "priority", "timestamp"])
        #expect(object["id"] == .string(event.id.rawValue))
        #expect(object["type"] == .string("alert.blackscreen"))
        #expect(object["payload"] == .object(["device_id": "tv-1"]))
        #expect(object["priority"] == .int(1))
        #expect(object["timestamp"] == .string("2023-11-14T22:13:20.500Z"))
    }

    @Test("encoded priority is the level, an integer 1…4", arguments: Priority.allCases)
    func encodedPriority(priority: Priority) throws {
        let object = try jsonObject(EventWireFormat.encode(Event(type: "t.x", priority: priority)))
        guard case .int(let level)? = object["priority"] else {
            Issue.record("priority is \(String(describing: object["priority"])), not an integer")
            return
        }
        #expect((1...4).contains(level))
        #expect(Int(level) == priority.rawValue)
    }

    @Test("encoded JSON carries source, correlation_id and causation_id when set")
    func encodedOptionalKeys() throws {
        let event = Event(type: "t.x", source: "cli", correlationID: "c-1", causationID: "e-0")
        let object = try jsonObject(EventWireFormat.encode(event))
        #expect(object["source"] == .string("cli"))
        #expect(object["correlation_id"] == .string("c-1"))
        #expect(object["causation_id"] == .string("e-0"))
    }

    @Test("a seed-style envelope decodes, priority 1 as CRITICAL, a zone-less timestamp as UTC")
    func seedEnvelope() throws {
        let body = #"{"id":"evt_1","type":"t.x","payload":{},"priority":1,"timestamp":"2024-01-01T00:00:00"}"#
        let event = try EventWireFormat.decode(body: bytes(body), envelope: Envelope(routingKey: "t.x", amqpPriority: 4))
        #expect(event.id.rawValue == "evt_1")
        #expect(event.type == "t.x")
        #expect(event.payload.isEmpty)
        #expect(event.priority == .critical)
        #expect(event.timestamp.timeIntervalSince1970 == 1_704_067_200)  // 2024-01-01T00:00:00Z
        #expect(event.source == nil)
        #expect(event.causationID == nil)
    }

    @Test("the type comes from the body, not the routing key")
    func envelopeTypeFromBody() throws {
        let body = #"{"id":"e","type":"t.x","payload":{},"priority":3,"timestamp":"2024-01-01T00:00:00Z"}"#
        let event = try EventWireFormat.decode(body: bytes(body), envelope: Envelope(routingKey: "other.key"))
        #expect(event.type == "t.x")
        #expect(event.priority == .normal)
    }

    @Test("an envelope priority may be a name")
    func envelopePriorityName() throws {
        let body = #"{"type":"t.x","payload":{},"priority":"high"}"#
        #expect(try EventWireFormat.decode(body: bytes(body), envelope: Envelope(routingKey: "t.x")).priority == .high)
    }

    @Test(
        "an envelope without priority takes the AMQP priority",
        arguments: [
            (UInt8?.none, Priority.low), (UInt8?(0), .low), (UInt8?(1), .low), (UInt8?(2), .normal), (UInt8?(3), .high), (UInt8?(4), .critical),
        ])
    func envelopeWithoutPriority(amqp: UInt8?, expected: Priority) throws {
        let body = #"{"id":"e","type":"t.x","payload":{"a":1}}"#
        let event = try EventWireFormat.decode(body: bytes(body), envelope: Envelope(routingKey: "t.x", amqpPriority: amqp))
        #expect(event.priority == expected)
        #expect(event.payload == ["a": 1])
    }

    @Test("an envelope without id takes message_id")
    func envelopeWithoutID() throws {
        let body = #"{"type":"t.x","payload":{}}"#
        let event = try EventWireFormat.decode(body: bytes(body), envelope: Envelope(routingKey: "t.x", messageID: "m-9"))
        #expect(event.id.rawValue == "m-9")
    }

    @Test("a plain body is the payload of an event named by the routing key")
    func plainPublish() throws {
        let body = #"{"device_id":"tv-1"}"#
        let event = try EventWireFormat.decode(
            body: bytes(body),
            envelope: Envelope(
                routingKey: "alert.blackscreen", messageID: "m-1", amqpPriority: 4,
                amqpTimestamp: 1_700_000_000, correlationID: "c-7"))
        #expect(event.type == "alert.blackscreen")
        #expect(event.id.rawValue == "m-1")
        #expect(event.priority == .critical)
        #expect(event.payload == ["device_id": "tv-1"])
        #expect(event.timestamp.timeIntervalSince1970 == 1_700_000_000)
        #expect(event.correlationID == "c-7")
        #expect(event.source == nil)
        #expect(event.causationID == nil)
    }

    @Test("a plain body without routing key takes the type property")
    func plainTypeProperty() throws {
        let event = try EventWireFormat.decode(body: bytes(#"{"x":1}"#), envelope: Envelope(routingKey: "", typeProperty: "alert.x"))
        #expect(event.type == "alert.x")
        #expect(event.priority == .low)
    }

    @Test("a plain body with only a type or only a payload is still plain")
    func halfEnvelopeIsPlain() throws {
        let body = #"{"type":"t.x","value":1}"#
        let event = try EventWireFormat.decode(body: bytes(body), envelope: Envelope(routingKey: "r.k"))
        #expect(event.type == "r.k")
        #expect(event.payload == ["type": "t.x", "value": 1])
    }

    @Test("without message_id, two consumers derive the same id; another body gets another id")
    func plainDerivedID() throws {
        let envelope = Envelope(routingKey: "alert.blackscreen", amqpPriority: 2)
        let first = try EventWireFormat.decode(body: bytes(#"{"device_id":"tv-1"}"#), envelope: envelope)
        let second = try EventWireFormat.decode(body: bytes(#"{"device_id":"tv-1"}"#), envelope: envelope)
        let other = try EventWireFormat.decode(body: bytes(#"{"device_id":"tv-2"}"#), envelope: envelope)
        #expect(first.id == second.id)
        #expect(first.id != other.id)
        #expect(first.id.uuid != nil)
        let otherKey = try EventWireFormat.decode(
            body: bytes(#"{"device_id":"tv-1"}"#),
            envelope: Envelope(routingKey: "alert.other", amqpPriority: 2))
        #expect(first.id != otherKey.id)
    }

    @Test("a body that is not JSON is rejected as not-json")
    func notJSON() throws {
        let error = try #require(decodingError(bytes("not json"), Envelope(routingKey: "t.x")))
        #expect(error.reason == .notJSON)
        #expect(error.message.contains("JSON"))
        #expect(error.reason.description == "not-json")
    }

    @Test("a JSON body that is not an object is rejected as not-an-object", arguments: ["[1,2]", "42", "\"text\"", "null"])
    func notAnObject(body: String) throws {
        let error = try #require(decodingError(bytes(body), Envelope(routingKey: "t.x")))
        #expect(error.reason == .notAnObject)
        #expect(error.message.contains("object"))
    }

    @Test("an envelope priority outside 1…4 is rejected, naming the value")
    func unknownEnvelopePriority() throws {
        let body = #"{"id":"e","type":"t.x","payload":{},"priority":7,"timestamp":"2024-01-01T00:00:00Z"}"#
        let error = try #require(decodingError(bytes(body), Envelope(routingKey: "t.x")))
        #expect(error.reason == .unknownPriority)
        #expect(error.message.contains("7"))
        #expect(error.message.contains("priority"))
    }

    @Test("an unknown priority name or kind is rejected", arguments: [#""urgent""#, "0", "true", "2.5"])
    func unknownPriorityValue(priority: String) throws {
        let body = #"{"type":"t.x","payload":{},"priority":"# + priority + "}"
        let error = try #require(decodingError(bytes(body), Envelope(routingKey: "t.x")))
        #expect(error.reason == .unknownPriority)
    }

    @Test("a plain body with AMQP priority 9 is rejected")
    func unknownAMQPPriority() throws {
        let error = try #require(decodingError(bytes(#"{"device_id":"tv-1"}"#), Envelope(routingKey: "alert.x", amqpPriority: 9)))
        #expect(error.reason == .unknownPriority)
        #expect(error.message.contains("9"))
        #expect(error.message.lowercased().contains("priority"))
    }

    @Test("a body over maxBodySize is rejected as too-large")
    func tooLarge() throws {
        let body = bytes(#"{"device_id":"tv-1"}"#)
        let error = try #require(decodingError(body, Envelope(routingKey: "alert.x"), maxBodySize: 10))
        #expect(error.reason == .tooLarge)
        #expect(error.message.contains("\(body.count)"))
        #expect(error.message.contains("10"))
        // Exactly at the limit is fine.
        #expect(decodingError(body, Envelope(routingKey: "alert.x"), maxBodySize: body.count) == nil)
    }

    @Test("a plain body with no routing key and no type property is rejected as invalid-type")
    func plainWithoutType() throws {
        let error = try #require(decodingError(bytes(#"{"x":1}"#), Envelope(routingKey: "")))
        #expect(error.reason == .invalidType)
        #expect(error.message.contains("type"))
    }

    @Test("a plain body with an invalid routing key is rejected as invalid-type")
    func plainWithBadRoutingKey() throws {
        let error = try #require(decodingError(bytes(#"{"x":1}"#), Envelope(routingKey: "a..b")))
        #expect(error.reason == .invalidType)
    }

    @Test("an envelope with an invalid type is rejected as invalid-type")
    func envelopeWithBadType() throws {
        let body = #"{"id":"e","type":"a..b","payload":{},"priority":1,"timestamp":"2024-01-01T00:00:00Z"}"#
        let error = try #require(decodingError(bytes(body), Envelope(routingKey: "t.x")))
        #expect(error.reason == .invalidType)
        #expect(error.message.contains("a..b"))
    }

    @Test("an envelope with a bad timestamp is rejected as invalid-field")
    func envelopeWithBadTimestamp() throws {
        let body = #"{"id":"e","type":"t.x","payload":{},"priority":1,"timestamp":"garbage"}"#
        let error = try #require(decodingError(bytes(body), Envelope(routingKey: "t.x")))
        #expect(error.reason == .invalidField)
        #expect(error.message.contains("garbage"))
        #expect(error.message.contains("timestamp"))
    }

    @Test(
        "envelope fields of the wrong kind are rejected as invalid-field",
        arguments: [
            #"{"id":"","type":"t.x","payload":{}}"#,
            #"{"id":[1],"type":"t.x","payload":{}}"#,
            #"{"type":"t.x","payload":{},"timestamp":true}"#,
            #"{"type":"t.x","payload":{},"source":5}"#,
            #"{"type":"t.x","payload":{},"correlation_id":{}}"#,
        ])
    func envelopeWithBadField(body: String) throws {
        let error = try #require(decodingError(bytes(body), Envelope(routingKey: "t.x")))
        #expect(error.reason == .invalidField)
    }

    @Test("any message_id of 1…255 bytes is the event id (order-42, numbers); NUL or over 255 bytes is refused, not derived")
    func foreignMessageIDs() throws {
        let plain = try EventWireFormat.decode(body: bytes(#"{"n": 1}"#), envelope: Envelope(routingKey: "order.created", messageID: "order-42"))
        #expect(plain.id.rawValue == "order-42")
        let numbered = try EventWireFormat.decode(
            body: bytes(#"{"id": 42, "type": "order.created", "payload": {}}"#),
            envelope: Envelope(routingKey: "order.created"))
        #expect(numbered.id.rawValue == "42")
        let long = String(repeating: "x", count: 255)
        #expect(try EventWireFormat.decode(body: bytes("{}"), envelope: Envelope(routingKey: "a.b", messageID: long)).id.rawValue == long)
        #expect(decodingError(bytes("{}"), Envelope(routingKey: "a.b", messageID: long + "x"))?.reason == .invalidField)
        #expect(decodingError(bytes("{}"), Envelope(routingKey: "a.b", messageID: "a\u{0}b"))?.reason == .invalidField)
        #expect(EventID("a\u{0}b") == nil)
    }

    @Test("a body that is not UTF-8 is not-utf8; \\u0000 anywhere is invalid-field; an escaped backslash before u0000 is fine")
    func unstorableText() {
        let invalid = bytes(#"{"name": ""#) + [0xC3, 0x28] + bytes(#""}"#)
        #expect(decodingError(invalid, Envelope(routingKey: "a.b"))?.reason == .notUTF8)
        #expect(decodingError(bytes(#"{"a": {"b": ["x\u0000"]}}"#), Envelope(routingKey: "a.b"))?.reason == .invalidField)
        #expect(
            decodingError(bytes(#"{"id": "i", "type": "a.b", "payload": {}, "source": "s\u0000"}"#), Envelope(routingKey: "a.b"))?.reason
                == .invalidField)
        #expect(decodingError(bytes(#"{"a": "\\u0000"}"#), Envelope(routingKey: "a.b")) == nil, "a backslash, then the text u0000")
        #expect(decodingError(bytes(#"{"a": "\\\u0000"}"#), Envelope(routingKey: "a.b"))?.reason == .invalidField)
        #expect(decodingError(bytes(#"{"a": "Grüße ☕️"}"#), Envelope(routingKey: "a.b")) == nil)
        #expect(
            decodingError(
                bytes(#"{"id": "i", "type": "a.b", "payload": {}, "source": "\#(String(repeating: "s", count: 256))"}"#),
                Envelope(routingKey: "a.b"))?.reason == .invalidField)
    }
}
