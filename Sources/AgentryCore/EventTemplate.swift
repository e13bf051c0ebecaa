import Foundation

/// Templates in agent definitions (`resources`, the `emit` handler's payload): `{{ <reference> }}` inside a
/// string, filled from the triggering event when a task starts. A reference is one of ``roots`` (`id`, `type`,
/// `priority`, `timestamp`, `source`, `correlation_id`) or `payload.<dotted path>` (`payload.device.id`,
/// `payload.items.0`).
public enum EventTemplate {
    /// The parts of an event a template may name (besides `payload.<path>`).
    public static let roots = ["id", "type", "priority", "timestamp", "source", "correlation_id"]

    /// A template found in a string: its reference (trimmed) and where `{{` starts (offset in Unicode scalars).
    public struct Reference: Sendable, Hashable {
        public var reference: String
        public var offset: Int
    }

    /// A problem with the templates of a string, and where it starts (offset in Unicode scalars).
    public struct Problem: Sendable, Hashable {
        public var message: String
        public var offset: Int
        public var suggestion: String?
    }

    /// The templates in `text`, and the problems with them. With `wholePayload`, `{{payload}}` (the whole payload, as
    /// JSON text) is allowed too: the `llm` handler's prompts take it.
    public static func scan(_ text: String, wholePayload: Bool = false) -> (references: [Reference], problems: [Problem]) {
        let scalars = Array(text.unicodeScalars)
        var references: [Reference] = []
        var problems: [Problem] = []
        var i = 0
        while i < scalars.count {
            guard scalars[i] == "{", i + 1 < scalars.count, scalars[i + 1] == "{" else {
                i += 1
                continue
            }
            let start = i
            var j = i + 2
            var close: Int?
            while j + 1 < scalars.count {
                if scalars[j] == "}" && scalars[j + 1] == "}" {
                    close = j
                    break
                }
                j += 1
            }
            guard let close else {
                problems.append(
                    Problem(
                        message: "template at '\(String(String.UnicodeScalarView(scalars[start...])))' has no closing '}}'",
                        offset: start))
                break
            }
            let inner = String(String.UnicodeScalarView(scalars[(start + 2)..<close]))
            let reference = inner.trimmingCharacters(in: .whitespaces)
            let whole = "{{" + inner + "}}"
            if let message = problem(withReference: reference, template: whole, wholePayload: wholePayload) {
                problems.append(Problem(message: message, offset: start, suggestion: suggestion(for: reference)))
            } else {
                references.append(Reference(reference: reference, offset: start))
            }
            i = close + 2
        }
        return (references, problems)
    }

    /// Why `reference` (the inside of `{{…}}`, trimmed) does not name a part of an event, or nil when it does.
    /// `payload` alone names the whole payload, which only `wholePayload` allows.
    public static func problem(withReference reference: String, template: String? = nil, wholePayload: Bool = false) -> String? {
        let shown = template ?? "{{\(reference)}}"
        let allowed = "use one of \(roots.joined(separator: ", ")) or payload.<path>"
        if reference.isEmpty { return "template '\(shown)' is empty; \(allowed)" }
        if roots.contains(reference) { return nil }
        let parts = reference.split(separator: ".", omittingEmptySubsequences: false)
        if parts[0] == "payload" {
            if parts.count == 1 {
                if wholePayload { return nil }
                return "template '\(shown)' names the whole payload; name a field: payload.<path>"
            }
            if parts.dropFirst().contains(where: { $0.isEmpty || $0.contains(where: \.isWhitespace) }) {
                return "template '\(shown)' has an empty or blank part in its payload path"
            }
            return nil
        }
        return "template '\(shown)' refers to '\(parts[0])', which is not part of an event; \(allowed)"
    }

    static func suggestion(for reference: String) -> String? {
        let parts = reference.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard let root = parts.first, !root.isEmpty, root != "payload" else { return nil }
        if parts.count == 1, let known = Suggest.closest(to: root, among: roots) { return "did you mean '{{\(known)}}'?" }
        if Suggest.closest(to: root, among: ["payload"]) != nil, parts.count > 1 {
            return "did you mean '{{\((["payload"] + parts.dropFirst()).joined(separator: "."))}}'?"
        }
        if parts.count > 1, ["event", "data", "body", "message"].contains(root) {
            return "did you mean '{{\((["payload"] + parts.dropFirst()).joined(separator: "."))}}'?"
        }
        return "did you mean '{{payload.\(reference)}}'?"
    }
}
