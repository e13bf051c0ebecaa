public import AMQP
public import AgentryCore
import Foundation
import Yams

/// RabbitMQ's layout for Agentry: exchanges, queues and bindings, built in (`Sources/AgentryBus/Topology/*.yaml`) or read from `--topology DIR`.
public struct Topology: Sendable, Equatable {
    public var exchanges: [ExchangeDeclaration]
    public var queues: [QueueDeclaration]
    public var bindings: [BindingDeclaration]
    /// Named groups of event-type patterns that agents subscribe to by name (`event_pools:` in an agent definition).
    public var eventPools: [String: [String]]
    /// The skills agents may list (`skills:` in an agent definition), with what each one is.
    public var skills: [String: String]
    /// The webhook sources of `webhooks.yaml` (`POST /api/webhooks/<name>`), which the admin API cannot change.
    public var webhookSources: [WebhookSource]
    /// Budgets of event pools (`pool_budgets:`, next to `event_pools:`): each counts the runs of every agent that lists
    /// the pool under `event_pools`. See ``Budget``.
    public var poolBudgets: [String: [Budget]] = [:]

    public init(
        exchanges: [ExchangeDeclaration] = [], queues: [QueueDeclaration] = [], bindings: [BindingDeclaration] = [],
        eventPools: [String: [String]] = [:], skills: [String: String] = [:], webhookSources: [WebhookSource] = []
    ) {
        self.exchanges = exchanges
        self.queues = queues
        self.bindings = bindings
        self.eventPools = eventPools
        self.skills = skills
        self.webhookSources = webhookSources
    }

    /// The file of the topology directory that holds webhook sources rather than declarations.
    public static let webhooksFile = "webhooks.yaml"

    // MARK: Names (docs/design.md, "Names")

    /// Entry point for every publisher (fanout).
    public static let eventsExchange = "agentry.events"
    /// Routes events to agent queues by type (topic); unroutable events go to ``unroutedExchange``.
    public static let routeExchange = "agentry.route"
    public static let unroutedExchange = "agentry.unrouted"
    public static let deadExchange = "agentry.dead"
    public static let eventLogQueue = "agentry.event-log"
    public static let unhandledQueue = "agentry.unhandled"
    public static let deadQueue = "agentry.dead"
    /// Holds retries until they are due (headers exchange; see ``delayQueue(milliseconds:)``).
    public static let delayExchange = "agentry.delay"
    /// Broadcasts control messages (pause, resume, stop, cancel) to every worker's control queue.
    public static let controlExchange = "agentry.control"
    /// Priority levels of every Agentry queue (AMQP priorities 1 LOW … 4 CRITICAL).
    public static let maxPriority: Int64 = 4

    /// The prefix of every agent's queue name.
    public static let agentQueuePrefix = "agentry.agent."

    /// The queue of one agent: `agentry.agent.<agent-id>`, durable, with priorities.
    public static func agentQueue(_ agentID: String) -> QueueDeclaration {
        QueueDeclaration(name: "\(agentQueuePrefix)\(agentID)", durable: true, arguments: ["x-max-priority": .int(maxPriority)])
    }

    /// The binding that routes events matching `pattern` to an agent's queue.
    /// The queue that holds retries due after `milliseconds`: every message in it waits the same time (so none
    /// waits behind a later one), then is dead-lettered through the default exchange with its routing key, the
    /// agent's queue name, keeping its priority. Unused delay queues expire a minute after their last retry.
    public static func delayQueue(milliseconds: Int) -> QueueDeclaration {
        QueueDeclaration(
            name: "agentry.delay.\(milliseconds)",
            arguments: [
                "x-message-ttl": .int(Int64(milliseconds)), "x-dead-letter-exchange": "",
                "x-expires": .int(Int64(milliseconds) + 60_000),
            ])
    }

    public static func delayBinding(milliseconds: Int) -> BindingDeclaration {
        BindingDeclaration(
            source: delayExchange, destination: .queue("agentry.delay.\(milliseconds)"),
            arguments: ["x-match": "all", "agentry-delay-ms": .string(String(milliseconds))])
    }

    public static func agentBinding(_ agentID: String, pattern: String) -> BindingDeclaration {
        BindingDeclaration(source: routeExchange, destination: .queue(agentQueue(agentID).name), routingKey: pattern)
    }

    // MARK: Loading

