import Foundation
import Testing

@testable import AgentryCore

@Suite("EventTemplate rendering")
struct EventTemplateRenderTests {
    let event = Event(
        id: EventID("01a215c6-e5d4-7034-a306-876183fd8abd")!, type: "alert.blackscreen",
        payload: ["device_id": "tv-1", "count": 3, "location": ["name": "lab-1"], "tags": ["a", "b"], "ok": true],
        priority: .critical, timestamp: Date(timeIntervalSince1970: 1_764_000_000), source: "cli")

    @Test("a string that is one template keeps the value's JSON type")
    func wholeValue() {
        #expect(EventTemplate.render("{{payload.count}}", with: event) == .int(3))
        #expect(EventTemplate.render("{{ payload.ok }}", with: event) == .bool(true))
        #expect(EventTemplate.render("{{payload.location}}", with: event) == .object(["name": "lab-1"]))
        #expect(EventTemplate.render("{{payload.tags.1}}", with: event) == .string("b"))
        #expect(EventTemplate.render("{{payload.missing}}", with: event) == .null)
    }

    @Test("templates inside text are written as text: strings bare, other values as JSON, missing ones empty")
    func insideText() {
        #expect(
            EventTemplate.render("device {{payload.device_id}} in {{payload.location.name}}", with: event)
                == .string("device tv-1 in lab-1"))
        #expect(
            EventTemplate.renderText("n={{payload.count}} tags={{payload.tags}} x={{payload.missing}}.", with: event)
                == "n=3 tags=[\"a\",\"b\"] x=.")
        #expect(EventTemplate.renderText("no templates here", with: event) == "no templates here")
    }

    @Test("the event's own parts: id, type, priority, timestamp, source, correlation_id")
    func roots() {
        #expect(EventTemplate.renderText("{{id}}", with: event) == "01a215c6-e5d4-7034-a306-876183fd8abd")
        #expect(EventTemplate.renderText("{{type}}/{{priority}}/{{source}}", with: event) == "alert.blackscreen/CRITICAL/cli")
        #expect(EventTemplate.renderText("{{timestamp}}", with: event) == "2025-11-24T16:00:00.000Z")
        // Without a correlation id of its own, an event starts its chain: the correlation is its id.
        #expect(EventTemplate.renderText("{{correlation_id}}", with: event) == event.id.rawValue)
    }

    @Test("render fills every string of a JSON value, keys untouched")
    func jsonValue() {
        let template: JSONValue = [
            "device": "{{payload.device_id}}", "{{payload.device_id}}": "key stays", "n": 1,
            "list": ["{{payload.count}}", "x"],
        ]
        #expect(
            EventTemplate.render(template, with: event)
                == ["device": "tv-1", "{{payload.device_id}}": "key stays", "n": 1, "list": [3, "x"]])
    }
}
