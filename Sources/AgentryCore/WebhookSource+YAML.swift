import Foundation
import Yams

extension WebhookSource {
    /// The keys of one source.
    public static let keys = [
        "scheme", "secret_env", "type", "priority", "payload", "signature_header", "timestamp_header", "max_body_kb",
    ]

    /// The sources of a `webhooks.yaml`: `sources:` mapping each name to its settings. An empty document, or one
    /// whose `sources` is empty or null, has none. Every problem is reported at once, with its line and column.
    public static func parseFile(yaml: String, file: String? = nil) throws(WebhookSourceError) -> [WebhookSource] {
        var reader = DefinitionReader(file: file, vocabulary: .standard)
        guard let root = try compose(yaml, reader: &reader) else { return [] }
        var sources: [WebhookSource] = []
        if let fields = reader.mapping(root, path: "", known: ["sources"], what: "a mapping with 'sources'"),
            let node = reader.value(fields, "sources", required: false)
        {
            if case .mapping(let mapping) = node {
                for (keyNode, value) in mapping {
                    guard let name = reader.string(keyNode, path: "sources", what: "a source name") else { continue }
                    if let problem = nameProblem(name) {
                        reader.report("sources.\(name)", keyNode, problem)
                        continue
                    }
                    if let source = reader.webhookSource(value, name: name, path: "sources.\(name)") { sources.append(source) }
                }
            } else {
                reader.report("sources", node, "expected a mapping of source names to their settings, found \(DefinitionReader.describe(node))")
            }
        }
        try throwProblems(reader)
        return sources
    }

    /// One source's settings (a JSON or YAML mapping, as `PUT /api/webhooks/{source}` takes them).
    public static func parse(yaml: String, name: String, file: String? = nil) throws(WebhookSourceError) -> WebhookSource {
        var reader = DefinitionReader(file: file, vocabulary: .standard)
        if let problem = nameProblem(name) { throw WebhookSourceError(problems: [ValidationProblem(file: file, path: "", message: problem)]) }
        guard let root = try compose(yaml, reader: &reader) else {
            throw WebhookSourceError(problems: [
                ValidationProblem(
                    file: file, path: "", line: 1, column: 1, message: "the document is empty; expected a mapping with scheme, secret_env and type")
            ])
        }
        let source = reader.webhookSource(root, name: name, path: "")
        try throwProblems(reader)
        guard let source else { throw WebhookSourceError(problems: [ValidationProblem(file: file, path: "", message: "the source is incomplete")]) }
        return source
    }

    /// The source as the JSON `PUT` takes and the API shows (without `name`).
    public func jsonValue() -> JSONValue {
        var object: JSONObject = [
            "scheme": .string(scheme.rawValue), "secret_env": .string(secretEnv), "type": .string(type),
            "priority": .string(priority.name.lowercased()), "max_body_kb": .int(Int64(maxBodyKB)),
        ]
        if let payload { object["payload"] = .object(payload) }
        if scheme == .hmacSHA256 {
            object["signature_header"] = .string(signatureHeader)
            object["timestamp_header"] = .string(timestampHeader)
        }
        return .object(object)
    }

    private static func compose(_ yaml: String, reader: inout DefinitionReader) throws(WebhookSourceError) -> Node? {
        if let anchor = YAMLAnchors.firstAnchor(in: yaml) {
            throw WebhookSourceError(problems: [
                ValidationProblem(
                    file: reader.file, path: "", line: anchor.line, column: anchor.column,
                    message: "YAML anchors and aliases are not accepted (found anchor '\(anchor.text)'); write the repeated values out in full")
            ])
        }
        do {
            return try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw WebhookSourceError(problems: [reader.syntaxProblem(error, yaml: yaml)])
        } catch {
            throw WebhookSourceError(problems: [ValidationProblem(file: reader.file, path: "", message: "invalid YAML: \(error)")])
        }
    }

