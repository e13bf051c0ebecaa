public import Foundation

/// An event's id: a UUID (version 7, time-ordered) when Agentry makes it, or whatever `message_id` another
/// AMQP client set (up to 255 bytes).
public struct EventID: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public let rawValue: String

    /// Nil unless `rawValue` is 1…255 bytes without NUL (which PostgreSQL's text cannot hold).
    public init?(_ rawValue: String) {
        guard !rawValue.isEmpty, rawValue.utf8.count <= 255, !rawValue.utf8.contains(0) else { return nil }
        self.rawValue = rawValue
    }

    public init(uuid: UUID) {
        self.rawValue = uuid.uuidString.lowercased()
    }

    /// A new UUIDv7: 48 bits of Unix milliseconds, then a counter within the millisecond, then random bits,
    /// so ids made by one process sort in the order they were made.
    public static func generate() -> EventID {
        EventID(uuid: UUIDv7Generator.shared.next())
    }

    /// A name-based id (UUID version 8 over a 128-bit FNV-1a hash) for a message that came without `message_id`:
    /// every consumer that reads the same message derives the same id, so the event log holds it once.
    /// Two publishes identical in routing key, body and timestamp get the same id: set `message_id` to keep them apart.
    public static func derived(from parts: [[UInt8]]) -> EventID {
        var hash: UInt128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d
        let prime: UInt128 = 0x0000_0000_0100_0000_0000_0000_0000_013B
        for part in parts {
            for byte in part {
                hash ^= UInt128(byte)
                hash = hash &* prime
            }
            hash ^= 0xFF  // separator, so ("ab","c") and ("a","bc") differ
            hash = hash &* prime
        }
        var bytes = (0..<16).map { UInt8(truncatingIfNeeded: hash >> (8 * UInt128(15 - $0))) }
        bytes[6] = 0x80 | (bytes[6] & 0x0F)
        bytes[8] = 0x80 | (bytes[8] & 0x3F)
        return EventID(
            uuid: UUID(
                uuid: (
                    bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                    bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
                )))
    }

    public init(from decoder: any Decoder) throws {
        let value = try decoder.singleValueContainer().decode(String.self)
        guard let id = EventID(value) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "an event id must be 1…255 bytes"))
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { rawValue }

    public static func < (lhs: EventID, rhs: EventID) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The UUID, when the id is one.
    public var uuid: UUID? { UUID(uuidString: rawValue) }
}

extension UUID {
    /// A new version 7 UUID (time-ordered, monotonic within this process), as `EventID.generate()` makes.
    public static func version7() -> UUID {
        UUIDv7Generator.shared.next()
    }
}

/// Makes version 7 UUIDs (RFC 9562), monotonic within this process.
final class UUIDv7Generator: @unchecked Sendable {
    // @unchecked: the only mutable state (lastMillis, counter) is read and written under `lock`.
    static let shared = UUIDv7Generator()
    private let lock = NSLock()
    private var lastMillis: UInt64 = 0
    private var counter: UInt16 = 0

    func next() -> UUID {
        var millis = UInt64(Date().timeIntervalSince1970 * 1000)
        lock.lock()
        if millis <= lastMillis {
            millis = lastMillis
            counter &+= 1
            if counter > 0x0FFF {
                // 4096 ids in one millisecond: borrow the next millisecond rather than lose the order.
                millis += 1
                counter = 0
            }
        } else {
            counter = UInt16.random(in: 0...0x01FF)
        }
        lastMillis = millis
        let sequence = counter
        lock.unlock()

        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: millis >> (8 * (5 - UInt64(i)))) }
        bytes[6] = 0x70 | UInt8(sequence >> 8)
        bytes[7] = UInt8(truncatingIfNeeded: sequence)
        var random = SystemRandomNumberGenerator()
        let tail = random.next() as UInt64
        for i in 8..<16 { bytes[i] = UInt8(truncatingIfNeeded: tail >> (8 * UInt64(15 - i))) }
        bytes[8] = 0x80 | (bytes[8] & 0x3F)
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
    }
}
