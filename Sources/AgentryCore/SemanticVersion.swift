/// A version number per Semantic Versioning 2.0.0 (https://semver.org): `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`,
/// e.g. `1.0.0-alpha.1+build.5`.
///
/// The three numbers are non-negative `Int`s written without leading zeros; text with a larger number is rejected
/// with a message saying so (SemVer sets no bound, this type does: `Int.max`). The same bound applies to numeric
/// pre-release identifiers.
///
/// Equality and ordering deliberately differ in one respect, build metadata:
/// - `==` and `hash(into:)` compare the full identity, build metadata included: `1.0.0+a != 1.0.0+b`.
/// - `<` (and with it `<=`, `>`, `>=`, `sorted()`, `max()`) is SemVer *precedence*, which MUST ignore build
///   metadata: neither of `1.0.0+a` and `1.0.0+b` is below the other. Two versions have the same precedence when
///   `!(a < b) && !(b < a)`.
///
/// Precedence compares major, minor and patch numerically; a pre-release version is below the release with the same
/// numbers (`1.0.0-rc.1 < 1.0.0`); pre-releases compare identifier by identifier: numeric identifiers numerically,
/// alphanumeric ones in ASCII order, numeric below alphanumeric, and when all shared identifiers are equal the longer
/// list is higher (`1.0.0-alpha < 1.0.0-alpha.1`).
public struct SemanticVersion: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    /// One dot-separated pre-release identifier.
    public enum Identifier: Sendable, Hashable, Comparable, CustomStringConvertible {
        /// Digits only, without a leading zero (`0`, `11`); compares numerically.
        case numeric(Int)
        /// ASCII letters, digits and `-`, with at least one non-digit (`alpha`, `0A`, `x-1`); compares in ASCII order.
        case alphanumeric(String)

        public var description: String {
            switch self {
            case .numeric(let value): return String(value)
            case .alphanumeric(let text): return text
            }
        }

        /// SemVer identifier precedence: numeric < alphanumeric; numbers numerically, text by ASCII code.
        public static func < (lhs: Identifier, rhs: Identifier) -> Bool {
            switch (lhs, rhs) {
            case let (.numeric(a), .numeric(b)): return a < b
            case (.numeric, .alphanumeric): return true
            case (.alphanumeric, .numeric): return false
            case let (.alphanumeric(a), .alphanumeric(b)): return a.utf8.lexicographicallyPrecedes(b.utf8)
            }
        }
    }

    public let major: Int
    public let minor: Int
    public let patch: Int
    /// Pre-release identifiers (`alpha`, `1` in `1.0.0-alpha.1`); empty for a release.
    public let preRelease: [Identifier]
    /// Build metadata identifiers (`build`, `5` in `1.0.0+build.5`), kept verbatim; ignored by precedence.
    public let build: [String]

    /// A version from its parts. The numbers must be non-negative and every identifier valid (pre-release:
    /// ASCII letters, digits and `-`, not empty, numeric ones without a leading zero; build: the same, leading zeros
    /// allowed); anything else is a programmer error and traps. Use ``init(validating:)`` for untrusted text.
    public init(major: Int, minor: Int, patch: Int, preRelease: [String] = [], build: [String] = []) {
        precondition(major >= 0 && minor >= 0 && patch >= 0, "SemanticVersion numbers must not be negative")
        self.major = major
        self.minor = minor
        self.patch = patch
        self.preRelease = preRelease.map { text in
            switch Self.parseIdentifier(Substring(text), kind: .preRelease) {
            case .success(let identifier): return identifier
            case .failure(let problem): preconditionFailure(problem.message(for: text))
            }
        }
        for identifier in build {
            if case .failure(let problem) = Self.parseIdentifier(Substring(identifier), kind: .build) {
                preconditionFailure(problem.message(for: identifier))
            }
        }
        self.build = build
    }

    /// A version from already validated parts.
    init(_ major: Int, _ minor: Int, _ patch: Int, preRelease: [Identifier] = [], build: [String] = []) {
        self.major = major
        self.minor = minor
        self.patch = patch
        self.preRelease = preRelease
        self.build = build
    }

    /// The version `text` spells exactly (no surrounding whitespace, no `v` prefix), or nil.
    public static func parse(_ text: String) -> SemanticVersion? {
        try? SemanticVersion(validating: text)
    }

    /// The version `text` spells exactly (no surrounding whitespace, no `v` prefix); otherwise throws an error whose
    /// message says what is wrong and what is expected.
    public init(validating text: String) throws(SemanticVersionError) {
        switch Self.parseStrict(Substring(text)) {
        case .success(let version): self = version
        case .failure(let problem): throw SemanticVersionError(message: problem.message(for: text))
        }
    }

    /// The canonical text, e.g. `1.0.0-alpha.1+build.5`.
    public var description: String {
        var text = "\(major).\(minor).\(patch)"
        if !preRelease.isEmpty { text += "-" + preRelease.map(\.description).joined(separator: ".") }
        if !build.isEmpty { text += "+" + build.joined(separator: ".") }
        return text
    }

    /// SemVer precedence; build metadata is ignored (see the type's documentation).
    public static func < (lhs: SemanticVersion, rhs: SemanticVersion) -> Bool {
        if lhs.major != rhs.major { return lhs.major < rhs.major }
        if lhs.minor != rhs.minor { return lhs.minor < rhs.minor }
        if lhs.patch != rhs.patch { return lhs.patch < rhs.patch }
        switch (lhs.preRelease.isEmpty, rhs.preRelease.isEmpty) {
        case (true, _): return false  // a release is not below anything with the same numbers
        case (false, true): return true  // a pre-release is below its release
        case (false, false): return lhs.preRelease.lexicographicallyPrecedes(rhs.preRelease)
        }
    }

    /// Decodes from a single string such as `"1.2.3-rc.1"`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        let version: SemanticVersion
        do {
            version = try SemanticVersion(validating: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
        self = version
    }

    /// Encodes as a single string, the ``description``.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// Same numbers and pre-release (the parts that decide precedence, without build).
    var withoutBuild: SemanticVersion {
        build.isEmpty ? self : SemanticVersion(major, minor, patch, preRelease: preRelease)
    }
}

