/// A set of acceptable ``SemanticVersion``s, written in (a subset of) npm's range syntax.
///
/// Syntax:
/// - Exact: `1.2.3`, `=1.2.3` (build metadata is ignored when matching).
/// - Comparators: `>1.0.0`, `>=1.0.0`, `<2.0.0`, `<=2.0.0`; a space may follow the operator (`>= 1.0.0`).
/// - Caret, "compatible with": `^1.2.3` is `>=1.2.3 <2.0.0`; below 1.0.0 the leftmost non-zero part is the one that
///   may not change: `^0.2.3` is `>=0.2.3 <0.3.0`, `^0.0.3` is `>=0.0.3 <0.0.4`; `^1.2` is `>=1.2.0 <2.0.0`,
///   `^1` is `>=1.0.0 <2.0.0`, `^0.0` is `>=0.0.0 <0.1.0`.
/// - Tilde, "patch updates": `~1.2.3` is `>=1.2.3 <1.3.0`, `~1.2` is `>=1.2.0 <1.3.0`, `~1` is `>=1.0.0 <2.0.0`.
/// - Wildcards: `*`, `x`, `X` (any version), `1.x`, `1.2.x`, `1.*`, and partial versions `1`, `1.2` meaning the same.
/// - Partial versions in comparators: `>=1.2` is `>=1.2.0`, `>1.2` is `>=1.3.0`, `<1.2` is `<1.2.0`,
///   `<=1.2` is `<1.3.0`.
/// - AND: comparators separated by whitespace or commas (`>=1.0.0 <2.0.0`, `>=1.0.0, <2.0.0`).
/// - OR: `||` between such sets (`^1.0 || ^2.0`).
///
/// Not supported, and rejected with a message that says so: hyphen ranges (`1.0.0 - 2.0.0`), Ruby's `~>`, a `v`
/// prefix, empty alternatives (`>=1.0.0 ||`).
///
/// Pre-release rule (npm's): a version with a pre-release tag satisfies an AND-set only if it satisfies every
/// comparator *and* at least one comparator of that same set names a version with the same major.minor.patch that
/// has a pre-release tag. So `>=1.0.0-beta` contains `1.0.0-rc.1` but not `1.1.0-alpha`, `>=1.0.0` contains no
/// pre-release at all, and `*` contains only releases. Upper bounds implied by caret, tilde, wildcards and partials
/// exclude the next version's pre-releases: `^1.2.3` contains neither `2.0.0` nor `2.0.0-alpha`.
///
/// `description`, equality, hashing and the Codable form are the text as given, with surrounding whitespace removed.
public struct VersionRange: Sendable, Hashable, CustomStringConvertible, Codable {
    /// The range as written, trimmed.
    public let description: String
    /// OR of AND-sets of comparators; an empty AND-set accepts every release.
    let alternatives: [[Comparator]]

    /// The range `text` spells, or nil.
    public static func parse(_ text: String) -> VersionRange? {
        try? VersionRange(validating: text)
    }

    /// The range `text` spells; otherwise throws an error whose message quotes the range and names the bad part.
    public init(validating text: String) throws(SemanticVersionError) {
        let trimmed = Self.trimmingWhitespace(Substring(text))
        description = String(trimmed)
        alternatives = try RangeParser(whole: description).parse()
    }

    /// Whether `version` is in the range, with the pre-release rule described on the type.
    public func contains(_ version: SemanticVersion) -> Bool {
        alternatives.contains { comparators in
            guard comparators.allSatisfy({ $0.isSatisfied(by: version) }) else { return false }
            if version.preRelease.isEmpty { return true }
            return comparators.contains { comparator in
                !comparator.version.preRelease.isEmpty
                    && comparator.version.major == version.major
                    && comparator.version.minor == version.minor
                    && comparator.version.patch == version.patch
            }
        }
    }

    /// The highest version by precedence among `versions` that the range contains, whatever their order; of several
    /// with equal precedence (differing only in build metadata) the first one.
    public func highestMatch<S: Sequence>(in versions: S) -> SemanticVersion? where S.Element == SemanticVersion {
        var best: SemanticVersion?
        for version in versions where contains(version) {
            if let current = best, !(current < version) { continue }
            best = version
        }
        return best
    }

