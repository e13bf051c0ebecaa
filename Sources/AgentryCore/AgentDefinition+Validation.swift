import Foundation
import Yams

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
    public static func parse(
        yaml: String, file: String? = nil,
        vocabulary: AgentVocabulary = .standard
    ) throws(AgentDefinitionError) -> AgentDefinition {
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
            throw AgentDefinitionError(problems: [
                ValidationProblem(
                    file: file, path: "", line: 1, column: 1,
                    message: "the document is empty; expected a mapping with metadata, goal and triggers")
            ])
        }
        if let anchored = YAMLAnchors.firstAnchored(root), let anchor = anchored.anchor {
            throw AgentDefinitionError(problems: [
                reader.anchorProblem(
                    "&\(anchor.rawValue)", line: anchored.mark?.line ?? 1,
                    column: anchored.mark?.column ?? 1)
            ])
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
