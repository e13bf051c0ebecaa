public import AMQP
import AgentryCore
import Foundation

extension Topology {
    /// What `apply` did to one object.
    public struct Change: Sendable, Equatable, CustomStringConvertible {
        public enum Action: Sendable, Equatable, CustomStringConvertible {
            case created, unchanged, bound
            /// Declared again with the topology's arguments, its messages moved over.
            case redeclared(moved: Int)

            public var description: String {
                switch self {
                case .created: return "created"
                case .unchanged: return "unchanged"
                case .bound: return "bound"
                case .redeclared(let moved): return "declared again with the topology's arguments (\(moved) messages moved)"
                }
            }
        }
        public var kind: String
        public var name: String
        public var action: Action
        public var description: String { "\(kind) \(name): \(action)" }
    }

    /// Declares everything, idempotently: existing objects with the same settings are left as they are. An object
    /// that exists with different settings stops the run with an error naming it and the differing argument.
    public func apply(on connection: AMQPConnection) async throws -> [Change] {
        var changes: [Change] = []
        for exchange in exchanges {
            let existed = try await connection.exchangeExists(exchange.name)
            do {
                try await connection.declare(exchange)
            } catch let error as AMQPError where error.replyCode == 406 {
                throw TopologyError(
                    "exchange '\(exchange.name)' already exists with other settings than the topology's (type \(exchange.kind.rawValue), arguments \(exchange.arguments)): \(error.replyText ?? "\(error)"). Delete it (rabbitmqctl delete_exchange is not available; use the management UI) or align the topology (--topology DIR)."
                )
            }
            changes.append(Change(kind: "exchange", name: exchange.name, action: existed ? .unchanged : .created))
        }
        for queue in queues {
            let existed = try await connection.queueExists(queue.name)
            do {
                try await connection.declare(queue)
            } catch let error as AMQPError where error.replyCode == 406 && Self.movableQueues.contains(queue.name) {
                // Arguments cannot change on an existing queue: its messages move to one declared anew.
                let moved = try await redeclare(queue, on: connection)
                changes.append(Change(kind: "queue", name: queue.name, action: .redeclared(moved: moved)))
                continue
            } catch let error as AMQPError where error.replyCode == 406 {
                throw TopologyError(
                    "queue '\(queue.name)' already exists with other settings than the topology's (arguments \(queue.arguments)): \(error.replyText ?? "\(error)"). Delete it (rabbitmqctl delete_queue \(queue.name)) or align the topology (--topology DIR)."
                )
            }
            changes.append(Change(kind: "queue", name: queue.name, action: existed ? .unchanged : .created))
        }
        for binding in bindings {
            try await connection.bind(binding)
            changes.append(Change(kind: "binding", name: "\(binding.source) -> \(binding.destination.name) [\(binding.routingKey)]", action: .bound))
        }
        return changes
    }

    /// RabbitMQ definitions JSON (the format of the management UI's export and `rabbitmqctl import_definitions`).
    public func definitionsJSON(virtualHost: String = "/") -> String {
        func arguments(_ table: AMQPTable) -> JSONValue {
            .object(
                table.mapValues { value -> JSONValue in
                    switch value {
                    case .int(let v): return .int(v)
                    case .bool(let v): return .bool(v)
                    case .double(let v): return .double(v)
                    case .string(let v): return .string(v)
                    default: return .string(value.description)
                    }
                })
        }
        let document: JSONValue = .object([
            "exchanges": .array(
                exchanges.map { e -> JSONValue in
                    .object([
                        "name": .string(e.name), "vhost": .string(virtualHost), "type": .string(e.kind.rawValue), "durable": .bool(e.durable),
                        "auto_delete": .bool(e.autoDelete), "internal": .bool(e.internal), "arguments": arguments(e.arguments),
                    ])
                }),
            "queues": .array(
                queues.map { q -> JSONValue in
                    .object([
                        "name": .string(q.name), "vhost": .string(virtualHost), "durable": .bool(q.durable), "auto_delete": .bool(q.autoDelete),
                        "arguments": arguments(q.arguments),
                    ])
                }),
            "bindings": .array(
                bindings.map { b -> JSONValue in
                    let type: String
                    switch b.destination {
                    case .queue: type = "queue"
                    case .exchange: type = "exchange"
                    }
                    return .object([
                        "source": .string(b.source), "vhost": .string(virtualHost), "destination": .string(b.destination.name),
                        "destination_type": .string(type), "routing_key": .string(b.routingKey), "arguments": arguments(b.arguments),
                    ])
                }),
        ])
        return JSON.serializePretty(document)
    }
}