    /// The topology to declare: every `*.yaml` / `*.yml` file of `directory` (`--topology`) merged in name order, or
    /// when it is nil the one built into the binary (``builtIn``).
    public static func load(directory: String?) throws -> Topology {
        guard let directory else { return builtIn }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
        } catch {
            throw TopologyError(
                "cannot read the topology directory '\(directory)' (--topology, AGENTRY_TOPOLOGY_DIR); without either, the topology built into agentry is used"
            )
        }
        guard !names.isEmpty else { throw TopologyError("no .yaml files in the topology directory '\(directory)'") }
        return try merge(
            names.map { name in
                (name, try String(contentsOfFile: (directory as NSString).appendingPathComponent(name), encoding: .utf8))
            }, directory: directory)
    }

    /// Merges topology documents (file name, YAML) in name order and validates the whole. `webhooks.yaml` holds the
    /// webhook sources; its problems name the file (in `directory`, when given) with line and column.
    static func merge(_ files: [(name: String, yaml: String)], directory: String? = nil) throws -> Topology {
        var topology = Topology()
        for (name, text) in files.sorted(by: { $0.name < $1.name }) {
            if name == webhooksFile || name == "webhooks.yml" {
                let path = directory.map { ($0 as NSString).appendingPathComponent(name) } ?? name
                do {
                    topology.webhookSources += try WebhookSource.parseFile(yaml: text, file: path)
                } catch {
                    throw TopologyError("\(path) has \(error.problems.count) problem(s):\n\(error.description)")
                }
                continue
            }
            let part = try parse(yaml: text, file: name)
            topology.exchanges += part.exchanges
            topology.queues += part.queues
            topology.bindings += part.bindings
            for (name, patterns) in part.eventPools {
                if topology.eventPools[name] != nil { throw TopologyError("\(name): event pool '\(name)' is declared in two files") }
                topology.eventPools[name] = patterns
            }
            for (name, budgets) in part.poolBudgets {
                if topology.poolBudgets[name] != nil { throw TopologyError("\(name): the budgets of pool '\(name)' are declared in two files") }
                topology.poolBudgets[name] = budgets
            }
            for (name, description) in part.skills {
                if topology.skills[name] != nil { throw TopologyError("\(name): skill '\(name)' is declared in two files") }
                topology.skills[name] = description
            }
        }
        for name in topology.poolBudgets.keys.sorted() where topology.eventPools[name] == nil {
            throw TopologyError(
                "pool_budgets.\(name): no event pool '\(name)' is declared (pools: \(topology.eventPools.keys.sorted().joined(separator: ", ")))")
        }
        let names = topology.webhookSources.map(\.name)
        if let twice = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
            throw TopologyError("webhook source '\(twice)' is declared in both webhooks.yaml and webhooks.yml")
        }
        try topology.validate()
        return topology
    }

    /// Parses one topology document.
    public static func parse(yaml: String, file: String = "topology") throws -> Topology {
        let document: TopologyDocument
        do {
            document = try YAMLDecoder().decode(TopologyDocument.self, from: yaml)
        } catch let error as DecodingError {
            throw TopologyError("\(file): \(describe(error))")
        } catch {
            throw TopologyError("\(file): \(error)")
        }
        var topology = Topology()
        for (index, e) in (document.exchanges ?? []).enumerated() {
            guard let kind = ExchangeDeclaration.Kind(rawValue: e.type) else {
                throw TopologyError("\(file): exchanges[\(index)] '\(e.name)' has type '\(e.type)'; expected direct, fanout, topic or headers")
            }
            topology.exchanges.append(
                ExchangeDeclaration(
                    name: e.name, kind: kind, durable: e.durable ?? true, autoDelete: e.auto_delete ?? false,
                    internal: e.internal ?? false, arguments: (e.arguments ?? [:]).mapValues(\.amqp)))
        }
        for q in document.queues ?? [] {
            topology.queues.append(
                QueueDeclaration(
                    name: q.name, durable: q.durable ?? true, exclusive: false, autoDelete: q.auto_delete ?? false,
                    arguments: (q.arguments ?? [:]).mapValues(\.amqp)))
        }
        for (index, b) in (document.bindings ?? []).enumerated() {
            let destination: BindingDeclaration.Destination
            switch b.destination_type ?? "queue" {
            case "queue": destination = .queue(b.destination)
            case "exchange": destination = .exchange(b.destination)
            case let other: throw TopologyError("\(file): bindings[\(index)] has destination_type '\(other)'; expected queue or exchange")
            }
            topology.bindings.append(
                BindingDeclaration(
                    source: b.source, destination: destination, routingKey: b.routing_key ?? "",
                    arguments: (b.arguments ?? [:]).mapValues(\.amqp)))
        }
        for (name, patterns) in document.event_pools ?? [:] {
            guard !patterns.isEmpty else { throw TopologyError("\(file): event pool '\(name)' has no patterns") }
            for pattern in patterns {
                if let problem = EventType.patternProblem(with: pattern) {
                    throw TopologyError("\(file): event_pools.\(name): \(problem)")
                }
            }
            topology.eventPools[name] = patterns
        }
        for (name, items) in document.pool_budgets ?? [:] {
            topology.poolBudgets[name] = try items.enumerated().map { index, item in
                try item.budget(at: "\(file): pool_budgets.\(name)[\(index)]")
            }
        }
        topology.skills = document.skills ?? [:]
        return topology
    }

    /// Checks that names are unique and that bindings refer to what is declared (or to an agent queue).
    public func validate() throws {
        var problems: [String] = []
        let exchangeNames = exchanges.map(\.name)
        let queueNames = queues.map(\.name)
        for name in Set(exchangeNames) where exchangeNames.filter({ $0 == name }).count > 1 {
            problems.append("exchange '\(name)' is declared twice")
        }
        for name in Set(queueNames) where queueNames.filter({ $0 == name }).count > 1 { problems.append("queue '\(name)' is declared twice") }
        for name in exchangeNames + queueNames where !name.hasPrefix("agentry.") {
            problems.append("'\(name)' does not start with 'agentry.' (the management UI groups Agentry's objects by that prefix)")
        }
        for b in bindings {
            if !exchangeNames.contains(b.source) { problems.append("binding from '\(b.source)': no such exchange in the topology") }
            switch b.destination {
            case .queue(let q) where !queueNames.contains(q): problems.append("binding to queue '\(q)': no such queue in the topology")
            case .exchange(let e) where !exchangeNames.contains(e): problems.append("binding to exchange '\(e)': no such exchange in the topology")
            default: break
            }
        }
        for e in exchanges {
            if case .string(let alternate)? = e.arguments["alternate-exchange"], !exchangeNames.contains(alternate) {
                problems.append("exchange '\(e.name)' names alternate-exchange '\(alternate)', which is not in the topology")
            }
        }
        if !problems.isEmpty { throw TopologyError(problems.joined(separator: "; ")) }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context.codingPath + [key])) is missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

