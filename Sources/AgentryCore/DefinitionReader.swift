import Foundation
import Yams

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

    mutating func report(
        _ path: String, _ node: Node?, _ message: String, suggestion: String? = nil,
        columnOffset: Int = 0
    ) {
        let mark = node?.mark
        problems.append(
            ValidationProblem(
                file: file, path: path, line: mark?.line,
                column: mark.map { $0.column + columnOffset },
                message: message, suggestion: suggestion))
    }

    /// YAML anchors and aliases are refused: an alias repeats a node, and a few of them nested can stand for
    /// billions of nodes.
    func anchorProblem(_ anchor: String, line: Int, column: Int) -> ValidationProblem {
        ValidationProblem(
            file: file, path: "", line: line, column: column,
            message:
                "YAML anchors and aliases are not accepted in agent definitions (found anchor '\(anchor)'); write the repeated values out in full")
    }

    func syntaxProblem(_ error: YamlError, yaml: String) -> ValidationProblem {
        func contextText(_ context: YamlError.Context?) -> String {
            guard let context else { return "" }
            return " (\(context.text) at line \(context.mark.line), column \(context.mark.column))"
        }
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
            let .composer(context, problem, mark, _):
            return ValidationProblem(
                file: file, path: "", line: mark.line, column: mark.column,
                message: "invalid YAML: \(problem)\(contextText(context))")
        case let .reader(problem, offset, _, _):
            var line: Int?, column: Int?
            if let offset {
                let prefix = yaml.utf8.prefix(offset)
                line = prefix.count(where: { $0 == UInt8(ascii: "\n") }) + 1
                let lastLine = prefix.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).last ?? []
                column = String(decoding: lastLine, as: UTF8.self).unicodeScalars.count + 1
            }
            return ValidationProblem(
                file: file, path: "", line: line, column: column,
                message: "invalid YAML: \(problem)")
        case let .duplicatedKeysInMapping(duplicates, context):
            let keys = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
            return ValidationProblem(
                file: file, path: "", line: context.mark.line, column: context.mark.column,
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
                report(
                    path.isEmpty ? key : "\(path).\(key)", keyNode,
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
            let number = node.float ?? node.int.map(Double.init), number.isFinite
        else {
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
        report(
            path, node, "expected one of \(names.joined(separator: ", ")); found '\(name)'",
            suggestion: Suggest.didYouMean(name, among: names))
        return nil
    }

    /// Checks the templates in a string scalar, pointing at the template itself when the scalar sits on one line.
    mutating func checkTemplates(_ text: String, node: Node, path: String, wholePayload: Bool = false) {
        let found = EventTemplate.scan(text, wholePayload: wholePayload)
        for problem in found.problems {
            report(
                path, node, problem.message, suggestion: problem.suggestion,
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
}
