/// A trigger's payload `filters`, evaluated against an event (YAML `triggers[].filters`).
///
/// Every key is a dotted path into the event's **payload** (`severity`, `device.id`, `tags.0`); a leading
/// `payload.` is stripped, so `payload.device.id` and `device.id` are the same path. Every key must match (AND);
/// no filters, or an empty object, match every event. A key's value matches as follows:
///
/// | filter value | matches when the payload value at the path … |
/// |---|---|
/// | a scalar: `major`, `3`, `true`, `null` | is present and equals it |
/// | a list: `[major, critical]` | is present and equals one of the listed values (any-of) |
/// | `{exists: true}` / `{exists: false}` | is present / is absent (an explicit `null` counts as present) |
/// | `{in: [major, critical]}` | same as the plain list |
/// | `{not: V}` | does not meet `V` (not equal, or none of a list); an absent value meets `{not: V}` for a scalar or list `V` |
/// | any other object: `{id: 7, kind: tv}` | is an object structurally equal to it |
///
/// Equality is structural JSON equality where numbers compare numerically (`1` equals `1.0`), and values of different
/// kinds never equal each other (`"1"` is not `1`, `true` is not `1`). An object holding several operator keys needs
/// all of them (`{exists: true, not: null}`). Values inside lists (plain or `in`) are literal values, never operators,
/// so `{in: [{exists: true}]}` matches a payload object `{"exists": true}`. A list is always any-of: to match a
/// payload array as a whole write `{in: [[a, b]]}`; to test one element use its index (`tags.0`).
///
/// ```yaml
/// filters:
///   severity: [major, critical]        # payload.severity is 'major' or 'critical'
///   device.id: 42                      # and payload.device.id is 42 (or 42.0)
///   payload.site: {exists: true}       # and payload.site is present (even if null)
///   tags.0: {not: [test, dev]}         # and the first tag is neither 'test' nor 'dev' (or there are no tags)
/// ```
///
/// A definition with problems (see ``problems(_:)``: an unknown operator next to a known one, `exists` with a
/// non-boolean, `in` with a non-list, an empty path segment) never matches, and ``explain(_:)`` says why.
public struct TriggerFilter: Sendable, Hashable {
    /// One key of the filters object: a payload path and the condition its value must meet.
    struct Clause: Sendable, Hashable {
        /// The key as written, e.g. `payload.device.id`.
        var key: String
        /// The path into the payload, `payload.` stripped, e.g. `device.id`.
        var path: String
        var condition: Condition

        /// The path as messages show it: `payload.device.id`.
        var displayPath: String { "payload." + path }
    }

    indirect enum Condition: Sendable, Hashable {
        case equals(JSONValue)
        case anyOf([JSONValue])
        case exists(Bool)
        case not(Condition)
        /// Several operators in one object; all must hold.
        case all([Condition])
        /// A broken definition; never matches.
        case invalid(String)
    }

    /// The operator keys of an operator object.
    public static let operators = ["exists", "in", "not"]

    /// The conditions in key order, so the first failing one is always the same.
    let clauses: [Clause]

    public init(_ filters: JSONObject?) {
        clauses = (filters ?? [:]).sorted { $0.key < $1.key }.map { key, value in
            let path = Self.payloadPath(key)
            if let problem = Self.pathProblem(key) {
                return Clause(key: key, path: path, condition: .invalid(problem))
            }
            return Clause(key: key, path: path, condition: Self.condition(value))
        }
    }

    /// True when there is nothing to check: every event matches.
    public var isEmpty: Bool { clauses.isEmpty }

    /// Whether the event's payload meets every condition.
    public func matches(_ event: Event) -> Bool {
        explain(event) == nil
    }

    /// Nil when the event matches; otherwise one short sentence naming the first failing condition, e.g.
    /// `payload.severity is 'minor', not one of 'major', 'critical'` or `payload.device.id is missing`.
    public func explain(_ event: Event) -> String? {
        guard !clauses.isEmpty else { return nil }
        let payload = JSONValue.object(event.payload)
        for clause in clauses {
            let value = payload[path: clause.path]
            if !Self.holds(clause.condition, value) {
                return Self.failure(clause.condition, value, path: clause.displayPath)
            }
        }
        return nil
    }

    // MARK: Building

    /// The payload path a key names: the key without a leading `payload.`.
    static func payloadPath(_ key: String) -> String {
        key.hasPrefix("payload.") ? String(key.dropFirst("payload.".count)) : key
    }

