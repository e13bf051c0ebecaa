import Foundation
import Yams

/// One thing wrong in an agent definition, with where it is and, when there is an obvious fix, what to write.
public struct ValidationProblem: Sendable, Hashable, CustomStringConvertible {
    /// The file name given to ``AgentDefinition/parse(yaml:file:vocabulary:)``, if any.
    public var file: String?
    /// Where in the definition: `triggers[1].priority`, `handler.exec.command`; `""` for the whole document.
    public var path: String
    /// 1-based line, when known.
    public var line: Int?
    /// 1-based column (in Unicode scalars), when known.
    public var column: Int?
    /// What was expected and what was found.
    public var message: String
    /// A likely fix, e.g. `did you mean 'priority'?`.
    public var suggestion: String?

    public init(file: String? = nil, path: String, line: Int? = nil, column: Int? = nil, message: String,
                suggestion: String? = nil) {
        self.file = file
        self.path = path
        self.line = line
        self.column = column
        self.message = message
        self.suggestion = suggestion
    }

    /// `agent.yaml:12:15: triggers[1].priority: expected one of critical, high, normal, low; found 'urgent'`
    public var description: String {
        var location: [String] = []
        if let file { location.append(file) }
        if let line {
            location.append(String(line))
            if let column { location.append(String(column)) }
        }
        var text = location.isEmpty ? "" : location.joined(separator: ":") + ": "
        if !path.isEmpty { text += path + ": " }
        text += message
        if let suggestion { text += "; " + suggestion }
        return text
    }
}

/// Everything wrong with an agent definition, all at once, in document order.
public struct AgentDefinitionError: Error, Sendable, Hashable, CustomStringConvertible {
    public var problems: [ValidationProblem]

    public init(problems: [ValidationProblem]) {
        self.problems = problems
    }

