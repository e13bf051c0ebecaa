import Foundation
import Testing

@testable import AgentryCore

@Suite("VersionRange")
struct VersionRangeTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var range: String
        var version: String
        var expected: Bool
        var testDescription: String { "'\(range)' \(expected ? "contains" : "excludes") \(version)" }
    }

    static func row(_ range: String, _ version: String, _ expected: Bool) -> Row {
        Row(range: range, version: version, expected: expected)
    }

    static let rows: [Row] = [
        // Exact.
        row("1.2.3", "1.2.3", true),
        row("1.2.3", "1.2.4", false),
        row("=1.2.3", "1.2.3", true),
        row("=1.2.3", "1.2.2", false),
        row("=1.2.3", "1.2.3+build.7", true),
        row("=1.0.0-rc.1+build", "1.0.0-rc.1", true),
        row("1.2.3-beta.1", "1.2.3-beta.1", true),
        row("1.2.3-beta.1", "1.2.3-beta.2", false),
        // Comparators.
        row(">=1.0.0", "1.0.0", true),
        row(">=1.0.0", "0.9.9", false),
        row(">1.0.0", "1.0.0", false),
        row(">1.0.0", "1.0.1", true),
        row("<2.0.0", "1.9.9", true),
        row("<2.0.0", "2.0.0", false),
        row("<=2.0.0", "2.0.0", true),
        row("<=2.0.0", "2.0.1", false),
        row(">= 1.0.0", "1.5.0", true),
        row(">1.0.0", "1.0.0+build", false),
        // Caret.
        row("^1.2.3", "1.2.3", true),
        row("^1.2.3", "1.9.0", true),
        row("^1.2.3", "1.2.2", false),
        row("^1.2.3", "2.0.0", false),
        row("^0.2.3", "0.2.9", true),
        row("^0.2.3", "0.2.2", false),
        row("^0.2.3", "0.3.0", false),
        row("^0.0.3", "0.0.3", true),
        row("^0.0.3", "0.0.4", false),
        row("^1.2", "1.2.0", true),
        row("^1.2", "1.99.0", true),
        row("^1.2", "1.1.9", false),
        row("^1.2", "2.0.0", false),
        row("^1", "1.0.0", true),
        row("^1", "1.9.9", true),
        row("^1", "2.0.0", false),
        row("^0.2", "0.2.5", true),
        row("^0.2", "0.3.0", false),
        row("^0", "0.9.0", true),
        row("^0", "1.0.0", false),
        row("^ 1.2.3", "1.5.0", true),
        row("^1.x", "1.5.0", true),
        row("^*", "7.0.0", true),
        // Tilde.
        row("~1.2.3", "1.2.3", true),
        row("~1.2.3", "1.2.9", true),
        row("~1.2.3", "1.2.2", false),
        row("~1.2.3", "1.3.0", false),
        row("~1.2", "1.2.0", true),
        row("~1.2", "1.3.0", false),
        row("~1", "1.9.9", true),
        row("~1", "2.0.0", false),
        row("~0.2.3", "0.2.4", true),
        row("~0.2.3", "0.3.0", false),
        // Wildcards and bare partial versions.
        row("1.x", "1.9.9", true),
        row("1.x", "2.0.0", false),
        row("1.x", "0.9.0", false),
        row("1.X", "1.4.0", true),
        row("1.*", "1.0.0", true),
        row("1.*", "2.0.0", false),
        row("1.2.x", "1.2.7", true),
        row("1.2.x", "1.3.0", false),
        row("1.x.x", "1.3.0", true),
        row("*", "0.0.1", true),
        row("*", "999.0.0", true),
        row("x", "3.4.5", true),
        row("X", "3.4.5", true),
        row("1", "1.4.0", true),
        row("1", "2.0.0", false),
        row("1.2", "1.2.9", true),
        row("1.2", "1.3.0", false),
        // Partial versions in comparators.
        row(">=1.2", "1.2.0", true),
        row(">=1.2", "1.1.9", false),
        row(">1.2", "1.2.9", false),
        row(">1.2", "1.3.0", true),
        row("<1.2", "1.1.9", true),
        row("<1.2", "1.2.0", false),
        row("<=1.2", "1.2.9", true),
        row("<=1.2", "1.3.0", false),
        row(">1", "1.9.9", false),
        row(">1", "2.0.0", true),
        row(">=1", "1.0.0", true),
        row("<1", "0.9.9", true),
        row("<=1", "1.9.9", true),
        row(">=*", "1.0.0", true),
        row("<*", "0.0.0", false),
        row(">*", "5.0.0", false),
        // AND, with commas and with whitespace.
        row(">=1.0.0, <2.0.0", "1.5.0", true),
        row(">=1.0.0, <2.0.0", "2.0.0", false),
        row(">=1.0.0, <2.0.0", "0.9.0", false),
        row(">=1.0.0,<2.0.0", "1.0.0", true),
        row(">=1.0.0 <2.0.0", "1.5.0", true),
        row(">=1.0.0 <2.0.0", "2.0.0", false),
        row(">=1.0.0\t<2.0.0", "1.9.9", true),
        row(">= 1.0.0 , < 2.0.0", "1.9.9", true),
        row(">=1.2.0 <=1.2.0", "1.2.0", true),
        row(">1.2.0 <1.2.0", "1.2.0", false),
        row("^1.2, <1.5", "1.4.9", true),
        row("^1.2, <1.5", "1.5.0", false),
        // OR.
        row("^1.0 || ^2.0", "1.5.0", true),
        row("^1.0 || ^2.0", "2.5.0", true),
        row("^1.0 || ^2.0", "3.0.0", false),
        row("^1.0 || ^2.0", "0.9.0", false),
        row("<1.0.0 || >=3.0.0", "2.0.0", false),
        row("<1.0.0 || >=3.0.0", "0.5.0", true),
        row("<1.0.0 || >=3.0.0", "3.1.0", true),
        row("1.2.3 || 1.2.5", "1.2.4", false),
        row("1.2.3||1.2.5", "1.2.5", true),
        row(">=1.0.0 <1.5.0 || >=2.0.0, <2.5.0", "2.2.0", true),
        row(">=1.0.0 <1.5.0 || >=2.0.0, <2.5.0", "1.7.0", false),
        // Pre-releases: only when a comparator of the same AND-set has the same major.minor.patch and a pre-release.
        row(">=1.0.0-beta", "1.0.0-rc.1", true),
        row(">=1.0.0-beta", "1.0.0-beta", true),
        row(">=1.0.0-beta", "1.0.0-alpha", false),
        row(">=1.0.0-beta", "1.1.0-alpha", false),
        row(">=1.0.0-beta", "1.1.0", true),
        row(">=1.0.0", "1.1.0-alpha", false),
        row(">=1.0.0", "1.0.0-rc.1", false),
        row("*", "1.0.0-alpha", false),
        row("1.x", "1.2.0-alpha", false),
        row("^1.2.3-beta.2", "1.2.3-beta.4", true),
        row("^1.2.3-beta.2", "1.2.3-alpha", false),
        row("^1.2.3-beta.2", "1.2.4-beta.2", false),
        row("^1.2.3-beta.2", "1.9.0", true),
        row("^1.2.3", "2.0.0-alpha", false),
        row("^1.2.3", "2.0.0-0", false),
        row("~1.2.3-beta", "1.2.3-beta.5", true),
        row("~1.2.3-beta", "1.2.3", true),
        row("<2.0.0", "2.0.0-beta", false),
        row(">=2.0.0-alpha <2.0.0", "2.0.0-beta", true),
        row("^1.0 || >=2.0.0-rc.1", "2.0.0-rc.2", true),
        row("^1.0 || >=2.0.0-rc.1", "2.1.0-rc.1", false),
        row("^1.0 || >=2.0.0-rc.1", "1.5.0-rc.1", false),
        // Very large numbers: bounds past Int.max are left open.
        row("^9223372036854775807", "9223372036854775807.5.0", true),
        row(">9223372036854775807", "9223372036854775807.0.0", false),
    ]

    @Test("range table", arguments: rows)
    func contains(row: Row) throws {
        let range = try VersionRange(validating: row.range)
        let version = try SemanticVersion(validating: row.version)
        #expect(range.contains(version) == row.expected, "normalized: \(range.normalized)")
    }

    @Test(
        "caret, tilde, wildcards and partials mean npm's comparators",
        arguments: [
            ("^1.2.3", ">=1.2.3 <2.0.0-0"),
            ("^0.2.3", ">=0.2.3 <0.3.0-0"),
            ("^0.0.3", ">=0.0.3 <0.0.4-0"),
            ("^1.2", ">=1.2.0 <2.0.0-0"),
            ("^1", ">=1.0.0 <2.0.0-0"),
            ("^0.0", ">=0.0.0 <0.1.0-0"),
            ("^1.2.3-beta.2", ">=1.2.3-beta.2 <2.0.0-0"),
            ("~1.2.3", ">=1.2.3 <1.3.0-0"),
            ("~1.2", ">=1.2.0 <1.3.0-0"),
            ("~1", ">=1.0.0 <2.0.0-0"),
            ("1.x", ">=1.0.0 <2.0.0-0"),
            ("1.2.*", ">=1.2.0 <1.3.0-0"),
            ("*", "*"),
            (">=1.2", ">=1.2.0"),
            (">1.2", ">=1.3.0"),
            ("<1.2", "<1.2.0-0"),
            ("<=1.2", "<1.3.0-0"),
            ("=1.2.3+b", "=1.2.3"),
            (">= 1.0.0 , < 2.0.0", ">=1.0.0 <2.0.0"),
            ("^1.0 || ^2.0", ">=1.0.0 <2.0.0-0 || >=2.0.0 <3.0.0-0"),
            ("^9223372036854775807", ">=9223372036854775807.0.0"),
        ])
    func normalized(range: String, expected: String) throws {
        #expect(try VersionRange(validating: range).normalized == expected)
    }

    @Test(
        "invalid ranges throw a message naming the problem",
        arguments: [
            ("", "'' is not a version range: it is empty; use * to allow any version"),
            ("   ", "'' is not a version range: it is empty; use * to allow any version"),
            (">=", "'>=': '>=' has no version after it"),
            ("^", "'^': '^' has no version after it"),
            (">=1.0.0 <", "'>=1.0.0 <': '<' has no version after it"),
            ("1.2.3.4", "'1.2.3.4': '1.2.3.4' is not a version: it has 4 parts; expected MAJOR[.MINOR[.PATCH]], each a number or x, X or *"),
            (
                ">=1.0.0, <2.0.x.1",
                "'>=1.0.0, <2.0.x.1': '2.0.x.1' is not a version: it has 4 parts; expected MAJOR[.MINOR[.PATCH]], each a number or x, X or *"
            ),
            (">=1.0.0 ||", "'>=1.0.0 ||': nothing after '||'; write a range there or remove the '||'"),
            ("|| 1.0.0", "'|| 1.0.0': nothing before '||'; write a range there or remove the '||'"),
            ("1.0.0 || || 2.0.0", "'1.0.0 || || 2.0.0': nothing between two '||'; write a range there or remove one '||'"),
            (
                "~>1.0",
                "'~>1.0': '~>' (Ruby's pessimistic operator) is not supported; write ~1.0 instead (or ^1.0 to also allow later minor versions)"
            ),
            ("abc", "'abc': 'abc' is not a version: major version 'abc' is not a number, x, X or *"),
            ("1.x.3", "'1.x.3': '1.x.3' is not a version: a number cannot follow a wildcard; write 1.x"),
            (
                "1.2-beta",
                "'1.2-beta': '1.2-beta' is not a version: a pre-release or build needs a full MAJOR.MINOR.PATCH version, such as 1.2.0-beta"
            ),
            (">=01.0.0", "'>=01.0.0': '01.0.0' is not a version: major version has a leading zero"),
            ("^1.2.3-", "'^1.2.3-': '1.2.3-' has an empty pre-release identifier"),
            ("1.0.0 - 2.0.0", "'1.0.0 - 2.0.0': hyphen ranges such as '1.0.0 - 2.0.0' are not supported; write >=1.0.0 <=2.0.0"),
            ("1.0 | 2.0", "'1.0 | 2.0': '|' is not an operator; use '||' between alternatives"),
            ("=>1.0.0", "'=>1.0.0': '=>' is not an operator; did you mean >=1.0.0?"),
            ("==1.0.0", "'==1.0.0': '==' is not an operator; write =1.0.0 or just 1.0.0"),
            ("><1.0.0", "'><1.0.0': '><' in '><1.0.0' is not an operator; expected =, <, <=, >, >=, ^ or ~"),
            (">=1.0.0,,<2.0.0", "'>=1.0.0,,<2.0.0': '>=1.0.0,,<2.0.0' has an empty comparator next to a ','; remove the extra ','"),
            (">=1.0.0,", "'>=1.0.0,': '>=1.0.0,' has an empty comparator next to a ','; remove the extra ','"),
            ("v1.2.3", "'v1.2.3': 'v1.2.3' is not a version: remove the leading 'v'"),
            ("-1", "'-1': '-1' is not a version: a version starts with a number, or is x, X or * for any version"),
            ("1..2", "'1..2': '1..2' is not a version: minor version is empty"),
            (
                "^99999999999999999999",
                "'^99999999999999999999': '99999999999999999999' is not a version: major version 99999999999999999999 is too large (the limit is 9223372036854775807)"
            ),
        ])
    func invalid(text: String, message: String) {
        #expect(VersionRange.parse(text) == nil)
        #expect(throws: SemanticVersionError(message: message)) { try VersionRange(validating: text) }
    }

    @Test("the brief's example messages")
    func exampleMessages() throws {
        let error = try #require(throws: SemanticVersionError.self) { try VersionRange(validating: ">=1.0.0, <2.0.x.1") }
        #expect(error.message.hasPrefix("'>=1.0.0, <2.0.x.1': '2.0.x.1' is not a version"))
        let ruby = try #require(throws: SemanticVersionError.self) { try VersionRange(validating: "~>1.0") }
        #expect(ruby.message.contains("~1.0"))
    }

    @Test("description is the text as given, trimmed; equality follows it")
    func description() throws {
        let range = try VersionRange(validating: "  ^1.2 ||  >=2.0.0-rc.1 \n")
        #expect(range.description == "^1.2 ||  >=2.0.0-rc.1")
        #expect(range == VersionRange.parse("^1.2 ||  >=2.0.0-rc.1"))
        #expect(range != VersionRange.parse("^1.2 || >=2.0.0-rc.1"))
    }

    static let candidates = ["1.2.0", "1.10.0", "1.9.1", "2.0.0", "1.11.0-beta", "0.9.0", "1.3.0"]
        .map { SemanticVersionTests.version($0) }

    @Test(
        "highestMatch picks the highest by precedence, not by input order",
        arguments: [
            ("^1.2", "1.10.0"), ("~1.9", "1.9.1"), ("<1.9.1", "1.3.0"), ("*", "2.0.0"), (">=1.11.0-alpha <2", "1.11.0-beta"),
            ("^3", nil), ("1.2.x || 0.x", "1.2.0"),
        ] as [(String, String?)])
    func highestMatch(range: String, expected: String?) throws {
        let range = try VersionRange(validating: range)
        #expect(range.highestMatch(in: Self.candidates)?.description == expected)
        #expect(range.highestMatch(in: Self.candidates.reversed())?.description == expected)
        #expect(range.highestMatch(in: Self.candidates.sorted())?.description == expected)
    }

    @Test("highestMatch of versions equal in precedence keeps the first")
    func highestMatchTie() throws {
        let range = try VersionRange(validating: "^1")
        let versions = ["1.0.0+a", "1.0.0+b"].map { SemanticVersionTests.version($0) }
        #expect(range.highestMatch(in: versions)?.description == "1.0.0+a")
        #expect(range.highestMatch(in: [SemanticVersion]()) == nil)
    }

    @Test("Codable as its original text")
    func codable() throws {
        let range = try VersionRange(validating: ">=1.0.0, <2.0.0 || ^3")
        let data = try JSONEncoder().encode([range])
        #expect(String(decoding: data, as: UTF8.self) == #"[">=1.0.0, <2.0.0 || ^3"]"#)
        let decoded = try JSONDecoder().decode([VersionRange].self, from: data)
        #expect(decoded == [range])
        #expect(decoded[0].contains(SemanticVersionTests.version("3.1.0")))
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([VersionRange].self, from: Data(#"["~>1.0"]"#.utf8))
        }
    }
}