    static func pathProblem(_ key: String) -> String? {
        if key.isEmpty { return "the path is empty" }
        if key.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) {
            return "the path '\(key)' has an empty segment"
        }
        return nil
    }

    static func isOperatorObject(_ object: [String: JSONValue]) -> Bool {
        object.keys.contains(where: operators.contains)
    }

    static func condition(_ value: JSONValue) -> Condition {
        switch value {
        case .array(let values):
            return .anyOf(values)
        case .object(let object) where isOperatorObject(object):
            var parts: [Condition] = []
            for (key, operand) in object.sorted(by: { $0.key < $1.key }) {
                switch key {
                case "exists":
                    guard case .bool(let present) = operand else { return .invalid(existsProblem(operand)) }
                    parts.append(.exists(present))
                case "in":
                    guard case .array(let values) = operand else { return .invalid(inProblem(operand)) }
                    parts.append(.anyOf(values))
                case "not":
                    let inner = condition(operand)
                    if case .invalid = inner { return inner }
                    parts.append(.not(inner))
                default:
                    return .invalid(unknownOperator(key, operand, mixed: true))
                }
            }
            return parts.count == 1 ? parts[0] : .all(parts)
        default:
            return .equals(value)
        }
    }

    // MARK: Evaluating

    static func holds(_ condition: Condition, _ value: JSONValue?) -> Bool {
        switch condition {
        case .equals(let expected):
            guard let value else { return false }
            return same(value, expected)
        case .anyOf(let expected):
            guard let value else { return false }
            return expected.contains { same(value, $0) }
        case .exists(let present):
            return (value != nil) == present
        case .not(let inner):
            return !holds(inner, value)
        case .all(let parts):
            return parts.allSatisfy { holds($0, value) }
        case .invalid:
            return false
        }
    }

    /// JSON equality where numbers compare numerically (1 == 1.0) and different kinds never compare equal.
    static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.int(let i), .double(let d)), (.double(let d), .int(let i)): return sameNumber(i, d)
        case (.array(let x), .array(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        case (.object(let x), .object(let y)):
            return x.count == y.count && x.allSatisfy { key, value in y[key].map { same(value, $0) } ?? false }
        default:
            return a == b
        }
    }

    /// Exact comparison of an integer and a double, without rounding the integer through Double.
    static func sameNumber(_ i: Int64, _ d: Double) -> Bool {
        guard d.rounded(.towardZero) == d, d >= -0x1p63, d < 0x1p63 else { return false }
        return Int64(d) == i
    }

    // MARK: Explaining

    /// Why `condition` fails for `value` (which it does).
    static func failure(_ condition: Condition, _ value: JSONValue?, path: String) -> String {
        switch condition {
        case .invalid(let problem):
            return "the filter on \(path) is invalid: \(problem)"
        case .exists(true):
            return "\(path) is missing"
        case .exists(false):
            return "\(path) is \(render(value)), expected it to be missing"
        case .equals(let expected):
            guard let value else { return "\(path) is missing" }
            return "\(path) is \(render(value)), not \(render(expected))"
        case .anyOf(let expected):
            guard let value else { return "\(path) is missing" }
            if expected.isEmpty { return "\(path) is \(render(value)), and the list of allowed values is empty" }
            return "\(path) is \(render(value)), not one of \(renderList(expected))"
        case .all(let parts):
            let failing = parts.first { !holds($0, value) }
            return failing.map { failure($0, value, path: path) } ?? "\(path) does not match"
        case .not(let inner):
            switch inner {
            case .equals(let excluded):
                return "\(path) is \(render(value)), expected anything but \(render(excluded))"
            case .anyOf(let excluded):
                return "\(path) is \(render(value)), expected none of \(renderList(excluded))"
            case .exists(let present):
                return failure(.exists(!present), value, path: path)
            case .not(let doubled):
                return failure(doubled, value, path: path)
            case .all, .invalid:
                return "\(path) is \(render(value)), which the filter excludes"
            }
        }
    }

    /// A value for a message: strings in single quotes, anything else as compact JSON, long values shortened.
    static func render(_ value: JSONValue?) -> String {
        guard let value else { return "missing" }
        let text: String
        if case .string(let s) = value { text = "'\(s)'" } else { text = value.jsonText }
        return text.count > 60 ? String(text.prefix(57)) + "…" : text
    }

    static func renderList(_ values: [JSONValue]) -> String {
        let shown = values.prefix(10).map { render($0) }.joined(separator: ", ")
        return values.count > 10 ? shown + " (and \(values.count - 10) more)" : shown
    }

    // MARK: Validating

    /// Problems with a filters definition, each `'<key>': <problem>`, e.g.
    /// `'severity': unknown operator 'exits' (did you mean 'exists'?)`. Empty when the definition is sound.
    ///
    /// Reported: an empty path or path segment (`a..b`); two keys naming the same path (`severity` and
    /// `payload.severity`); in an operator object, a key that is not an operator, `exists` with a non-boolean, `in`
    /// with a non-list; an empty list (it matches nothing, or under `not` excludes nothing); and a one-key object
    /// that looks like a misspelt operator (`{exits: true}`, `{Exists: true}`, `{$in: [..]}`) — such an object
    /// would otherwise silently mean structural equality.
    public static func problems(_ filters: JSONObject) -> [String] {
        var problems: [String] = []
        var seen: [String: String] = [:]
        for (key, value) in filters.sorted(by: { $0.key < $1.key }) {
            if let problem = pathProblem(key) {
                problems.append("'\(key)': \(problem)")
            } else {
                let path = payloadPath(key)
                if let other = seen[path] {
                    problems.append("'\(key)': names the same path as '\(other)'; merge the two")
                } else {
                    seen[path] = key
                }
            }
            problems += valueProblems(value, negated: false).map { "'\(key)': \($0)" }
        }
        return problems
    }

    static func valueProblems(_ value: JSONValue, negated: Bool) -> [String] {
        switch value {
        case .array(let values):
            return values.isEmpty ? [emptyListProblem(negated: negated)] : []
        case .object(let object) where isOperatorObject(object):
            var problems: [String] = []
            for (key, operand) in object.sorted(by: { $0.key < $1.key }) {
                switch key {
                case "exists":
                    if case .bool = operand {} else { problems.append(existsProblem(operand)) }
                case "in":
                    guard case .array(let values) = operand else {
                        problems.append(inProblem(operand))
                        continue
                    }
                    if values.isEmpty { problems.append(emptyListProblem(negated: negated)) }
                case "not":
                    problems += valueProblems(operand, negated: !negated)
                default:
                    problems.append(unknownOperator(key, operand, mixed: true))
                }
            }
            return problems
        case .object(let object) where object.count == 1:
            let (key, operand) = object.first!
            if let operatorProblem = misspeltOperator(key, operand) { return [operatorProblem] }
            return []
        default:
            return []
        }
    }

    static func emptyListProblem(negated: Bool) -> String {
        negated ? "an empty list under 'not' excludes nothing" : "an empty list matches no value"
    }

    static func existsProblem(_ operand: JSONValue) -> String {
        "'exists' needs true or false, found \(operand.kindName)"
    }

    static func inProblem(_ operand: JSONValue) -> String {
        "'in' needs a list of values, found \(operand.kindName)"
    }

    /// The message for a key in an operator position that is no operator.
    static func unknownOperator(_ key: String, _ operand: JSONValue, mixed: Bool) -> String {
        let suggestion = likelyOperator(key, operand) ?? (mixed ? Suggest.closest(to: key, among: operators) : nil)
        if let suggestion { return "unknown operator '\(key)' (did you mean '\(suggestion)'?)" }
        if key == "$eq" || key == "eq" { return "unknown operator '\(key)' (for equality write the value itself)" }
        return "unknown operator '\(key)' (operators are \(operators.map { "'\($0)'" }.joined(separator: ", ")))"
    }

    /// The problem with a one-key object `{key: operand}` that looks like an operator but is none, or nil when it
    /// reads as a plain object for structural equality.
    static func misspeltOperator(_ key: String, _ operand: JSONValue) -> String? {
        if key.hasPrefix("$") || likelyOperator(key, operand) != nil {
            return unknownOperator(key, operand, mixed: false)
        }
        return nil
    }

    /// The operator a key probably means: a case variant (`Exists`), a `$`-prefixed form (`$in`, `$ne`, `$nin`),
    /// a typo of `exists` with a boolean (`exits`, `exist`), a negated list (`not_in`, `nin`) with a list.
    static func likelyOperator(_ key: String, _ operand: JSONValue) -> String? {
        let bare = key.hasPrefix("$") ? String(key.dropFirst()) : key
        let lower = bare.lowercased()
        if operators.contains(lower) { return lower }
        if key.hasPrefix("$"), ["ne", "nin"].contains(lower) { return "not" }
        if case .bool = operand, Suggest.closest(to: lower, among: ["exists"]) != nil { return "exists" }
        if case .array = operand, ["nin", "notin", "not_in", "not-in"].contains(lower) { return "not" }
        return nil
    }
}