    /// One problem per line.
    public var description: String {
        problems.map(\.description).joined(separator: "\n")
    }
}

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

    /// The templates in `text`, and the problems with them.
    public static func scan(_ text: String) -> (references: [Reference], problems: [Problem]) {
        let scalars = Array(text.unicodeScalars)
        var references: [Reference] = []
        var problems: [Problem] = []
        var i = 0
        while i < scalars.count {
            guard scalars[i] == "{", i + 1 < scalars.count, scalars[i + 1] == "{" else { i += 1; continue }
            let start = i
            var j = i + 2
            var close: Int?
            while j + 1 < scalars.count {
                if scalars[j] == "}" && scalars[j + 1] == "}" { close = j; break }
                j += 1
            }
            guard let close else {
                problems.append(Problem(message: "template at '\(String(String.UnicodeScalarView(scalars[start...])))' has no closing '}}'",
                                        offset: start))
                break
            }
            let inner = String(String.UnicodeScalarView(scalars[(start + 2)..<close]))
            let reference = inner.trimmingCharacters(in: .whitespaces)
            let whole = "{{" + inner + "}}"
            if let message = problem(withReference: reference, template: whole) {
                problems.append(Problem(message: message, offset: start, suggestion: suggestion(for: reference)))
            } else {
                references.append(Reference(reference: reference, offset: start))
            }
            i = close + 2
        }
        return (references, problems)
    }

    /// Why `reference` (the inside of `{{…}}`, trimmed) does not name a part of an event, or nil when it does.
    public static func problem(withReference reference: String, template: String? = nil) -> String? {
        let shown = template ?? "{{\(reference)}}"
        let allowed = "use one of \(roots.joined(separator: ", ")) or payload.<path>"
        if reference.isEmpty { return "template '\(shown)' is empty; \(allowed)" }
        if roots.contains(reference) { return nil }
        let parts = reference.split(separator: ".", omittingEmptySubsequences: false)
        if parts[0] == "payload" {
            if parts.count == 1 {
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

/// "Did you mean" for unknown keys and values.
enum Suggest {
    /// The known word closest to `word`: the same word ignoring case, a known word that `word` begins, an edit
    /// distance of at most 2 (transpositions count 1), or a shared beginning of at least 4 characters.
    static func closest(to word: String, among known: [String]) -> String? {
        let lower = word.lowercased()
        if lower.isEmpty { return nil }
        // The same word in another case; a word the typed one begins (`max_parallel` → `max_parallel_tasks`).
        if let same = known.first(where: { $0.lowercased() == lower }) { return same }
        if lower.count >= 3, let longer = known.first(where: { $0.lowercased().hasPrefix(lower) }) { return longer }
        // A typo: an edit distance of at most 2 that leaves something of the word.
        let scored = known.map { ($0, distance(lower, $0.lowercased())) }
        if let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2, best.1 < lower.count, best.1 < best.0.count {
            return best.0
        }
        // A long shared beginning (`timeout` → `timeout_seconds`, `approval_for` → `approval_required_for`).
        let prefixed = known.map { ($0, commonPrefix(lower, $0.lowercased())) }
        if let best = prefixed.max(by: { $0.1 < $1.1 }), best.1 >= 4 { return best.0 }
        return nil
    }

    static func didYouMean(_ word: String, among known: [String]) -> String? {
        closest(to: word, among: known).map { "did you mean '\($0)'?" }
    }

    /// Optimal string alignment distance.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }

    static func commonPrefix(_ a: String, _ b: String) -> Int {
        zip(a, b).prefix(while: { $0 == $1 }).count
    }
}

extension AgentDefinition {
    /// The keys of the top level, in the order ``yaml()`` writes them.
    public static let topLevelKeys = CodingKeys.allCases.map(\.rawValue)

    /// Reads an agent definition from YAML, checking everything that can be checked without the registry, and
    /// reporting every problem at once with its line and column.
    ///
    /// - Parameters:
    ///   - yaml: The YAML text.
    ///   - file: A name for the text, shown in front of each problem (`agent.yaml:12:15: …`); default none.
    ///   - vocabulary: The allowed permissions and resource types; default ``AgentVocabulary/standard``.
    /// - Throws: ``AgentDefinitionError`` with every problem found, in document order.
    public static func parse(yaml: String, file: String? = nil,
                             vocabulary: AgentVocabulary = .standard) throws(AgentDefinitionError) -> AgentDefinition {
        var reader = DefinitionReader(file: file, vocabulary: vocabulary)
        if let anchor = YAMLAnchors.firstAnchor(in: yaml) {
            throw AgentDefinitionError(problems: [reader.anchorProblem(anchor.text, line: anchor.line, column: anchor.column)])
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw AgentDefinitionError(problems: [reader.syntaxProblem(error, yaml: yaml)])
        } catch {
            throw AgentDefinitionError(problems: [ValidationProblem(file: file, path: "", message: "invalid YAML: \(error)")])
        }
        guard let root else {
            throw AgentDefinitionError(problems: [ValidationProblem(
                file: file, path: "", line: 1, column: 1,
                message: "the document is empty; expected a mapping with metadata, goal and triggers")])
        }
        if let anchored = YAMLAnchors.firstAnchored(root), let anchor = anchored.anchor {
            throw AgentDefinitionError(problems: [reader.anchorProblem("&\(anchor.rawValue)", line: anchored.mark?.line ?? 1,
                                                                       column: anchored.mark?.column ?? 1)])
        }
        let definition = reader.definition(root)
        if definition == nil && reader.problems.isEmpty {
            reader.report("", root, "the definition is incomplete")
        }
        guard let definition, reader.problems.isEmpty else {
            let ordered = reader.problems.enumerated().sorted { lhs, rhs in
                let l = (lhs.element.line ?? Int.max, lhs.element.column ?? Int.max, lhs.offset)
                let r = (rhs.element.line ?? Int.max, rhs.element.column ?? Int.max, rhs.offset)
                return l < r
            }.map(\.element)
            throw AgentDefinitionError(problems: ordered)
        }
        return definition
    }

    /// Whether `id` can be an agent id: lowercase letters, digits, `-` and `_`, 1…100 characters (it becomes the
    /// queue name `agentry.agent.<id>`). Returns why not, or nil.
    public static func idProblem(_ id: String) -> String? {
        if id.isEmpty { return "an id must not be empty; use lowercase letters, digits, '-' and '_'" }
        if id.count > 100 { return "id '\(id)' is \(id.count) characters long; the limit is 100" }
        if let bad = id.unicodeScalars.first(where: { !isIDCharacter($0) }) {
            return "id '\(id)' contains '\(bad)'; use lowercase letters, digits, '-' and '_' (it becomes the queue name agentry.agent.<id>)"
        }
        return nil
    }

    private static func isIDCharacter(_ s: Unicode.Scalar) -> Bool {
        switch s {
        case "a"..."z", "0"..."9", "-", "_": return true
        default: return false
        }
    }
}

// MARK: - The reader

/// A mapping's recognised entries, with the mapping node (for the position of missing keys).
struct Fields {
    let node: Node
    let path: String
    var values: [String: Node]

    subscript(_ key: String) -> Node? { values[key] }

    func path(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
}

/// Walks the composed YAML tree, building the definition and collecting every problem on the way.
struct DefinitionReader {
    let file: String?
    let vocabulary: AgentVocabulary
    private(set) var problems: [ValidationProblem] = []

    init(file: String?, vocabulary: AgentVocabulary) {
        self.file = file
        self.vocabulary = vocabulary
    }

    // MARK: Reporting

    mutating func report(_ path: String, _ node: Node?, _ message: String, suggestion: String? = nil,
                         columnOffset: Int = 0) {
        let mark = node?.mark
        problems.append(ValidationProblem(file: file, path: path, line: mark?.line,
                                          column: mark.map { $0.column + columnOffset },
                                          message: message, suggestion: suggestion))
    }

    /// YAML anchors and aliases are refused: an alias repeats a node, and a few of them nested can stand for
    /// billions of nodes.
    func anchorProblem(_ anchor: String, line: Int, column: Int) -> ValidationProblem {
        ValidationProblem(file: file, path: "", line: line, column: column,
                          message: "YAML anchors and aliases are not accepted in agent definitions (found anchor '\(anchor)'); write the repeated values out in full")
    }

    func syntaxProblem(_ error: YamlError, yaml: String) -> ValidationProblem {
        func contextText(_ context: YamlError.Context?) -> String {
            guard let context else { return "" }
            return " (\(context.text) at line \(context.mark.line), column \(context.mark.column))"
        }
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            return ValidationProblem(file: file, path: "", line: mark.line, column: mark.column,
                                     message: "invalid YAML: \(problem)\(contextText(context))")
        case let .reader(problem, offset, _, _):
            var line: Int?, column: Int?
            if let offset {
                let prefix = yaml.utf8.prefix(offset)
                line = prefix.count(where: { $0 == UInt8(ascii: "\n") }) + 1
                let lastLine = prefix.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).last ?? []
                column = String(decoding: lastLine, as: UTF8.self).unicodeScalars.count + 1
            }
            return ValidationProblem(file: file, path: "", line: line, column: column,
                                     message: "invalid YAML: \(problem)")
        case let .duplicatedKeysInMapping(duplicates, context):
            let keys = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
            return ValidationProblem(file: file, path: "", line: context.mark.line, column: context.mark.column,
                                     message: "duplicate key \(keys) in one mapping; each key may appear once")
        default:
            return ValidationProblem(file: file, path: "", message: "invalid YAML: \(error)")
        }
    }

    // MARK: Generic readers

    static func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            let text = scalar.string
            switch Resolver.default.resolveTag(of: Node.scalar(scalar)) {
            case .null: return "nothing"
            case .bool: return "a boolean ('\(text)')"
            case .int, .float: return "a number ('\(text)')"
            default: return "a string ('\(text)')"
            }
        }
    }

    static func isNull(_ node: Node) -> Bool {
        if case .scalar(let scalar) = node, Resolver.default.resolveTag(of: Node.scalar(scalar)) == .null { return true }
        return false
    }

    /// The entries of a mapping, reporting unknown keys (with a "did you mean") and a value that is no mapping.
    mutating func mapping(_ node: Node, path: String, known: [String], what: String = "a mapping") -> Fields? {
        guard case .mapping(let mapping) = node else {
            report(path, node, "expected \(what), found \(Self.describe(node))")
            return nil
        }
        var values: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                report(path, keyNode, "expected a key name, found \(Self.describe(keyNode))")
                continue
            }
            let key = keyScalar.string
            if known.contains(key) {
                values[key] = value
            } else {
                let place = path.isEmpty ? "at the top level" : "in \(path)"
                report(path.isEmpty ? key : "\(path).\(key)", keyNode,
                       "unknown key '\(key)' \(place); expected one of \(known.joined(separator: ", "))",
                       suggestion: Suggest.didYouMean(key, among: known))
            }
        }
        return Fields(node: node, path: path, values: values)
    }

    /// The value of `key`, or nil; reports it missing when `required`. A null value counts as absent for optional keys.
    mutating func value(_ fields: Fields, _ key: String, required: Bool) -> Node? {
        guard let node = fields[key] else {
            if required {
                report(fields.path(key), fields.node, "missing required field '\(key)'")
            }
            return nil
        }
        if !required && Self.isNull(node) { return nil }
        return node
    }

    /// Any scalar but null, as its text (so `version: 1.0` reads as "1.0", and `name: 42` as "42").
    mutating func string(_ node: Node, path: String, what: String = "a string") -> String? {
        if case .scalar(let scalar) = node, Resolver.default.resolveTag(of: Node.scalar(scalar)) != .null { return scalar.string }
        report(path, node, "expected \(what), found \(Self.describe(node))")
        return nil
    }

    mutating func string(_ fields: Fields, _ key: String, required: Bool) -> String? {
        guard let node = value(fields, key, required: required) else { return nil }
        return string(node, path: fields.path(key))
    }

    mutating func int(_ fields: Fields, _ key: String, positive: Bool) -> Int? {
        guard let node = value(fields, key, required: false) else { return nil }
        let path = fields.path(key)
        guard case .scalar(let scalar) = node, Resolver.default.resolveTag(of: Node.scalar(scalar)) == .int, let number = node.int else {
            report(path, node, "expected a whole number, found \(Self.describe(node))")
            return nil
        }
        if positive && number <= 0 {
            report(path, node, "expected a positive whole number, found \(number)")
            return nil
        }
        return number
    }

    mutating func double(_ fields: Fields, _ key: String) -> Double? {
        guard let node = value(fields, key, required: false) else { return nil }
        guard case .scalar(let scalar) = node, [.int, .float].contains(Resolver.default.resolveTag(of: Node.scalar(scalar))),
              let number = node.float ?? node.int.map(Double.init), number.isFinite else {
            report(fields.path(key), node, "expected a number, found \(Self.describe(node))")
            return nil
        }
        return number
    }

    mutating func bool(_ fields: Fields, _ key: String) -> Bool? {
        guard let node = value(fields, key, required: false) else { return nil }
        guard case .scalar(let scalar) = node, Resolver.default.resolveTag(of: Node.scalar(scalar)) == .bool, let flag = node.bool else {
            report(fields.path(key), node, "expected true or false, found \(Self.describe(node))")
            return nil
        }
        return flag
    }

    /// A list of strings, each with its node and path; nil when absent (and not required) or not a list.
    mutating func stringList(_ fields: Fields, _ key: String, required: Bool) -> [(value: String, node: Node, path: String)]? {
        guard let node = value(fields, key, required: required) else { return nil }
        let path = fields.path(key)
        guard case .sequence(let sequence) = node else {
            report(path, node, "expected a list of strings, found \(Self.describe(node))")
            return nil
        }
        var items: [(value: String, node: Node, path: String)] = []
        for (index, item) in sequence.enumerated() {
            let itemPath = "\(path)[\(index)]"
            if let text = string(item, path: itemPath) {
                items.append((text, item, itemPath))
            }
        }
        return items
    }

    /// A mapping of strings to strings (env, headers); nil when absent.
    mutating func stringMap(_ fields: Fields, _ key: String) -> [String: String]? {
        guard let node = value(fields, key, required: false) else { return nil }
        let path = fields.path(key)
        guard case .mapping(let mapping) = node else {
            report(path, node, "expected a mapping of names to strings, found \(Self.describe(node))")
            return nil
        }
        var result: [String: String] = [:]
        for (keyNode, valueNode) in mapping {
            guard let name = string(keyNode, path: path, what: "a name") else { continue }
            if name.isEmpty { report(path, keyNode, "a name must not be empty") }
            if let text = string(valueNode, path: "\(path).\(name)") { result[name] = text }
        }
        return result
    }

    /// Any YAML value as JSON: null, booleans, whole numbers, numbers and strings by their YAML type; timestamps and
    /// other scalars as their text.
    mutating func json(_ node: Node, path: String) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            switch Resolver.default.resolveTag(of: Node.scalar(scalar)) {
            case .null: return .null
            case .bool: return node.bool.map(JSONValue.bool) ?? .string(scalar.string)
            case .int:
                if let number = node.int { return .int(Int64(number)) }
                return node.float.map(JSONValue.double) ?? .string(scalar.string)
            case .float:
                if let number = node.float, number.isFinite { return .double(number) }
                report(path, node, "expected a finite number (JSON has no infinity or NaN), found '\(scalar.string)'")
                return .null
            default: return .string(scalar.string)
            }
        case .sequence(let sequence):
            return .array(sequence.enumerated().map { json($1, path: "\(path)[\($0)]") })
        case .mapping(let mapping):
            var object: JSONObject = [:]
            for (keyNode, valueNode) in mapping {
                guard let key = string(keyNode, path: path, what: "a key name") else { continue }
                object[key] = json(valueNode, path: "\(path).\(key)")
            }
            return .object(object)
        case .alias:
            return .null
        }
    }

    mutating func jsonObject(_ fields: Fields, _ key: String) -> JSONObject? {
        guard let node = value(fields, key, required: false) else { return nil }
        guard case .mapping = node else {
            report(fields.path(key), node, "expected a mapping, found \(Self.describe(node))")
            return nil
        }
        return json(node, path: fields.path(key)).objectValue
    }

    mutating func priority(_ node: Node, path: String) -> Priority? {
        guard let name = string(node, path: path) else { return nil }
        if let priority = Priority(name: name) { return priority }
        let names = Priority.allCases.map { $0.name.lowercased() }
        report(path, node, "expected one of \(names.joined(separator: ", ")); found '\(name)'",
               suggestion: Suggest.didYouMean(name, among: names))
        return nil
    }

    /// Checks the templates in a string scalar, pointing at the template itself when the scalar sits on one line.
    mutating func checkTemplates(_ text: String, node: Node, path: String) {
        let found = EventTemplate.scan(text)
        for problem in found.problems {
            report(path, node, problem.message, suggestion: problem.suggestion,
                   columnOffset: Self.columnOffset(of: problem.offset, in: text, node: node))
        }
    }

    /// Where offset `offset` of the scalar's text sits relative to the scalar's mark, when that can be known
    /// (plain or quoted scalars on one line without escapes); 0 otherwise.
    static func columnOffset(of offset: Int, in text: String, node: Node) -> Int {
        guard case .scalar(let scalar) = node, !text.contains("\n") else { return 0 }
        switch scalar.style {
        case .plain: return offset
        case .singleQuoted where !text.contains("'"): return offset + 1
        case .doubleQuoted where !text.contains("\"") && !text.contains("\\"): return offset + 1
        default: return 0
        }
    }

    // MARK: The definition

    mutating func definition(_ root: Node) -> AgentDefinition? {
        guard let fields = mapping(root, path: "", known: AgentDefinition.topLevelKeys,
                                   what: "a mapping with metadata, goal and triggers") else { return nil }
        var metadata: AgentMetadata?, goal: AgentGoal?, triggers: [EventTrigger]?
        if let node = value(fields, "metadata", required: true) { metadata = self.metadata(node) }
        if let node = value(fields, "goal", required: true) { goal = self.goal(node) }
        if let node = value(fields, "triggers", required: true) { triggers = self.triggers(node) }
        let pools = names(fields, "event_pools")
        var subagents: [SubagentReference] = []
        if let node = value(fields, "subagents", required: false) { subagents = self.subagents(node) ?? [] }
        let skills = names(fields, "skills")
        var permissions = AgentPermissions()
        if let node = value(fields, "permissions", required: false) { permissions = self.permissions(node) ?? permissions }
        var config = AgentConfig()
        if let node = value(fields, "config", required: false) { config = self.config(node, permissions: permissions) ?? config }
        var handler: Handler?
        if let node = value(fields, "handler", required: false) { handler = self.handler(node) }
        let resources = self.resources(fields, permissions: permissions)
        var retry: RetryPolicy?
        if let node = value(fields, "retry", required: false) { retry = self.retry(node) }
        var onBusy = BusyPolicy.queue
        if let node = value(fields, "on_busy", required: false), let name = string(node, path: "on_busy") {
            if let policy = BusyPolicy(rawValue: name) {
                onBusy = policy
            } else {
                let names = BusyPolicy.allCases.map(\.rawValue)
                report("on_busy", node, "expected one of \(names.joined(separator: ", ")); found '\(name)'",
                       suggestion: Suggest.didYouMean(name, among: names))
            }
        }
        let workerLabels = stringMap(fields, "worker_labels") ?? [:]
        guard let metadata, let goal, let triggers else { return nil }
        return AgentDefinition(metadata: metadata, goal: goal, triggers: triggers, eventPools: pools,
                               subagents: subagents, skills: skills, permissions: permissions, config: config,
                               handler: handler, resources: resources, retry: retry, onBusy: onBusy, workerLabels: workerLabels)
    }

    mutating func metadata(_ node: Node) -> AgentMetadata? {
        let keys = AgentMetadata.CodingKeys.allCases.map(\.rawValue)
        guard let f = mapping(node, path: "metadata", known: keys) else { return nil }
        let id = string(f, "id", required: true)
        if let id, let problem = AgentDefinition.idProblem(id) {
            report("metadata.id", f["id"], problem,
                   suggestion: id.lowercased() != id && AgentDefinition.idProblem(id.lowercased()) == nil
                       ? "did you mean '\(id.lowercased())'?" : nil)
        }
        let name = string(f, "name", required: true)
        let version = string(f, "version", required: true)
        if let version {
            do throws(SemanticVersionError) {
                _ = try SemanticVersion(validating: version)
            } catch {
                report("metadata.version", f["version"], error.message)
            }
        }
        let author = string(f, "author", required: true)
        let description = string(f, "description", required: true)
        let createdAt = string(f, "created_at", required: false)
        let updatedAt = string(f, "updated_at", required: false)
        guard let id, let name, let version, let author, let description else { return nil }
        return AgentMetadata(id: id, name: name, version: version, author: author, description: description,
                             createdAt: createdAt, updatedAt: updatedAt)
    }

    mutating func goal(_ node: Node) -> AgentGoal? {
        guard let f = mapping(node, path: "goal", known: ["type", "description"]) else { return nil }
        var type: AgentGoalType?
        if let text = string(f, "type", required: true) {
            type = AgentGoalType(rawValue: text)
            if type == nil {
                let names = AgentGoalType.allCases.map(\.rawValue)
                report("goal.type", f["type"], "expected one of \(names.joined(separator: ", ")); found '\(text)'",
                       suggestion: Suggest.didYouMean(text, among: names))
            }
        }
        let description = string(f, "description", required: true)
        guard let type, let description else { return nil }
        return AgentGoal(type: type, description: description)
    }

    mutating func triggers(_ node: Node) -> [EventTrigger]? {
        guard case .sequence(let sequence) = node else {
            report("triggers", node, "expected a list of triggers (each with type and priority), found \(Self.describe(node))")
            return nil
        }
        var triggers: [EventTrigger] = []
        var seen: [String: (index: Int, line: Int?)] = [:]
        var complete = true
        let keys = EventTrigger.CodingKeys.allCases.map(\.rawValue)
        for (index, item) in sequence.enumerated() {
            let path = "triggers[\(index)]"
            guard let f = mapping(item, path: path, known: keys, what: "a trigger mapping with type and priority") else {
                complete = false
                continue
            }
            var type = string(f, "type", required: true)
            if let pattern = type {
                if let problem = EventType.patternProblem(with: pattern) {
                    report(f.path("type"), f["type"], problem)
                    type = nil
                } else if let first = seen[pattern] {
                    let at = first.line.map { " (line \($0))" } ?? ""
                    report(f.path("type"), f["type"],
                           "trigger type '\(pattern)' already appears in triggers[\(first.index)]\(at); each type may appear once",
                           suggestion: "merge the two triggers")
                } else {
                    seen[pattern] = (index, f["type"]?.mark?.line)
                }
            }
            var priority: Priority?
            if let node = value(f, "priority", required: true) { priority = self.priority(node, path: f.path("priority")) }
            let filters = jsonObject(f, "filters")
            if let filters {
                for problem in TriggerFilter.problems(filters) {
                    report(f.path("filters"), f["filters"], problem)
                }
            }
            if let type, let priority {
                triggers.append(EventTrigger(type: type, priority: priority, filters: filters))
            } else {
                complete = false
            }
        }
        return complete ? triggers : nil
    }

    /// A list of non-empty names (event_pools, skills); `[]` when absent.
    mutating func names(_ fields: Fields, _ key: String) -> [String] {
        guard let items = stringList(fields, key, required: false) else { return [] }
        for item in items where item.value.trimmingCharacters(in: .whitespaces).isEmpty {
            report(item.path, item.node, "expected a name, found an empty string")
        }
        return items.map(\.value)
    }

    mutating func subagents(_ node: Node) -> [SubagentReference]? {
        guard case .sequence(let sequence) = node else {
            report("subagents", node, "expected a list of subagents (each with id, version and delegate_for), found \(Self.describe(node))")
            return nil
        }
        let keys = SubagentReference.CodingKeys.allCases.map(\.rawValue)
        var result: [SubagentReference] = []
        for (index, item) in sequence.enumerated() {
            let path = "subagents[\(index)]"
            guard let f = mapping(item, path: path, known: keys,
                                  what: "a subagent mapping with id, version and delegate_for") else { continue }
            let id = string(f, "id", required: true)
            if let id, let problem = AgentDefinition.idProblem(id) {
                report(f.path("id"), f["id"], problem)
            }
            let version = string(f, "version", required: true)
            if let version {
                do throws(SemanticVersionError) {
                    _ = try VersionRange(validating: version)
                } catch {
                    report(f.path("version"), f["version"], error.message)
                }
            }
            let delegateFor = stringList(f, "delegate_for", required: true)
            if let id, let version, let delegateFor {
                result.append(SubagentReference(id: id, version: version, delegateFor: delegateFor.map(\.value)))
            }
        }
        return result
    }

    mutating func permissions(_ node: Node) -> AgentPermissions? {
        let sections = vocabulary.permissionSections
        guard let f = mapping(node, path: "permissions", known: sections.map(\.section)) else { return nil }
        var lists: [String: [String]] = [:]
        for (section, allowed) in sections {
            guard let items = stringList(f, section, required: false) else { continue }
            for item in items where !allowed.contains(item.value) {
                report(item.path, item.node,
                       "unknown \(section) permission '\(item.value)'; expected one of \(allowed.joined(separator: ", "))",
                       suggestion: Suggest.didYouMean(item.value, among: allowed))
            }
            lists[section] = items.map(\.value)
        }
        return AgentPermissions(devices: lists["devices"] ?? [], database: lists["database"] ?? [],
                                external: lists["external"] ?? [])
    }

    mutating func config(_ node: Node, permissions: AgentPermissions) -> AgentConfig? {
        let keys = AgentConfig.CodingKeys.allCases.map(\.rawValue)
        guard let f = mapping(node, path: "config", known: keys) else { return nil }
        var config = AgentConfig()
        if let n = int(f, "max_parallel_tasks", positive: true) { config.maxParallelTasks = n }
        if let items = stringList(f, "approval_required_for", required: false) {
            for item in items { checkApproval(item.value, node: item.node, path: item.path, permissions: permissions) }
            config.approvalRequiredFor = items.map(\.value)
        }
        if let flag = bool(f, "auto_retry") { config.autoRetry = flag }
        if let flag = bool(f, "feedback_collection") { config.feedbackCollection = flag }
        if let n = int(f, "timeout_seconds", positive: true) { config.timeoutSeconds = n }
        if let flag = bool(f, "task_events") { config.taskEvents = flag }
        return config
    }

    /// An approval entry names a permission: `<section>.<permission>` or a permission of exactly one section; the
    /// agent must hold it.
    mutating func checkApproval(_ entry: String, node: Node, path: String, permissions: AgentPermissions) {
        let sections = vocabulary.permissionSections
        let qualified = sections.flatMap { section in section.allowed.map { "\(section.section).\($0)" } }
        var resolved: (section: String, permission: String)?
        if let dot = entry.firstIndex(of: "."), let section = sections.first(where: { $0.section == entry[..<dot] }) {
            let permission = String(entry[entry.index(after: dot)...])
            if section.allowed.contains(permission) { resolved = (section.section, permission) }
        }
        if resolved == nil {
            let owners = sections.filter { $0.allowed.contains(entry) }
            if owners.count == 1 {
                resolved = (owners[0].section, entry)
            } else if owners.count > 1 {
                let options = owners.map { "'\($0.section).\(entry)'" }.joined(separator: " or ")
                report(path, node, "permission '\(entry)' belongs to several sections; write \(options)",
                       suggestion: "did you mean \(options)?")
                return
            }
        }
        guard let resolved else {
            report(path, node, "unknown permission '\(entry)'; expected <section>.<permission>, one of \(qualified.joined(separator: ", "))",
                   suggestion: Suggest.didYouMean(entry, among: qualified))
            return
        }
        if !permissions.granted(in: resolved.section).contains(resolved.permission) {
            report(path, node,
                   "approval is required for '\(entry)', but permissions.\(resolved.section) does not grant '\(resolved.permission)'",
                   suggestion: "add '\(resolved.permission)' to permissions.\(resolved.section), or remove this entry")
        }
    }

    mutating func handler(_ node: Node) -> Handler? {
        guard let f = mapping(node, path: "handler", known: Handler.kinds,
                              what: "a mapping with one of exec, http, builtin, emit") else { return nil }
        let present = Handler.kinds.filter { f[$0] != nil }
        guard present.count == 1, let kind = present.first, let body = f[kind] else {
            if present.isEmpty {
                // Unknown keys were reported already, with the kinds that exist.
                if case .mapping(let entries) = node, !entries.isEmpty { return nil }
                report("handler", node, "expected exactly one of exec, http, builtin, emit; found none")
            } else {
                report("handler", node,
                       "expected exactly one of exec, http, builtin, emit; found \(present.joined(separator: " and "))")
            }
            return nil
        }
        switch kind {
        case "exec":
            return execHandler(body)
        case "http":
            return httpHandler(body)
        case "builtin":
            guard let name = string(body, path: "handler.builtin") else { return nil }
            switch name {
            case "noop": return .noop
            case "log": return .log
            case "emit":
                report("handler.builtin", body,
                       "the emit handler takes settings; write 'emit: {type: …, payload: …}' under handler in place of 'builtin: emit'")
                return nil
            default:
                report("handler.builtin", body,
                       "expected one of \(Handler.builtinNames.joined(separator: ", ")); found '\(name)' (exec, http and emit are keys of handler)",
                       suggestion: Suggest.didYouMean(name, among: Handler.builtinNames))
                return nil
            }
        default:
            guard let e = mapping(body, path: "handler.emit", known: EmitHandler.CodingKeys.allCases.map(\.rawValue))
            else { return nil }
            var type = string(e, "type", required: true)
            if let text = type, let problem = EventType.problem(with: text) {
                report("handler.emit.type", e["type"], problem)
                type = nil
            }
            let payload = jsonObject(e, "payload") ?? [:]
            if let payloadNode = e["payload"] { checkPayloadTemplates(payloadNode, path: "handler.emit.payload") }
            var priority: Priority?
            var priorityOK = true
            if let node = value(e, "priority", required: false) {
                priority = self.priority(node, path: "handler.emit.priority")
                priorityOK = priority != nil
            }
            guard let type, priorityOK else { return nil }
            return .emit(EmitHandler(type: type, payload: payload, priority: priority))
        }
    }

    mutating func checkPayloadTemplates(_ node: Node, path: String) {
        switch node {
        case .scalar(let scalar) where Resolver.default.resolveTag(of: Node.scalar(scalar)) == .str:
            checkTemplates(scalar.string, node: node, path: path)
        case .sequence(let sequence):
            for (index, item) in sequence.enumerated() { checkPayloadTemplates(item, path: "\(path)[\(index)]") }
        case .mapping(let mapping):
            for (keyNode, valueNode) in mapping {
                checkPayloadTemplates(valueNode, path: "\(path).\(keyNode.string ?? "?")")
            }
        default:
            break
        }
    }

    static func urlProblem(_ url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            return "expected an absolute http:// or https:// URL, found '\(url)'"
        }
        guard scheme == "http" || scheme == "https" else {
            return "expected an http:// or https:// URL, found scheme '\(scheme)' in '\(url)'"
        }
        guard let host = components.host, !host.isEmpty else {
            return "expected an absolute http:// or https:// URL with a host, found '\(url)'"
        }
        return nil
    }

    mutating func resources(_ fields: Fields, permissions: AgentPermissions) -> [String] {
        guard let items = stringList(fields, "resources", required: false) else { return [] }
        let types = vocabulary.resourceTypes
        for item in items {
            guard let colon = item.value.firstIndex(of: ":") else {
                report(item.path, item.node,
                       "expected <type>:<id-template> with type one of \(types.joined(separator: ", ")), found '\(item.value)'",
                       suggestion: "did you mean 'device:\(item.value)'?")
                continue
            }
            let type = String(item.value[..<colon])
            let id = String(item.value[item.value.index(after: colon)...])
            if !types.contains(type) {
                report(item.path, item.node,
                       "unknown resource type '\(type)' in '\(item.value)'; expected one of \(types.joined(separator: ", "))",
                       suggestion: Suggest.didYouMean(type, among: types))
            }
            if type == "device", !permissions.devices.contains("take_control") {
                report(item.path, item.node,
                       "locking '\(item.value)' takes control of a device, which permissions.devices does not grant",
                       suggestion: "add take_control to permissions.devices")
            }
            if id.trimmingCharacters(in: .whitespaces).isEmpty {
                report(item.path, item.node, "resource '\(item.value)' has no id after '\(type):'",
                       suggestion: "did you mean '\(type):{{payload.\(type)_id}}'?")
            }
            checkTemplates(item.value, node: item.node, path: item.path)
        }
        return items.map(\.value)
    }

    mutating func retry(_ node: Node) -> RetryPolicy? {
        guard let f = mapping(node, path: "retry", known: RetryPolicy.CodingKeys.allCases.map(\.rawValue)) else { return nil }
        var policy = RetryPolicy()
        if let n = int(f, "attempts", positive: true) { policy.attempts = n }
        if let backoffNode = value(f, "backoff", required: false),
           let b = mapping(backoffNode, path: "retry.backoff", known: RetryPolicy.Backoff.CodingKeys.allCases.map(\.rawValue)) {
            if let v = double(b, "initial_seconds") {
                if v > 0 { policy.backoff.initialSeconds = v } else {
                    report(b.path("initial_seconds"), b["initial_seconds"], "expected a positive number of seconds, found \(v.agentYAMLText)")
                }
            }
            if let v = double(b, "max_seconds") {
                if v >= policy.backoff.initialSeconds { policy.backoff.maxSeconds = v } else {
                    report(b.path("max_seconds"), b["max_seconds"],
                           "expected at least initial_seconds (\(policy.backoff.initialSeconds.agentYAMLText)), found \(v.agentYAMLText)")
                }
            }
            if let v = double(b, "multiplier") {
                if v >= 1 { policy.backoff.multiplier = v } else {
                    report(b.path("multiplier"), b["multiplier"], "expected a number of at least 1, found \(v.agentYAMLText)")
                }
            }
        }
        return policy
    }
}

extension Double {
    /// `1` for whole numbers, `1.5` otherwise: as a user would write it.
    var agentYAMLText: String {
        if self == rounded(), abs(self) < 1e15 { return String(Int64(self)) }
        return String(self)
    }
}
