import Foundation
import Yams

/// What models cost, per million tokens in and out: the worker's price table (`AGENTRY_LLM_PRICES`, `agentry worker
/// --llm-prices FILE`), from which a run's cost is computed when its handler reports tokens and a model but no cost.
///
/// ```yaml
/// currency: USD                # optional; default USD
/// models:
///   gpt-4o-mini: {input_per_million: 0.15, output_per_million: 0.60}
///   "llama3*": {input_per_million: 0, output_per_million: 0}     # a trailing * matches a prefix
/// ```
///
/// A model's price is its exact entry, else the longest prefix entry that matches it (so `gpt-4o-mini-2024-07-18`,
/// as OpenAI names the model that answered, finds `gpt-4o*`).
public struct LLMPriceTable: Sendable, Hashable {
    public struct Price: Sendable, Hashable {
        public var inputPerMillion: Double
        public var outputPerMillion: Double

        public init(inputPerMillion: Double, outputPerMillion: Double) {
            self.inputPerMillion = inputPerMillion
            self.outputPerMillion = outputPerMillion
        }
    }

    /// An ISO 4217 code; default `USD`.
    public var currency: String
    /// By model name, or by prefix for a name that ends in `*`.
    public var models: [String: Price]

    public init(currency: String = RunUsage.defaultCurrency, models: [String: Price]) {
        self.currency = currency
        self.models = models
    }

    /// The price of `model`: its exact entry, else the longest matching prefix entry; nil when none matches.
    public func price(for model: String) -> Price? {
        if let exact = models[model] { return exact }
        var best: (length: Int, price: Price)?
        for (pattern, price) in models where pattern.hasSuffix("*") {
            let prefix = pattern.dropLast()
            if model.hasPrefix(prefix), prefix.count >= (best?.length ?? -1) { best = (prefix.count, price) }
        }
        return best?.price
    }

    /// The cost of `usage` by this table: nil unless it names a model the table prices and counts tokens (a count it
    /// lacks counts as 0).
    public func cost(of usage: RunUsage) -> Double? {
        guard let model = usage.model, usage.inputTokens != nil || usage.outputTokens != nil, let price = price(for: model) else { return nil }
        return (Double(usage.inputTokens ?? 0) * price.inputPerMillion + Double(usage.outputTokens ?? 0) * price.outputPerMillion) / 1_000_000
    }

    /// Reads the table from a file, naming the file, line and column of every problem.
    public static func load(path: String) throws(LLMPriceTableError) -> LLMPriceTable {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw LLMPriceTableError(problems: ["\(path): cannot read the price table: \(error.localizedDescription)"])
        }
        return try parse(yaml: text, file: path)
    }

    /// Reads the table from YAML; every problem is reported, each with its place.
    public static func parse(yaml: String, file: String? = nil) throws(LLMPriceTableError) -> LLMPriceTable {
        let name = file ?? "the price table"
        var problems: [String] = []
        func report(_ node: Node?, _ message: String) {
            let place = node?.mark.map { ":\($0.line):\($0.column)" } ?? ""
            problems.append("\(name)\(place): \(message)")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw LLMPriceTableError(problems: ["\(name): invalid YAML: \(error)"])
        }
        guard let root, case .mapping(let top) = root else {
            throw LLMPriceTableError(problems: [
                "\(name): expected a mapping with currency and models, e.g. 'models: {gpt-4o-mini: {input_per_million: 0.15, output_per_million: 0.6}}'"
            ])
        }
        var currency = RunUsage.defaultCurrency
        var models: [String: Price] = [:]
        var sawModels = false
        for (keyNode, value) in top {
            switch keyNode.string {
            case "currency":
                if let code = value.string, RunUsage.isCurrency(code) {
                    currency = code
                } else {
                    report(value, "currency must be a currency code of three capital letters (USD, EUR), found '\(value.string ?? "a collection")'")
                }
            case "models":
                sawModels = true
                guard case .mapping(let entries) = value else {
                    report(value, "models must be a mapping of model names to {input_per_million, output_per_million}")
                    continue
                }
                for (modelNode, priceNode) in entries {
                    guard let model = modelNode.string, !model.isEmpty else {
                        report(modelNode, "expected a model name")
                        continue
                    }
                    if model.dropLast().contains("*") {
                        report(modelNode, "'\(model)': a * may only end a model name (a prefix), as in 'llama3*'")
                        continue
                    }
                    guard case .mapping(let fields) = priceNode else {
                        report(priceNode, "the price of '\(model)' must be {input_per_million: N, output_per_million: M}")
                        continue
                    }
                    var input: Double?, output: Double?
                    for (fieldNode, amountNode) in fields {
                        let field = fieldNode.string ?? ""
                        guard field == "input_per_million" || field == "output_per_million" else {
                            report(fieldNode, "unknown key '\(field)' in the price of '\(model)'; expected input_per_million, output_per_million")
                            continue
                        }
                        guard case .scalar(let scalar) = amountNode,
                            [.int, .float].contains(Resolver.default.resolveTag(of: Node.scalar(scalar))),
                            let amount = amountNode.float ?? amountNode.int.map(Double.init), amount.isFinite, amount >= 0
                        else {
                            report(
                                amountNode,
                                "\(model).\(field) must be a number, 0 or more (the price of a million tokens), found '\(amountNode.string ?? "a collection")'"
                            )
                            continue
                        }
                        if field == "input_per_million" { input = amount } else { output = amount }
                    }
                    guard let input, let output else {
                        report(priceNode, "the price of '\(model)' needs both input_per_million and output_per_million")
                        continue
                    }
                    models[model] = Price(inputPerMillion: input, outputPerMillion: output)
                }
            default:
                report(keyNode, "unknown key '\(keyNode.string ?? "?")'; expected currency, models")
            }
        }
        if !sawModels { report(root, "missing 'models': a mapping of model names to {input_per_million, output_per_million}") }
        guard problems.isEmpty else { throw LLMPriceTableError(problems: problems) }
        return LLMPriceTable(currency: currency, models: models)
    }
}

/// A price table that cannot be used: each problem with its file, line and column.
public struct LLMPriceTableError: Error, Sendable, CustomStringConvertible {
    public var problems: [String]
    public var description: String { problems.joined(separator: "\n") }
}
