/// The four event priorities, CRITICAL first. The raw value is the seed's level (1 CRITICAL … 4 LOW).
public enum Priority: Int, Sendable, Hashable, CaseIterable, Comparable, Codable {
    case critical = 1
    case high = 2
    case normal = 3
    case low = 4

    /// The AMQP message priority for this level: 5 − level (CRITICAL → 4, LOW → 1), for queues with `x-max-priority` 4.
    public var amqpPriority: UInt8 { UInt8(5 - rawValue) }

    /// The level for an AMQP message priority. A message without a priority (or priority 0) counts as LOW.
    /// Priorities above 4 are not Agentry's: nil.
    public init?(amqpPriority: UInt8?) {
        switch amqpPriority {
        case nil, 0?, 1?: self = .low
        case 2?: self = .normal
        case 3?: self = .high
        case 4?: self = .critical
        default: return nil
        }
    }

    /// Parses a name (`critical`, `HIGH`, …) or a level (`1` … `4`).
    public init?(name: String) {
        switch name.lowercased() {
        case "critical", "1": self = .critical
        case "high", "2": self = .high
        case "normal", "3": self = .normal
        case "low", "4": self = .low
        default: return nil
        }
    }

    /// The upper-case name, as the seed writes it.
    public var name: String {
        switch self {
        case .critical: return "CRITICAL"
        case .high: return "HIGH"
        case .normal: return "NORMAL"
        case .low: return "LOW"
        }
    }

    /// More urgent compares smaller: `.critical < .low`.
    public static func < (lhs: Priority, rhs: Priority) -> Bool { lhs.rawValue < rhs.rawValue }
}

extension Priority: CustomStringConvertible {
    public var description: String { name }
}