    public static func == (lhs: VersionRange, rhs: VersionRange) -> Bool { lhs.description == rhs.description }
    public func hash(into hasher: inout Hasher) { hasher.combine(description) }

    /// Decodes from a single string such as `"^1.2 || >=2.0.0-rc.1"`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        let range: VersionRange
        do {
            range = try VersionRange(validating: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
        self = range
    }

    /// Encodes as a single string, the ``description``.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// The comparators the range means, e.g. `>=0.2.3 <0.3.0-0` for `^0.2.3`; `*` for "any release".
    var normalized: String {
        alternatives.map { set in
            set.isEmpty ? "*" : set.map(\.description).joined(separator: " ")
        }.joined(separator: " || ")
    }

    fileprivate static func trimmingWhitespace(_ text: Substring) -> Substring {
        var text = text
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return text
    }
}

// MARK: - Comparators

extension VersionRange {
    struct Comparator: Sendable, Hashable, CustomStringConvertible {
        enum Operator: String, Sendable {
            case less = "<"
            case lessOrEqual = "<="
            case greater = ">"
            case greaterOrEqual = ">="
            case equal = "="
        }

        var op: Operator
        var version: SemanticVersion

        /// By precedence only (build metadata ignored); the pre-release rule is the set's business.
        func isSatisfied(by candidate: SemanticVersion) -> Bool {
            switch op {
            case .less: return candidate < version
            case .lessOrEqual: return !(version < candidate)
            case .greater: return version < candidate
            case .greaterOrEqual: return !(candidate < version)
            case .equal: return !(candidate < version) && !(version < candidate)
            }
        }

        var description: String { op.rawValue + version.description }
    }
}

// MARK: - Parsing

/// A version as a range names it: any (`*`), a partial one (`1`, `1.2`, `1.x`), or a full one (`1.2.3-rc.1`).
private enum Bound {
    case any
    case partial(major: Int, minor: Int?)
    case full(SemanticVersion)
}

private struct RangeParser {
    let whole: String

    func fail(_ detail: String) -> SemanticVersionError {
        SemanticVersionError(message: "'\(whole)': \(detail)")
    }

    func parse() throws(SemanticVersionError) -> [[VersionRange.Comparator]] {
        if whole.isEmpty {
            throw SemanticVersionError(message: "'' is not a version range: it is empty; use * to allow any version")
        }
        let pieces = splitOnOr(Substring(whole))
        var alternatives: [[VersionRange.Comparator]] = []
        for (index, piece) in pieces.enumerated() {
            let alternative = VersionRange.trimmingWhitespace(piece)
            if alternative.isEmpty {
                if index == pieces.count - 1 {
                    throw fail("nothing after '||'; write a range there or remove the '||'")
                } else if index == 0 {
                    throw fail("nothing before '||'; write a range there or remove the '||'")
                } else {
                    throw fail("nothing between two '||'; write a range there or remove one '||'")
                }
            }
            if alternative.contains("|") {
                throw fail("'|' is not an operator; use '||' between alternatives")
            }
            alternatives.append(try parseAndSet(alternative))
        }
        return alternatives
    }

    /// Splits on every `||`.
    private func splitOnOr(_ text: Substring) -> [Substring] {
        var pieces: [Substring] = []
        var start = text.startIndex
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(after: index)
            if text[index] == "|", next < text.endIndex, text[next] == "|" {
                pieces.append(text[start..<index])
                index = text.index(after: next)
                start = index
            } else {
                index = next
            }
        }
        pieces.append(text[start...])
        return pieces
    }

    private func parseAndSet(_ text: Substring) throws(SemanticVersionError) -> [VersionRange.Comparator] {
        let commaPieces = text.split(separator: ",", omittingEmptySubsequences: false)
        var comparators: [VersionRange.Comparator] = []
        for piece in commaPieces {
            let words = piece.split(whereSeparator: \.isWhitespace)
            if words.isEmpty {
                throw fail("'\(text)' has an empty comparator next to a ','; remove the extra ','")
            }
            // Join a lone operator with the version after it: ">= 1.0.0".
            var tokens: [String] = []
            var pendingOperator: Substring?
            for word in words {
                if let op = pendingOperator {
                    tokens.append(String(op + word))
                    pendingOperator = nil
                } else if word.allSatisfy(Self.isOperatorCharacter) {
                    pendingOperator = word
                } else {
                    tokens.append(String(word))
                }
            }
            if let op = pendingOperator { throw fail("'\(op)' has no version after it") }
            for token in tokens { comparators += try parseComparator(token) }
        }
        return comparators
    }

