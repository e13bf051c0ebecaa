public import Foundation

/// A webhook request as the mapping sees it, after its signature was checked: its headers and its JSON body.
public struct WebhookContent: Sendable {
    /// Header values by lower-case name (the first value of each).
    public var headers: [String: String]
    public var body: JSONValue

    public init(headers: [String: String], body: JSONValue) {
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
        self.body = body
    }

    /// The value a template reference (`header.X-GitHub-Event`, `payload.object_kind`) has, or nil.
    func value(of reference: String) -> JSONValue? {
        if reference.hasPrefix("header.") { return headers[String(reference.dropFirst("header.".count)).lowercased()].map(JSONValue.string) }
        if reference.hasPrefix("payload.") { return body[path: String(reference.dropFirst("payload.".count))] }
        return nil
    }
}

/// Why a request cannot become an event (answered 422, or 400 for a body that is no object).
public struct WebhookMappingProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    /// The body is not something the mapping can take (not an object): 400 rather than 422.
    public var badBody: Bool
    public var description: String { message }
}

extension WebhookSource {
    /// The references a template may name: `header.<Name>` and `payload.<path>`.
    public static let templateRoots = ["header", "payload"]

    /// The problems with the templates of a string (message and offset in Unicode scalars of its `{{`).
    public static func templateProblems(_ text: String) -> [(message: String, offset: Int)] {
        var problems: [(message: String, offset: Int)] = []
        for (reference, offset, closed) in scanTemplates(text) {
            guard closed else {
                problems.append(("template at offset \(offset) has no closing '}}'", offset))
                continue
            }
            if let problem = referenceProblem(reference) { problems.append((problem, offset)) }
        }
        return problems
    }

    static func referenceProblem(_ reference: String) -> String? {
        let parts = reference.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, templateRoots.contains(String(parts[0])), !parts[1].isEmpty,
            !parts[1].split(separator: ".", omittingEmptySubsequences: false).contains(where: { $0.isEmpty || $0.contains(where: \.isWhitespace) })
        else {
            let root = String(parts[0]), rest = parts.count == 2 ? "." + parts[1] : ""
            let hint = Suggest.closest(to: root, among: templateRoots).map { "; did you mean '{{\($0)\(rest)}}'?" } ?? ""
            return "template '{{\(reference)}}' names nothing a webhook request has; use {{header.<Name>}} or {{payload.<path>}}\(hint)"
        }
        return nil
    }

    /// The templates of a string: reference (trimmed), offset of `{{`, and whether it was closed.
    static func scanTemplates(_ text: String) -> [(reference: String, offset: Int, closed: Bool)] {
        let scalars = Array(text.unicodeScalars)
        var found: [(reference: String, offset: Int, closed: Bool)] = []
        var i = 0
        while i + 1 < scalars.count {
            guard scalars[i] == "{", scalars[i + 1] == "{" else {
                i += 1
                continue
            }
            var j = i + 2
            while j + 1 < scalars.count, !(scalars[j] == "}" && scalars[j + 1] == "}") { j += 1 }
            guard j + 1 < scalars.count else {
                found.append(("", i, false))
                break
            }
            let inner = String(String.UnicodeScalarView(scalars[(i + 2)..<j])).trimmingCharacters(in: .whitespaces)
            found.append((inner, i, true))
            i = j + 2
        }
        return found
    }

    /// Fills a string's templates: a string that is exactly one template takes the value with its JSON type (null when
    /// the request has no such part); elsewhere values are written as text.
    static func render(_ text: String, _ content: WebhookContent) -> JSONValue {
        let templates = scanTemplates(text)
        guard !templates.isEmpty else { return .string(text) }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if templates.count == 1, templates[0].closed, trimmed.hasPrefix("{{"), trimmed.hasSuffix("}}") {
            return content.value(of: templates[0].reference) ?? .null
        }
        var result = ""
        var rest = Substring(text)
        while let open = rest.firstRange(of: "{{"), let close = rest[open.upperBound...].firstRange(of: "}}") {
            result += rest[..<open.lowerBound]
            switch content.value(of: rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)) {
            case .string(let s)?: result += s
            case nil, .null?: break
            case let other?: result += JSON.serialize(other)
            }
            rest = rest[close.upperBound...]
        }
        return .string(result + rest)
    }

    static func render(_ value: JSONValue, _ content: WebhookContent) -> JSONValue {
        switch value {
        case .string(let s): return render(s, content)
        case .array(let items): return .array(items.map { render($0, content) })
        case .object(let object): return .object(object.mapValues { render($0, content) })
        default: return value
        }
    }

    /// The event a verified request becomes: its type and payload by this source's mapping, its id derived from the
    /// source and the delivery id (so every copy of one delivery is one event), its `source` `webhook:<name>`.
    public func event(for content: WebhookContent, deliveryID: String, timestamp: Date = Date()) -> Result<Event, WebhookMappingProblem> {
        let rendered = Self.render(type, content)
        guard case .string(let eventType) = rendered else {
            return .failure(.init(message: "the event type '\(type)' renders to \(rendered.kindName), not text", badBody: false))
        }
        if let problem = EventType.problem(with: eventType) {
            return .failure(.init(message: "the event type rendered from '\(type)' is not valid: \(problem)", badBody: false))
        }
        let eventPayload: JSONObject
        if let payload {
            eventPayload = Self.render(.object(payload), content).objectValue ?? [:]
        } else {
            guard case .object(let object) = content.body else {
                return .failure(
                    .init(
                        message: "the body is \(content.body.kindName), not a JSON object; a source without a payload mapping takes objects only",
                        badBody: true))
            }
            eventPayload = object
        }
        return .success(
            Event(
                id: Self.eventID(source: name, deliveryID: deliveryID), type: eventType, payload: eventPayload, priority: priority,
                timestamp: timestamp, source: eventSource))
    }

    /// The id of the event a delivery becomes: the same for every copy of one delivery of one source.
    public static func eventID(source: String, deliveryID: String) -> EventID {
        EventID.derived(from: [Array("webhook".utf8), Array(source.utf8), Array(deliveryID.utf8)])
    }
}