    private static func throwProblems(_ reader: DefinitionReader) throws(WebhookSourceError) {
        guard !reader.problems.isEmpty else { return }
        let ordered = reader.problems.enumerated().sorted { lhs, rhs in
            (lhs.element.line ?? Int.max, lhs.element.column ?? Int.max, lhs.offset) < (
                rhs.element.line ?? Int.max, rhs.element.column ?? Int.max, rhs.offset
            )
        }.map(\.element)
        throw WebhookSourceError(problems: ordered)
    }
}

extension DefinitionReader {
    /// One source's settings, reporting every problem.
    mutating func webhookSource(_ node: Node, name: String, path: String) -> WebhookSource? {
        guard let f = mapping(node, path: path, known: WebhookSource.keys, what: "a mapping with scheme, secret_env and type") else { return nil }
        var scheme: WebhookSource.Scheme?
        if let node = value(f, "scheme", required: true), let text = string(node, path: f.path("scheme")) {
            scheme = WebhookSource.Scheme(rawValue: text)
            if scheme == nil {
                let names = WebhookSource.Scheme.allCases.map(\.rawValue)
                report(
                    f.path("scheme"), node, "expected one of \(names.joined(separator: ", ")); found '\(text)'",
                    suggestion: Suggest.didYouMean(text, among: names))
            }
        }
        let secretEnv = string(f, "secret_env", required: true)
        if let secretEnv, let problem = WebhookSource.environmentNameProblem(secretEnv) { report(f.path("secret_env"), f["secret_env"], problem) }
        let type = string(f, "type", required: true)
        if let type, let node = f["type"] { checkWebhookTemplates(type, node: node, path: f.path("type")) }
        if let type, WebhookSource.scanTemplates(type).isEmpty, let problem = EventType.problem(with: type) {
            report(f.path("type"), f["type"], problem)
        }
        var priority = Priority.normal
        if let node = value(f, "priority", required: false) { priority = self.priority(node, path: f.path("priority")) ?? priority }
        var payload: JSONObject?
        if let node = value(f, "payload", required: false) {
            payload = jsonObject(f, "payload")
            checkWebhookTemplates(in: node, path: f.path("payload"))
        }
        let headers = ["signature_header", "timestamp_header"].map { key -> String? in
            guard let text = string(f, key, required: false) else { return nil }
            if let problem = WebhookSource.headerNameProblem(text) { report(f.path(key), f[key], problem) }
            if scheme != nil && scheme != .hmacSHA256 { report(f.path(key), f[key], "'\(key)' applies to scheme hmac-sha256 only") }
            return text
        }
        let maxBody = int(f, "max_body_kb", positive: true)
        if let maxBody, maxBody > WebhookSource.largestMaxBodyKB {
            report(f.path("max_body_kb"), f["max_body_kb"], "expected at most \(WebhookSource.largestMaxBodyKB) (25 MiB), found \(maxBody)")
        }
        guard let scheme, let secretEnv, let type else { return nil }
        return WebhookSource(
            name: name, secretEnv: secretEnv, scheme: scheme, type: type, priority: priority, payload: payload,
            signatureHeader: headers[0] ?? WebhookSource.defaultSignatureHeader, timestampHeader: headers[1] ?? WebhookSource.defaultTimestampHeader,
            maxBodyKB: maxBody ?? WebhookSource.defaultMaxBodyKB)
    }

    private mutating func checkWebhookTemplates(_ text: String, node: Node, path: String) {
        for problem in WebhookSource.templateProblems(text) {
            report(path, node, problem.message, columnOffset: Self.columnOffset(of: problem.offset, in: text, node: node))
        }
    }

    private mutating func checkWebhookTemplates(in node: Node, path: String) {
        switch node {
        case .scalar(let scalar): checkWebhookTemplates(scalar.string, node: node, path: path)
        case .sequence(let items): for (index, item) in items.enumerated() { checkWebhookTemplates(in: item, path: "\(path)[\(index)]") }
        case .mapping(let mapping): for (key, value) in mapping { checkWebhookTemplates(in: value, path: "\(path).\(key.string ?? "")") }
        case .alias: break
        }
    }
}
