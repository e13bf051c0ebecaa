import AgentryCore
import AgentryStore
import Foundation

/// A run's delegated tasks as `agentry runs show` prints them: one line per child, its own children indented below.
enum RunTree {
    /// How deep the printed tree goes below the run (the delegation depth limit bounds real trees anyway).
    static let maxLevels = 8

    static func lines(of runID: UUID, store: RuntimeStore, level: Int = 1) async throws -> [String] {
        guard level <= maxLevels else { return [] }
        var lines: [String] = []
        for child in try await store.delegations.children(of: runID) {
            let indent = String(repeating: "  ", count: level)
            let run = child.childRunID.map { "run \($0.uuidString.lowercased())" } ?? "no run yet"
            let waited = child.awaited ? "" : ", not awaited"
            var line =
                "\(indent)#\(child.position) \(child.task) → \(child.agentID) \(child.agentVersion) (\(child.versionRange)\(waited))  \(child.state.rawValue)  \(run)"
            if let message = child.message, child.state != .succeeded { line += "  \(message)" }
            lines.append(line)
            if let childRun = child.childRunID { lines += try await Self.lines(of: childRun, store: store, level: level + 1) }
        }
        return lines
    }
}