/// Why a text is not a semantic version (or a version range), in ``message``.
public struct SemanticVersionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong and what is expected, quoting the text, e.g. `'01.2.3': major version has a leading zero`.
    public var message: String

    public var description: String { message }
}

// MARK: - Parsing, shared with VersionRange

/// What is wrong with some version text, without the text itself, so callers can phrase the message.
struct VersionProblem: Error, Sendable {
    /// Either a predicate that reads on from the quoted text ("has an empty pre-release identifier"), or a detail
    /// that follows a colon ("major version has a leading zero").
    var phrase: String
    var isPredicate: Bool

    static func predicate(_ phrase: String) -> VersionProblem { VersionProblem(phrase: phrase, isPredicate: true) }
    static func detail(_ phrase: String) -> VersionProblem { VersionProblem(phrase: phrase, isPredicate: false) }

    /// `'1.2.3-' has an empty pre-release identifier`, `'01.2.3': major version has a leading zero`.
    func message(for text: some StringProtocol) -> String {
        isPredicate ? "'\(text)' \(phrase)" : "'\(text)': \(phrase)"
    }
}

extension SemanticVersion {
    enum IdentifierKind: String {
        case preRelease = "pre-release"
        case build = "build"
    }

    static let shapeHint = "expected MAJOR.MINOR.PATCH such as 1.2.0"

