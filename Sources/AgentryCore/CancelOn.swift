import Foundation

/// An event that makes an agent's work for something moot (YAML `cancel_on`):
///
/// ```yaml
/// cancel_on:
///   - type: alert.resolved          # an event type or topic pattern, as a trigger's type
///     match: payload.device_id      # or a list of paths, all of which must be equal
/// ```
///
/// An event of `type` cancels the agent's runs (queued, waiting and running) whose event has, at every path of
/// `match`, the value the cancelling event has there. Paths are written as ``EventTemplate`` references without the
/// braces: `payload.<dotted path>`, or `type`, `priority`, `source`, `correlation_id` (`id` and `timestamp` differ for
/// every event, so they are refused).
public struct CancelOn: Sendable, Hashable {
    /// The cancelling events' type or topic pattern (`alert.resolved`, `alert.*`).
    public var type: String
    /// The paths whose values must be equal; at least one. YAML takes one path as a string or several as a list.
    public var match: [String]

    public init(type: String, match: [String]) {
        self.type = type
        self.match = match
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case type, match
    }

    /// References a match path may not use: they differ for every event, so nothing would ever match.
    public static let unmatchableReferences = ["id", "timestamp"]

    /// Whether an event of `eventType` cancels by this entry.
    public func cancels(eventType: String) -> Bool {
        EventType.matches(eventType, pattern: type)
    }

    /// The values the entry compares, as the cancelling event has them (path → value); nil when the event lacks one
    /// of them (or it is null): such an event cancels nothing by this entry.
    public func values(in event: Event) -> JSONObject? {
        var values: JSONObject = [:]
        for path in match {
            guard let value = EventTemplate.value(of: path, in: event), value != .null else { return nil }
            values[path] = value
        }
        return values
    }

    /// `payload.device_id = tv-1, source = lab`: the values as a person reads them in a run's message.
    public static func describe(_ values: JSONObject) -> String {
        values.keys.sorted().map { key in
            let value = values[key] ?? .null
            if case .string(let text) = value { return "\(key) = \(text)" }
            return "\(key) = \(JSON.serialize(value))"
        }.joined(separator: ", ")
    }

    /// Why `path` cannot be a match path, or nil when it can.
    public static func pathProblem(_ path: String) -> String? {
        if path.contains("{{") || path.contains("}}") {
            return "match path '\(path)' is written with braces; write the path alone, e.g. payload.device_id"
        }
        if unmatchableReferences.contains(path) {
            return
                "match path '\(path)' differs for every event, so it would never match; use payload.<path>, type, priority, source or correlation_id"
        }
        if EventTemplate.problem(withReference: path) != nil {
            if path == "payload" { return "match path 'payload' names the whole payload; name a field: payload.<path>" }
            let allowed = EventTemplate.roots.filter { !unmatchableReferences.contains($0) }
            return "match path '\(path)' does not name a part of an event; use payload.<path> or one of \(allowed.joined(separator: ", "))"
        }
        return nil
    }

    /// A likely meant path for a wrong one (`device_id` → `payload.device_id`).
    static func pathSuggestion(_ path: String) -> String? {
        let trimmed = path.replacingOccurrences(of: "{{", with: "").replacingOccurrences(of: "}}", with: "")
            .trimmingCharacters(in: .whitespaces)
        if trimmed != path, pathProblem(trimmed) == nil { return "did you mean '\(trimmed)'?" }
        guard let suggestion = EventTemplate.suggestion(for: trimmed) else { return nil }
        // The template's suggestion, without its braces.
        return suggestion.replacingOccurrences(of: "{{", with: "").replacingOccurrences(of: "}}", with: "")
    }
}

extension AgentDefinition {
    /// The `cancel_on` entries an event of `eventType` cancels by.
    public func cancelOnEntries(for eventType: String) -> [CancelOn] {
        cancelOn.filter { $0.cancels(eventType: eventType) }
    }

    /// Every path a `cancel_on` entry compares, each once, in order of first appearance.
    public var cancelOnPaths: [String] {
        var seen = Set<String>()
        return cancelOn.flatMap(\.match).filter { seen.insert($0).inserted }
    }

    /// The routing patterns of the cancelling events, each once.
    public var cancelOnPatterns: [String] {
        var seen = Set<String>()
        return cancelOn.map(\.type).filter { seen.insert($0).inserted }
    }

    /// What a run's event has at the paths `cancel_on` compares (the paths it lacks, or that are null, left out), to be
    /// kept with the run; nil when the agent declares no `cancel_on`.
    public func cancelValues(of event: Event) -> JSONObject? {
        guard !cancelOn.isEmpty else { return nil }
        var values: JSONObject = [:]
        for path in cancelOnPaths {
            if let value = EventTemplate.value(of: path, in: event), value != .null { values[path] = value }
        }
        return values
    }
}
