import Foundation
import Yams

extension DefinitionReader {
    // MARK: budgets and flow

    /// A list of ``Budget``s (an agent's `budgets`, or an event pool's in the topology).
    mutating func budgets(_ node: Node, path: String) -> [Budget] {
        guard case .sequence(let items) = node else {
            report(path, node, "expected a list of budgets (each with limit, unit and per), found \(Self.describe(node))")
            return []
        }
        var budgets: [Budget] = []
        var seen: [String: String] = [:]
        for (index, item) in items.enumerated() {
            let itemPath = "\(path)[\(index)]"
            guard let budget = budget(item, path: itemPath) else { continue }
            let identity = "\(budget.unit.rawValue) per \(budget.per.rawValue)"
            if let first = seen[identity] {
                report(itemPath, item, "a second budget of \(identity) (the first is \(first)); keep one")
                continue
            }
            seen[identity] = itemPath
            budgets.append(budget)
        }
        return budgets
    }

    private mutating func budget(_ node: Node, path: String) -> Budget? {
        guard let f = mapping(node, path: path, known: Budget.CodingKeys.allCases.map(\.rawValue)) else { return nil }
        let limit = double(f, "limit")
        if f["limit"] == nil { report(f.path("limit"), node, "missing required field 'limit'") }
        if let limit, limit <= 0 { report(f.path("limit"), f["limit"], "expected a positive amount, found \(limit.agentYAMLText)") }
        let unit: Budget.Unit? = choice(f, "unit", required: true)
        let per: Budget.Period? = choice(f, "per", required: true)
        let policy: Budget.Policy = choice(f, "on_exceeded", required: false) ?? .defer
        var budget = Budget(limit: max(limit ?? 1, .leastNonzeroMagnitude), unit: unit ?? .tokens, per: per ?? .day, onExceeded: policy)
        if let share = double(f, "warn_at") {
            if (0...1).contains(share) {
                budget.warnAt = share
            } else {
                report(f.path("warn_at"), f["warn_at"], "expected a share of the limit from 0 (no warning) to 1, found \(share.agentYAMLText)")
            }
        }
        if let estimate = double(f, "estimate") {
            if estimate >= 0 {
                budget.estimate = estimate
            } else {
                report(f.path("estimate"), f["estimate"], "expected an amount of at least 0, found \(estimate.agentYAMLText)")
            }
        }
        if let currency = string(f, "currency", required: false) {
            if unit == .tokens {
                report(f.path("currency"), f["currency"], "a token budget has no currency", suggestion: "remove currency, or use unit: cost")
            } else if currency.count == 3, currency.allSatisfy({ $0.isASCII && $0.isUppercase }) {
                budget.currency = currency
            } else {
                report(f.path("currency"), f["currency"], "expected a three-letter currency code such as USD, found '\(currency)'")
            }
        }
        guard limit != nil, limit! > 0, unit != nil, per != nil else { return nil }
        return budget
    }

    mutating func flow(_ node: Node) -> FlowControl? {
        guard let f = mapping(node, path: "flow", known: FlowControl.CodingKeys.allCases.map(\.rawValue)) else { return nil }
        var flow = FlowControl()
        if let key = string(f, "key", required: false) {
            if EventTemplate.scan(key).references.isEmpty {
                report(
                    f.path("key"), f["key"], "the key '\(key)' holds no template, so every event would have the same key",
                    suggestion: "use a template such as \"{{payload.device_id}}\", or remove key to limit the whole agent")
            }
            checkTemplates(key, node: f["key"]!, path: f.path("key"))
            flow.key = key
        }
        if let n = int(f, "concurrency", positive: true) {
            if flow.key == nil {
                report(
                    f.path("concurrency"), f["concurrency"], "concurrency limits runs per key, and flow has no key",
                    suggestion: "add key (e.g. \"{{payload.device_id}}\"), or use config.max_parallel_tasks for the whole agent")
            } else {
                flow.concurrency = n
            }
        }
        if let rateNode = value(f, "rate", required: false),
            let r = mapping(rateNode, path: "flow.rate", known: FlowControl.RateLimit.CodingKeys.allCases.map(\.rawValue))
        {
            let limit = int(r, "limit", positive: true)
            if r["limit"] == nil { report(r.path("limit"), rateNode, "missing required field 'limit'") }
            let per: FlowControl.RateLimit.Per? = choice(r, "per", required: true)
            let scope: FlowControl.RateLimit.Scope? = choice(r, "scope", required: false)
            if scope == .key, flow.key == nil {
                report(r.path("scope"), r["scope"], "scope: key needs flow.key", suggestion: "add key, or use scope: agent")
            }
            if let limit, let per { flow.rate = FlowControl.RateLimit(limit: limit, per: per, scope: scope) }
        }
        for (key, path) in [("debounce_seconds", \FlowControl.debounceSeconds), ("expire_after_seconds", \FlowControl.expireAfterSeconds)] {
            guard let seconds = double(f, key) else { continue }
            if seconds > 0 && seconds <= 86400 * 31 {
                flow[keyPath: path] = seconds
            } else {
                report(f.path(key), f[key], "expected a positive number of seconds up to 31 days (2678400), found \(seconds.agentYAMLText)")
            }
        }
        return flow
    }

    /// One of an enumeration's raw values, with a "did you mean" for a near miss.
    private mutating func choice<T: RawRepresentable & CaseIterable>(_ f: Fields, _ key: String, required: Bool) -> T?
    where T.RawValue == String {
        guard let text = string(f, key, required: required) else { return nil }
        if let value = T(rawValue: text) { return value }
        let names = T.allCases.map(\.rawValue)
        report(
            f.path(key), f[key], "expected one of \(names.joined(separator: ", ")); found '\(text)'",
            suggestion: Suggest.didYouMean(text, among: names))
        return nil
    }
}

extension YAMLWriter {
    static func budget(_ b: Budget) -> Node {
        var pairs: [(String, Node)] = [
            ("limit", number(b.limit)), ("unit", string(b.unit.rawValue)), ("per", string(b.per.rawValue)),
            ("on_exceeded", string(b.onExceeded.rawValue)), ("warn_at", number(b.warnAt)),
        ]
        if let estimate = b.estimate { pairs.append(("estimate", number(estimate))) }
        if b.unit == .cost { pairs.append(("currency", string(b.currency))) }
        return mapping(pairs)
    }

    static func flow(_ f: FlowControl) -> Node {
        var pairs: [(String, Node)] = []
        if let key = f.key { pairs.append(("key", string(key))) }
        if let n = f.concurrency { pairs.append(("concurrency", int(n))) }
        if let rate = f.rate {
            var r: [(String, Node)] = [("limit", int(rate.limit)), ("per", string(rate.per.rawValue))]
            if let scope = rate.scope { r.append(("scope", string(scope.rawValue))) }
            pairs.append(("rate", mapping(r)))
        }
        if let s = f.debounceSeconds { pairs.append(("debounce_seconds", number(s))) }
        if let s = f.expireAfterSeconds { pairs.append(("expire_after_seconds", number(s))) }
        return mapping(pairs)
    }
}