    /// Parses exactly `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`.
    static func parseStrict(_ text: Substring) -> Result<SemanticVersion, VersionProblem> {
        if text.isEmpty { return .failure(.predicate("is not a semantic version: it is empty; \(shapeHint)")) }
        if let first = text.first, first == "v" || first == "V",
            case .success(let version) = parseStrict(text.dropFirst())
        {
            return .failure(.predicate("is not a semantic version: remove the leading '\(first)' (\(version))"))
        }
        let plus = text.firstIndex(of: "+")
        let beforeBuild = text[..<(plus ?? text.endIndex)]
        let minus = beforeBuild.firstIndex(of: "-")
        let core = beforeBuild[..<(minus ?? beforeBuild.endIndex)]

        let parts = core.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            // "1.2" → "such as 1.2.0"; "1" → "such as 1.0.0".
            var example = "1.2.0"
            if parts.count < 3, parts.allSatisfy({ if case .success = parseNumber($0, name: "") { true } else { false } }) {
                example = (parts.map(String.init) + Array(repeating: "0", count: 3 - parts.count)).joined(separator: ".")
            }
            return .failure(.predicate("is not a semantic version: expected MAJOR.MINOR.PATCH such as \(example)"))
        }
        var numbers: [Int] = []
        for (part, name) in zip(parts, ["major version", "minor version", "patch version"]) {
            switch parseNumber(part, name: name) {
            case .success(let number): numbers.append(number)
            case .failure(let problem): return .failure(problem)
            }
        }
        var preRelease: [Identifier] = []
        if let minus {
            switch parseIdentifiers(beforeBuild[beforeBuild.index(after: minus)...], kind: .preRelease) {
            case .success(let identifiers): preRelease = identifiers
            case .failure(let problem): return .failure(problem)
            }
        }
        var build: [String] = []
        if let plus {
            switch parseIdentifiers(text[text.index(after: plus)...], kind: .build) {
            case .success(let identifiers): build = identifiers.map(\.description)
            case .failure(let problem): return .failure(problem)
            }
        }
        return .success(SemanticVersion(numbers[0], numbers[1], numbers[2], preRelease: preRelease, build: build))
    }

    /// A version number: ASCII digits, no leading zero, at most `Int.max`. `name` ("major version") starts messages.
    static func parseNumber(_ text: Substring, name: String) -> Result<Int, VersionProblem> {
        if text.isEmpty { return .failure(.detail("\(name) is empty")) }
        guard text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return .failure(.detail("\(name) '\(text)' is not a number"))
        }
        if text.count > 1 && text.first == "0" { return .failure(.detail("\(name) has a leading zero")) }
        guard let value = Int(text) else {
            return .failure(.detail("\(name) \(text) is too large (the limit is \(Int.max))"))
        }
        return .success(value)
    }

    /// Dot-separated identifiers. Build identifiers come back as `.alphanumeric`/`.numeric` only for uniformity;
    /// callers take their text.
    static func parseIdentifiers(_ text: Substring, kind: IdentifierKind) -> Result<[Identifier], VersionProblem> {
        var identifiers: [Identifier] = []
        for part in text.split(separator: ".", omittingEmptySubsequences: false) {
            switch parseIdentifier(part, kind: kind) {
            case .success(let identifier): identifiers.append(identifier)
            case .failure(let problem): return .failure(problem)
            }
        }
        return .success(identifiers)
    }

    static func parseIdentifier(_ text: Substring, kind: IdentifierKind) -> Result<Identifier, VersionProblem> {
        if text.isEmpty { return .failure(.predicate("has an empty \(kind.rawValue) identifier")) }
        if let bad = text.unicodeScalars.first(where: { !isIdentifierCharacter($0) }) {
            return .failure(
                .detail(
                    "\(kind.rawValue) identifier '\(text)' contains '\(bad)'; use only ASCII letters, digits and '-'"
                ))
        }
        let isNumeric = text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        guard isNumeric else { return .success(.alphanumeric(String(text))) }
        if kind == .build { return .success(.alphanumeric(String(text))) }  // leading zeros allowed; text kept
        if text.count > 1 && text.first == "0" {
            return .failure(.detail("numeric pre-release identifier '\(text)' has a leading zero"))
        }
        guard let value = Int(text) else {
            return .failure(.detail("numeric pre-release identifier '\(text)' is too large (the limit is \(Int.max))"))
        }
        return .success(.numeric(value))
    }

    private static func isIdentifierCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "-": return true
        default: return false
        }
    }
}
