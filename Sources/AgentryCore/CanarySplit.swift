import Foundation

/// How a canary divides an agent's events between its canary version and its current one: an event goes to the canary
/// when its bucket, a number from 0 to 99 hashed from the agent id and the event id, is below the canary's percent.
/// The same event always lands in the same bucket, so a redelivery or a retry runs at the version its first delivery
/// did; and the agent id in the hash keeps the canaries of different agents from picking the same events.
public enum CanarySplit {
    /// The event's bucket for this agent, 0 to 99: FNV-1a (64 bits) of `agentID`, a zero byte and `eventID`, then
    /// the splitmix64 finaliser (so that the low digits spread evenly), modulo 100.
    public static func bucket(agentID: String, eventID: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func add(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        for byte in agentID.utf8 { add(byte) }
        add(0)
        for byte in eventID.utf8 { add(byte) }
        hash ^= hash >> 30
        hash &*= 0xbf58_476d_1ce4_e5b9
        hash ^= hash >> 27
        hash &*= 0x94d0_49bb_1331_11eb
        hash ^= hash >> 31
        return Int(hash % 100)
    }

    /// Whether a canary at `percent` takes this event.
    public static func takes(percent: Int, agentID: String, eventID: String) -> Bool {
        bucket(agentID: agentID, eventID: eventID) < percent
    }

    /// Reads a canary's share as written on the command line: `10%` or `10`, a whole number from 1 to 100.
    public static func parsePercent(_ text: String) -> Result<Int, PercentProblem> {
        var digits = text.trimmingCharacters(in: .whitespaces)
        if digits.hasSuffix("%") { digits = String(digits.dropLast()).trimmingCharacters(in: .whitespaces) }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(digits), (1...100).contains(value) else {
            return .failure(PercentProblem(text: text))
        }
        return .success(value)
    }

    /// A share that is not a whole percent from 1 to 100.
    public struct PercentProblem: Error, Sendable, Hashable, CustomStringConvertible {
        public var text: String
        public var description: String {
            "the canary's share must be a whole percent from 1 to 100 (e.g. 10%), not '\(text)'"
        }
    }
}
