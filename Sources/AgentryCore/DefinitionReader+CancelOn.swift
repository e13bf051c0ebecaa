import Foundation
import Yams

extension DefinitionReader {
    /// `cancel_on: [{type, match}]`: `type` an event type or pattern, `match` one path or a non-empty list of paths
    /// (see ``CancelOn``); nil when the value is not a list (each problem reported).
    mutating func cancelOn(_ node: Node) -> [CancelOn]? {
        guard case .sequence(let sequence) = node else {
            report(
                "cancel_on", node,
                "expected a list of cancelling events (each with type and match), found \(Self.describe(node))",
                suggestion: "write cancel_on: [{type: alert.resolved, match: payload.device_id}]")
            return nil
        }
        let keys = CancelOn.CodingKeys.allCases.map(\.rawValue)
        var result: [CancelOn] = []
        for (index, item) in sequence.enumerated() {
            let path = "cancel_on[\(index)]"
            guard let f = mapping(item, path: path, known: keys, what: "a mapping with type and match") else { continue }
            var type = string(f, "type", required: true)
            if let pattern = type, let problem = EventType.patternProblem(with: pattern) {
                report(f.path("type"), f["type"], problem)
                type = nil
            }
            let match = matchPaths(f)
            if let type, let match { result.append(CancelOn(type: type, match: match)) }
        }
        return result
    }

    /// `match`: one path, or a list of at least one; nil after reporting what is wrong.
    private mutating func matchPaths(_ f: Fields) -> [String]? {
        guard let node = value(f, "match", required: true) else { return nil }
        let path = f.path("match")
        var items: [(value: String, node: Node, path: String)] = []
        switch node {
        case .sequence(let sequence):
            guard !sequence.isEmpty else {
                report(path, node, "expected at least one path to compare, found an empty list", suggestion: "write match: payload.device_id")
                return nil
            }
            for (index, item) in sequence.enumerated() {
                let itemPath = "\(path)[\(index)]"
                guard let text = string(item, path: itemPath, what: "a path such as payload.device_id") else { return nil }
                items.append((text, item, itemPath))
            }
        default:
            guard let text = string(node, path: path, what: "a path such as payload.device_id, or a list of paths") else { return nil }
            items.append((text, node, path))
        }
        var complete = true
        var seen = Set<String>()
        for item in items {
            let trimmed = item.value.trimmingCharacters(in: .whitespaces)
            if let problem = CancelOn.pathProblem(trimmed) {
                report(item.path, item.node, problem, suggestion: CancelOn.pathSuggestion(trimmed))
                complete = false
            } else if !seen.insert(trimmed).inserted {
                report(item.path, item.node, "match path '\(trimmed)' appears twice; each path may appear once")
                complete = false
            }
        }
        return complete ? items.map { $0.value.trimmingCharacters(in: .whitespaces) } : nil
    }
}
