/// An exchange to declare.
public struct ExchangeDeclaration: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case direct, fanout, topic, headers
    }
    public var name: String
    public var kind: Kind
    public var durable: Bool
    public var autoDelete: Bool
    public var `internal`: Bool
    public var arguments: AMQPTable

    public init(name: String, kind: Kind, durable: Bool = true, autoDelete: Bool = false, internal: Bool = false, arguments: AMQPTable = [:]) {
        self.name = name
        self.kind = kind
        self.durable = durable
        self.autoDelete = autoDelete
        self.internal = `internal`
        self.arguments = arguments
    }
}

/// A queue to declare.
public struct QueueDeclaration: Sendable, Hashable {
    public var name: String
    public var durable: Bool
    public var exclusive: Bool
    public var autoDelete: Bool
    public var arguments: AMQPTable

    public init(name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false, arguments: AMQPTable = [:]) {
        self.name = name
        self.durable = durable
        self.exclusive = exclusive
        self.autoDelete = autoDelete
        self.arguments = arguments
    }
}

/// A binding of a queue or an exchange to a source exchange.
public struct BindingDeclaration: Sendable, Hashable {
    public enum Destination: Sendable, Hashable {
        case queue(String)
        case exchange(String)

        public var name: String {
            switch self {
            case .queue(let n), .exchange(let n): return n
            }
        }
    }
    public var source: String
    public var destination: Destination
    public var routingKey: String
    public var arguments: AMQPTable

    public init(source: String, destination: Destination, routingKey: String = "", arguments: AMQPTable = [:]) {
        self.source = source
        self.destination = destination
        self.routingKey = routingKey
        self.arguments = arguments
    }
}

/// What a queue holds right now, from a (passive) declare.
public struct QueueStatus: Sendable, Hashable {
    public var name: String
    /// Messages ready for delivery (not counting unacknowledged ones).
    public var messageCount: UInt32
    public var consumerCount: UInt32
}

/// The declarations a connection has made, replayed in order after a reconnect.
struct TopologyRecord {
    enum Entry: Hashable {
        case exchange(ExchangeDeclaration)
        case queue(QueueDeclaration)
        case binding(BindingDeclaration)
    }
    private(set) var entries: [Entry] = []

    mutating func record(_ entry: Entry) {
        switch entry {
        case .exchange(let e):
            entries.removeAll { if case .exchange(let old) = $0 { return old.name == e.name } else { return false } }
        case .queue(let q):
            entries.removeAll { if case .queue(let old) = $0 { return old.name == q.name } else { return false } }
        case .binding(let b):
            entries.removeAll { $0 == .binding(b) }
        }
        entries.append(entry)
    }

    mutating func removeBinding(_ binding: BindingDeclaration) {
        entries.removeAll { $0 == .binding(binding) }
    }

    mutating func removeQueue(_ name: String) {
        entries.removeAll {
            switch $0 {
            case .queue(let q): return q.name == name
            case .binding(let b): return b.destination == .queue(name)
            case .exchange: return false
            }
        }
    }

    mutating func removeExchange(_ name: String) {
        entries.removeAll {
            switch $0 {
            case .exchange(let e): return e.name == name
            case .binding(let b): return b.source == name || b.destination == .exchange(name)
            case .queue: return false
            }
        }
    }
}
