import Foundation

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

    public init(
        file: String? = nil, path: String, line: Int? = nil, column: Int? = nil, message: String,
        suggestion: String? = nil
    ) {
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