/// A topology that cannot be read or declared, with what to do about it.
public struct TopologyError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

private struct TopologyDocument: Decodable {
    struct Exchange: Decodable {
        var name: String
        var type: String
        var durable: Bool?
        var auto_delete: Bool?
        var `internal`: Bool?
        var arguments: [String: Scalar]?
    }
    struct Queue: Decodable {
        var name: String
        var durable: Bool?
        var auto_delete: Bool?
        var arguments: [String: Scalar]?
    }
    struct Binding: Decodable {
        var source: String
        var destination: String
        var destination_type: String?
        var routing_key: String?
        var arguments: [String: Scalar]?
    }
    var exchanges: [Exchange]?
    var queues: [Queue]?
    var bindings: [Binding]?
    var event_pools: [String: [String]]?
    var pool_budgets: [String: [PoolBudget]]?
    var skills: [String: String]?

    struct PoolBudget: Decodable {
        var limit: Double
        var unit: String
        var per: String
        var on_exceeded: String?
        var warn_at: Double?
        var estimate: Double?
        var currency: String?

        func budget(at path: String) throws -> Budget {
            guard limit > 0 else { throw TopologyError("\(path).limit: expected a positive amount") }
            guard let unit = Budget.Unit(rawValue: unit) else { throw TopologyError("\(path).unit: expected tokens or cost, found '\(unit)'") }
            guard let per = Budget.Period(rawValue: per) else { throw TopologyError("\(path).per: expected hour, day or month, found '\(per)'") }
            var budget = Budget(limit: limit, unit: unit, per: per)
            if let name = on_exceeded {
                guard let policy = Budget.Policy(rawValue: name) else {
                    throw TopologyError("\(path).on_exceeded: expected defer, reject or pause, found '\(name)'")
                }
                budget.onExceeded = policy
            }
            if let share = warn_at {
                guard (0...1).contains(share) else { throw TopologyError("\(path).warn_at: expected a share from 0 to 1") }
                budget.warnAt = share
            }
            budget.estimate = estimate
            if let currency { budget.currency = currency }
            return budget
        }
    }

    enum Scalar: Decodable {
        case int(Int64), bool(Bool), string(String)
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let v = try? c.decode(Int64.self) {
                self = .int(v)
            } else if let v = try? c.decode(Bool.self) {
                self = .bool(v)
            } else {
                self = .string(try c.decode(String.self))
            }
        }
        var amqp: AMQPValue {
            switch self {
            case .int(let v): return .int(v)
            case .bool(let v): return .bool(v)
            case .string(let v): return .string(v)
            }
        }
    }
}
