/// A value in an AMQP field table (arguments, headers).
public enum AMQPValue: Sendable, Hashable {
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case bytes([UInt8])
    case timestamp(UInt64)
    case table(AMQPTable)
    case array([AMQPValue])
    case void

    /// The value as a string, when it is one.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        if case .bytes(let b) = self { return String(decoding: b, as: UTF8.self) }
        return nil
    }

    /// The value as an integer, when it is one.
    public var intValue: Int64? {
        switch self {
        case .int(let v): return v
        case .timestamp(let v): return Int64(clamping: v)
        default: return nil
        }
    }
}

extension AMQPValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension AMQPValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .bool(let v): return String(v)
        case .int(let v): return String(v)
        case .double(let v): return String(v)
        case .string(let v): return "\"\(v)\""
        case .bytes(let v): return "<\(v.count) bytes>"
        case .timestamp(let v): return "timestamp(\(v))"
        case .table(let v): return v.description
        case .array(let v): return "[" + v.map(\.description).joined(separator: ", ") + "]"
        case .void: return "void"
        }
    }
}

/// An AMQP field table: string keys to values. Keys are kept sorted when encoded, so equal tables encode equally.
public typealias AMQPTable = [String: AMQPValue]