    private static func isOperatorCharacter(_ character: Character) -> Bool {
        "<>=^~!".contains(character)
    }

    private func parseComparator(_ token: String) throws(SemanticVersionError) -> [VersionRange.Comparator] {
        if token == "-" {
            throw fail("hyphen ranges such as '1.0.0 - 2.0.0' are not supported; write >=1.0.0 <=2.0.0")
        }
        let text = Substring(token)
        let versionStart = text.firstIndex { !Self.isOperatorCharacter($0) } ?? text.endIndex
        let op = text[..<versionStart]
        let versionText = text[versionStart...]
        switch op {
        case "", "=": return xRange(.equal, try parseBound(versionText))
        case "<": return xRange(.less, try parseBound(versionText))
        case "<=": return xRange(.lessOrEqual, try parseBound(versionText))
        case ">": return xRange(.greater, try parseBound(versionText))
        case ">=": return xRange(.greaterOrEqual, try parseBound(versionText))
        case "^": return caret(try parseBound(versionText))
        case "~": return tilde(try parseBound(versionText))
        case "~>":
            throw fail(
                "'~>' (Ruby's pessimistic operator) is not supported; write ~\(versionText) instead"
                    + " (or ^\(versionText) to also allow later minor versions)")
        case "==": throw fail("'==' is not an operator; write =\(versionText) or just \(versionText)")
        case "=>": throw fail("'=>' is not an operator; did you mean >=\(versionText)?")
        case "=<": throw fail("'=<' is not an operator; did you mean <=\(versionText)?")
        default: throw fail("'\(op)' in '\(token)' is not an operator; expected =, <, <=, >, >=, ^ or ~")
        }
    }

    private func notAVersion(_ text: Substring, _ problem: VersionProblem) -> SemanticVersionError {
        problem.isPredicate
            ? fail("'\(text)' \(problem.phrase)")
            : fail("'\(text)' is not a version: \(problem.phrase)")
    }

