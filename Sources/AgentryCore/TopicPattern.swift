/// Event types and the AMQP topic patterns that match them (`*` one word, `#` zero or more words).
public enum EventType {
    /// Longest event type, in bytes: the limit of an AMQP routing key.
    public static let maxLength = 255

    /// Why `type` cannot be an event type, or nil when it can. Types are dot-separated words of letters, digits,
    /// `_`, `-` and `:`, e.g. `alert.blackscreen`.
    public static func problem(with type: String) -> String? {
        // Every event is checked on its way in (each consumer decodes it): one pass over the bytes for the usual,
        // valid type; the slower pass below only to say what is wrong.
        if isValidFast(type) { return nil }
        if type.isEmpty { return "an event type must not be empty" }
        if type.utf8.count > maxLength { return "event type is \(type.utf8.count) bytes long; the limit is \(maxLength)" }
        for word in type.split(separator: ".", omittingEmptySubsequences: false) {
            if word.isEmpty { return "event type '\(type)' has an empty word (two dots, or a dot at an end)" }
            if let bad = word.unicodeScalars.first(where: { !isWordCharacter($0) }) {
                return "event type '\(type)' contains '\(bad)'; use letters, digits, '_', '-' and ':' between dots"
            }
        }
        return nil
    }

    /// Why `pattern` cannot be a trigger pattern, or nil when it can: words as in types, or `*` / `#` as a whole word.
    public static func patternProblem(with pattern: String) -> String? {
        if pattern.isEmpty { return "a pattern must not be empty" }
        if pattern.utf8.count > maxLength { return "pattern is \(pattern.utf8.count) bytes long; the limit is \(maxLength)" }
        for word in pattern.split(separator: ".", omittingEmptySubsequences: false) {
            if word == "*" || word == "#" { continue }
            if word.isEmpty { return "pattern '\(pattern)' has an empty word" }
            if let bad = word.unicodeScalars.first(where: { !isWordCharacter($0) }) {
                return "pattern '\(pattern)' contains '\(bad)'; '*' and '#' must stand alone between dots"
            }
        }
        return nil
    }

    /// True when `type` is a valid event type: 1...maxLength bytes of word characters, words separated by single dots.
    private static func isValidFast(_ type: String) -> Bool {
        type.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            guard !bytes.isEmpty, bytes.count <= maxLength else { return false }
            var previousWasDot = true
            for byte in bytes {
                if byte == UInt8(ascii: ".") {
                    if previousWasDot { return false }
                    previousWasDot = true
                } else if isWordByte(byte) {
                    previousWasDot = false
                } else {
                    return false
                }
            }
            return !previousWasDot
        } ?? false
    }

    /// Letters, digits, `_`, `-` and `:`: the characters of a word of a type or pattern.
    private static func isWordByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: ":"):
            return true
        default:
            return false
        }
    }

    private static func isWordCharacter(_ s: Unicode.Scalar) -> Bool {
        s.isASCII && isWordByte(UInt8(s.value))
    }

    /// Whether `type` matches the topic `pattern`, with RabbitMQ's semantics.
    public static func matches(_ type: String, pattern: String) -> Bool {
        // Most triggers name one type: no wildcard, no need to split (this runs for every delivery and trigger).
        if !pattern.utf8.contains(where: { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "#") }) { return type == pattern }
        let words = type.split(separator: ".", omittingEmptySubsequences: false)
        let parts = pattern.split(separator: ".", omittingEmptySubsequences: false)
        // Dynamic programming over (pattern position, word position): linear in their product, no backtracking blow-up.
        var reachable = [Bool](repeating: false, count: words.count + 1)
        reachable[0] = true
        for part in parts {
            var next = [Bool](repeating: false, count: words.count + 1)
            if part == "#" {
                var seen = false
                for i in 0...words.count {
                    seen = seen || reachable[i]
                    next[i] = seen
                }
            } else {
                for i in 0..<words.count where reachable[i] && (part == "*" || part == words[i]) {
                    next[i + 1] = true
                }
            }
            reachable = next
        }
        return reachable[words.count]
    }

    /// Agentry's reports about itself (`agent.*`, `resource.*`, `event.*`): logged, never reported as unhandled,
    /// so that reports cannot feed on themselves.
    public static func isSystem(_ type: String) -> Bool {
        type.hasPrefix("agent.") || type.hasPrefix("resource.") || type.hasPrefix("event.")
    }
}
