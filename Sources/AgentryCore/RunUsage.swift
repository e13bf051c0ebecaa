import Foundation

/// What one run used, as a handler reports it in its result's `usage` (any handler) or as the `llm` handler reads it
/// from the endpoint's answer: tokens in and out, what they cost and in which currency, and the model. Every field is
/// optional, but a reported usage has at least one. Recorded with the run (one try, one row), shown by `agentry runs
/// show` and the API, and counted by `/metrics` per agent and model.
///
/// ```json
/// {"usage": {"input_tokens": 812, "output_tokens": 96, "cost": 0.00018, "currency": "USD", "model": "gpt-4o-mini"}}
/// ```
public struct RunUsage: Sendable, Hashable {
    public var inputTokens: Int?
    public var outputTokens: Int?
    /// In ``currency``; nil when the handler gave none and no price table knows the model.
    public var cost: Double?
    /// An ISO 4217 code (three capital letters, `USD`, `EUR`); nil when no cost is known.
    public var currency: String?
    public var model: String?

    public init(inputTokens: Int? = nil, outputTokens: Int? = nil, cost: Double? = nil, currency: String? = nil, model: String? = nil) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cost = cost
        self.currency = currency
        self.model = model
    }

    /// The currency of a cost given without one.
    public static let defaultCurrency = "USD"
    /// The keys of `usage`.
    public static let keys = ["input_tokens", "output_tokens", "cost", "currency", "model"]
    /// The longest model name kept (a label of `/metrics`, a column of `task_runs`).
    public static let maxModelLength = 200

    /// Whether nothing is known.
    public var isEmpty: Bool { inputTokens == nil && outputTokens == nil && cost == nil && currency == nil && model == nil }

    /// Reads a result's `usage`. Tokens are whole numbers of at least 0, the cost a finite number of at least 0, the
    /// currency three capital letters (`USD` when a cost comes without one), the model a non-empty name; at least one
    /// of them, and no other key (a misspelt key would otherwise go uncounted).
    public static func parse(_ value: JSONValue) -> Result<RunUsage, Problem> {
        guard case .object(let object) = value else {
            return .failure(Problem("'usage' must be an object such as {\"input_tokens\": 120, \"output_tokens\": 30}, not \(value.kindName)"))
        }
        if let unknown = object.keys.sorted().first(where: { !keys.contains($0) }) {
            return .failure(Problem("usage has an unknown key '\(unknown)'; expected \(keys.joined(separator: ", "))"))
        }
        func tokens(_ key: String) -> Result<Int?, Problem> {
            guard let item = object[key], item != .null else { return .success(nil) }
            let number: Int64? =
                switch item {
                case .int(let n): n
                case .double(let d) where d.isFinite && d == d.rounded() && abs(d) < 1e15: Int64(d)
                default: nil
                }
            guard let number, number >= 0, number <= Int64(Int32.max) * 1024 else {
                return .failure(Problem("usage.\(key) must be a whole number of tokens, 0 or more; found \(JSON.serialize(item))"))
            }
            return .success(Int(number))
        }
        var usage = RunUsage()
        switch tokens("input_tokens") {
        case .success(let n): usage.inputTokens = n
        case .failure(let problem): return .failure(problem)
        }
        switch tokens("output_tokens") {
        case .success(let n): usage.outputTokens = n
        case .failure(let problem): return .failure(problem)
        }
        if let item = object["cost"], item != .null {
            guard let cost = item.numberValue, cost.isFinite, cost >= 0 else {
                return .failure(Problem("usage.cost must be a number, 0 or more; found \(JSON.serialize(item))"))
            }
            usage.cost = cost
        }
        if let item = object["currency"], item != .null {
            guard let code = item.stringValue, isCurrency(code) else {
                return .failure(Problem("usage.currency must be a currency code of three capital letters (USD, EUR); found \(JSON.serialize(item))"))
            }
            usage.currency = code
        }
        if let item = object["model"], item != .null {
            guard let model = item.stringValue, !model.trimmingCharacters(in: .whitespaces).isEmpty, model.count <= maxModelLength else {
                return .failure(Problem("usage.model must be a model name of 1 to \(maxModelLength) characters; found \(JSON.serialize(item))"))
            }
            usage.model = model
        }
        if usage.isEmpty {
            return .failure(Problem("usage has none of \(keys.joined(separator: ", ")); give at least one, or leave usage out"))
        }
        if usage.cost != nil, usage.currency == nil { usage.currency = defaultCurrency }
        return .success(usage)
    }

    /// Three capital letters A–Z.
    public static func isCurrency(_ code: String) -> Bool {
        code.unicodeScalars.count == 3 && code.unicodeScalars.allSatisfy { ("A"..."Z").contains($0) }
    }

    /// As a result's `usage` has it (absent fields left out).
    public var jsonValue: JSONValue {
        var object: JSONObject = [:]
        if let inputTokens { object["input_tokens"] = .int(Int64(inputTokens)) }
        if let outputTokens { object["output_tokens"] = .int(Int64(outputTokens)) }
        if let cost { object["cost"] = .double(cost) }
        if let currency { object["currency"] = .string(currency) }
        if let model { object["model"] = .string(model) }
        return .object(object)
    }

    /// Why a `usage` cannot be used.
    public struct Problem: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }
}
