import Foundation

extension EventTemplate {
    /// The value a reference (`payload.device_id`, `id`, …) has in an event, or nil when the event has no such part.
    /// `payload` is the whole payload (only the `llm` handler's prompts may name it, see ``scan(_:wholePayload:)``).
    public static func value(of reference: String, in event: Event) -> JSONValue? {
        switch reference {
        case "id": return .string(event.id.rawValue)
        case "type": return .string(event.type)
        case "priority": return .string(event.priority.name)
        case "timestamp": return .string(Timestamp.format(event.timestamp))
        case "source": return event.source.map(JSONValue.string)
        case "correlation_id": return .string(event.correlationID ?? event.id.rawValue)
        case "payload": return .object(event.payload)
        default:
            guard reference.hasPrefix("payload.") else { return nil }
            return JSONValue.object(event.payload)[path: String(reference.dropFirst("payload.".count))]
        }
    }

    /// Fills the templates of a string from an event. A string that is exactly one template takes the referenced
    /// value with its JSON type (a number stays a number); elsewhere values are written as text, strings without
    /// quotes. A reference the event does not have becomes null (whole string) or empty text (inside a string).
    public static func render(_ text: String, with event: Event) -> JSONValue {
        let (references, _) = scan(text)
        guard !references.isEmpty else { return .string(text) }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if references.count == 1, trimmed.hasPrefix("{{"), trimmed.hasSuffix("}}"),
            trimmed.dropFirst(2).dropLast(2).firstRange(of: "{{") == nil
        {
            return value(of: references[0].reference, in: event) ?? .null
        }
        return .string(renderText(text, with: event))
    }

    /// Fills the templates of a string from an event, always as text (for command lines, headers, resources).
    public static func renderText(_ text: String, with event: Event) -> String {
        renderText(text, with: event) { $0 }
    }

    /// Fills the templates of a URL from an event: each value is percent-encoded (everything but RFC 3986's
    /// unreserved characters `A–Z a–z 0–9 - . _ ~`), so that a value stays one path segment or query value and
    /// cannot add `/`, `?`, `#`, `@` or `..` parts to the URL.
    public static func renderURL(_ text: String, with event: Event) -> String {
        renderText(text, with: event) { $0.addingPercentEncoding(withAllowedCharacters: urlUnreserved) ?? "" }
    }

    /// Fills the templates of a header value from an event; line breaks in values become spaces (a value cannot
    /// add header lines).
    public static func renderHeader(_ text: String, with event: Event) -> String {
        renderText(text, with: event) { String($0.map { $0 == "\r" || $0 == "\n" || $0 == "\r\n" ? " " : $0 }) }
    }

    private static let urlUnreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    private static func renderText(_ text: String, with event: Event, escape: (String) -> String) -> String {
        var result = ""
        var rest = Substring(text)
        while let open = rest.firstRange(of: "{{"), let close = rest[open.upperBound...].firstRange(of: "}}") {
            result += rest[..<open.lowerBound]
            let reference = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            switch value(of: reference, in: event) {
            case .string(let s)?: result += escape(s)
            case nil, .null?: break
            case let other?: result += escape(JSON.serialize(other))
            }
            rest = rest[close.upperBound...]
        }
        return result + rest
    }

    /// Fills every string inside a JSON value (keys stay as written).
    public static func render(_ value: JSONValue, with event: Event) -> JSONValue {
        switch value {
        case .string(let s): return render(s, with: event)
        case .array(let items): return .array(items.map { render($0, with: event) })
        case .object(let object): return .object(object.mapValues { render($0, with: event) })
        default: return value
        }
    }
}