    private func parseBound(_ text: Substring) throws(SemanticVersionError) -> Bound {
        if let first = text.first, first == "v" || first == "V", (try? parseBound(text.dropFirst())) != nil {
            throw notAVersion(text, .detail("remove the leading '\(first)'"))
        }
        let coreEnd = text.firstIndex { $0 == "-" || $0 == "+" } ?? text.endIndex
        let core = text[..<coreEnd]
        if core.isEmpty {
            throw notAVersion(text, .detail("a version starts with a number, or is x, X or * for any version"))
        }
        let parts = core.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count > 3 {
            throw notAVersion(
                text,
                .detail(
                    "it has \(parts.count) parts; expected MAJOR[.MINOR[.PATCH]], each a number or x, X or *"
                ))
        }
        var numbers: [Int?] = []
        for (part, name) in zip(parts, ["major version", "minor version", "patch version"]) {
            if part == "x" || part == "X" || part == "*" {
                numbers.append(nil)
                continue
            }
            if numbers.contains(where: { $0 == nil }) {
                let suggestion = parts[0..<numbers.count].joined(separator: ".")
                throw notAVersion(text, .detail("a number cannot follow a wildcard; write \(suggestion)"))
            }
            if !part.isEmpty, !part.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
                throw notAVersion(text, .detail("\(name) '\(part)' is not a number, x, X or *"))
            }
            switch SemanticVersion.parseNumber(part, name: name) {
            case .success(let number): numbers.append(number)
            case .failure(let problem): throw notAVersion(text, problem)
            }
        }
        if coreEnd != text.endIndex {
            guard numbers.count == 3, !numbers.contains(where: { $0 == nil }) else {
                throw notAVersion(
                    text,
                    .detail(
                        "a pre-release or build needs a full MAJOR.MINOR.PATCH version, such as 1.2.0-beta"
                    ))
            }
            switch SemanticVersion.parseStrict(text) {
            case .success(let version): return .full(version.withoutBuild)
            case .failure(let problem): throw notAVersion(text, problem)
            }
        }
        switch (
            numbers.count > 0 ? numbers[0] : nil, numbers.count > 1 ? numbers[1] : nil,
            numbers.count > 2 ? numbers[2] : nil
        ) {
        case let (major?, minor?, patch?): return .full(SemanticVersion(major, minor, patch))
        case let (major?, minor, _): return .partial(major: major, minor: minor)
        default: return .any
        }
    }

    // MARK: Desugaring (npm's rules)

    private typealias Comparator = VersionRange.Comparator

    /// `<0.0.0-0`: nothing is below it, so the set matches nothing.
    private static let nothing = Comparator(op: .less, version: SemanticVersion(0, 0, 0, preRelease: [.numeric(0)]))

    private static func below(_ major: Int, _ minor: Int, _ patch: Int) -> Comparator {
        Comparator(op: .less, version: SemanticVersion(major, minor, patch, preRelease: [.numeric(0)]))
    }

    private static func atLeast(_ major: Int, _ minor: Int, _ patch: Int) -> Comparator {
        Comparator(op: .greaterOrEqual, version: SemanticVersion(major, minor, patch))
    }

    private static func increment(_ value: Int) -> Int? { value == Int.max ? nil : value + 1 }

    /// The first release after everything a partial version covers: `1` → 2.0.0, `1.2` → 1.3.0; nil on overflow.
    private static func after(major: Int, minor: Int?) -> (Int, Int, Int)? {
        if let minor {
            return increment(minor).map { (major, $0, 0) }
        }
        return increment(major).map { ($0, 0, 0) }
    }

    private func xRange(_ op: Comparator.Operator, _ bound: Bound) -> [Comparator] {
        switch bound {
        case .any:
            return op == .less || op == .greater ? [Self.nothing] : []
        case .full(let version):
            return [Comparator(op: op, version: version)]
        case .partial(let major, let minor):
            let next = Self.after(major: major, minor: minor)
            switch op {
            case .equal:
                return [Self.atLeast(major, minor ?? 0, 0)] + (next.map { [Self.below($0.0, $0.1, $0.2)] } ?? [])
            case .greater:
                return next.map { [Self.atLeast($0.0, $0.1, $0.2)] } ?? [Self.nothing]
            case .greaterOrEqual:
                return [Self.atLeast(major, minor ?? 0, 0)]
            case .less:
                return [Self.below(major, minor ?? 0, 0)]
            case .lessOrEqual:
                return next.map { [Self.below($0.0, $0.1, $0.2)] } ?? []
            }
        }
    }

    private func caret(_ bound: Bound) -> [Comparator] {
        switch bound {
        case .any:
            return []
        case .partial(let major, nil):
            return [Self.atLeast(major, 0, 0)] + upper(major: major, minor: nil)
        case .partial(let major, let minor?):
            return [Self.atLeast(major, minor, 0)] + upper(major: major, minor: major == 0 ? minor : nil)
        case .full(let version):
            let lower = Comparator(op: .greaterOrEqual, version: version)
            if version.major > 0 { return [lower] + upper(major: version.major, minor: nil) }
            if version.minor > 0 { return [lower] + upper(major: 0, minor: version.minor) }
            return [lower] + (Self.increment(version.patch).map { [Self.below(0, 0, $0)] } ?? [])
        }
    }

    private func tilde(_ bound: Bound) -> [Comparator] {
        switch bound {
        case .any:
            return []
        case .partial(let major, let minor):
            return [Self.atLeast(major, minor ?? 0, 0)] + upper(major: major, minor: minor)
        case .full(let version):
            return [Comparator(op: .greaterOrEqual, version: version)] + upper(major: version.major, minor: version.minor)
        }
    }

    /// `<NEXT-0` for the release after `major` (minor nil) or `major.minor`; nothing on overflow.
    private func upper(major: Int, minor: Int?) -> [Comparator] {
        Self.after(major: major, minor: minor).map { [Self.below($0.0, $0.1, $0.2)] } ?? []
    }
}
