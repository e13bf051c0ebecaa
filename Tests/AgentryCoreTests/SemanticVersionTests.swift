import Foundation
import Testing

@testable import AgentryCore

@Suite("SemanticVersion")
struct SemanticVersionTests {
    /// semver.org's precedence example, lowest first.
    static let precedenceChain = [
        "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
        "1.0.0-rc.1", "1.0.0", "2.0.0", "2.1.0", "2.1.1",
    ]

    static func version(_ text: String) -> SemanticVersion {
        guard let version = SemanticVersion.parse(text) else { fatalError("test version '\(text)' does not parse") }
        return version
    }

    @Test(
        "each version in semver.org's chain precedes the next",
        arguments: zip(
            precedenceChain.dropLast(), precedenceChain.dropFirst()
        ))
    func precedence(lower: String, higher: String) {
        let a = Self.version(lower), b = Self.version(higher)
        #expect(a < b)
        #expect(!(b < a))
        #expect(a != b)
    }

    @Test("sorting a shuffled chain restores semver.org's order")
    func sorting() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            let sorted = Self.precedenceChain.shuffled(using: &generator).map(Self.version).sorted()
            #expect(sorted.map(\.description) == Self.precedenceChain)
        }
    }

    @Test(
        "more precedence: numeric identifiers numerically, ASCII order, numeric below alphanumeric",
        arguments: [
            ("1.9.0", "1.10.0"), ("1.0.9", "1.0.10"), ("9.0.0", "10.0.0"),
            ("1.0.0-2", "1.0.0-10"), ("1.0.0-Z", "1.0.0-a"), ("1.0.0-999", "1.0.0-0A"), ("1.0.0-a.b", "1.0.0-a-b"),
            ("1.0.0-alpha.9", "1.0.0-alpha.10"), ("1.0.0-rc.1", "1.0.0-rc.1.0"), ("0.0.1-x", "0.0.1"),
        ])
    func morePrecedence(lower: String, higher: String) {
        #expect(Self.version(lower) < Self.version(higher))
        #expect(!(Self.version(higher) < Self.version(lower)))
    }

    @Test(
        "build metadata is ignored by precedence but part of equality",
        arguments: [
            ("1.0.0+a", "1.0.0+b"), ("1.0.0", "1.0.0+build.1"), ("1.0.0-rc.1+x", "1.0.0-rc.1+y.2"),
        ])
    func buildMetadata(left: String, right: String) {
        let a = Self.version(left), b = Self.version(right)
        #expect(!(a < b) && !(b < a))
        #expect(a <= b && b <= a)
        #expect(a != b)
        #expect(Set([a, b]).count == 2)
        #expect(a.withoutBuild == b.withoutBuild)
    }

    @Test("build metadata does not lift a pre-release to its release")
    func buildDoesNotAffectPreRelease() {
        #expect(Self.version("1.0.0-rc.1+build.99") < Self.version("1.0.0"))
    }

    /// From semver.org's regular-expression examples.
    @Test(
        "valid versions parse and print back unchanged",
        arguments: [
            "0.0.4", "1.2.3", "10.20.30", "1.1.2-prerelease+meta", "1.1.2+meta", "1.1.2+meta-valid", "1.0.0-alpha",
            "1.0.0-beta", "1.0.0-alpha.beta", "1.0.0-alpha.beta.1", "1.0.0-alpha.1", "1.0.0-alpha0.valid",
            "1.0.0-alpha.0valid", "1.0.0-alpha-a.b-c-somethinglong+build.1-aef.1-its-okay", "1.0.0-rc.1+build.1",
            "2.0.0-rc.1+build.123", "1.2.3-beta", "10.2.3-DEV-SNAPSHOT", "1.2.3-SNAPSHOT-123", "1.0.0", "2.0.0", "1.1.7",
            "2.0.0+build.1848", "2.0.1-alpha.1227", "1.0.0-alpha+beta", "1.2.3----RC-SNAPSHOT.12.9.1--.12+788",
            "1.2.3----R-S.12.9.1--.12+meta", "1.2.3----RC-SNAPSHOT.12.9.1--.12", "1.0.0+0.build.1-rc.10000aaa-kk-0.1",
            "1.0.0-0A.is.legal", "9223372036854775807.9223372036854775807.9223372036854775807", "1.0.0-0",
        ])
    func valid(text: String) throws {
        let version = try SemanticVersion(validating: text)
        #expect(version.description == text)
        #expect(SemanticVersion.parse(text) == version)
    }

    /// From semver.org's regular-expression examples, plus a few more.
    @Test(
        "invalid versions are rejected",
        arguments: [
            "1", "1.2", "1.2.3-0123", "1.2.3-0123.0123", "1.1.2+.123", "+invalid", "-invalid", "-invalid+invalid",
            "-invalid.01", "alpha", "alpha.beta", "alpha.beta.1", "alpha.1", "alpha+beta", "alpha_beta", "alpha.",
            "alpha..", "beta", "1.0.0-alpha_beta", "-alpha.", "1.0.0-alpha..", "1.0.0-alpha..1", "1.0.0-alpha...1",
            "1.0.0-alpha....1", "01.1.1", "1.01.1", "1.1.01", "1.2.3.DEV", "1.2-SNAPSHOT",
            "1.2.31.2.3----RC-SNAPSHOT.12.09.1--..12+788", "1.2-RC-SNAPSHOT", "-1.0.0", "-1.0.3-gamma+b7718",
            "+justmeta", "9.8.7+meta+meta", "9.8.7-whatever+meta+meta",
            "99999999999999999999999.999999999999999999.99999999999999999",
            "99999999999999999999999.999999999999999999.99999999999999999----RC-SNAPSHOT.12.09.1--------------------------------..12",
            "", " 1.2.3", "1.2.3 ", "v1.2.3", "1.2.3-", "1.2.3+", "1..3", "1.2.3-é", "1.2.+3", "1.2.-3",
            "9223372036854775808.0.0", "1.0.0-99999999999999999999",
        ])
    func invalid(text: String) {
        #expect(SemanticVersion.parse(text) == nil)
        #expect(throws: SemanticVersionError.self) { try SemanticVersion(validating: text) }
    }

    @Test(
        "error messages say what is wrong and what is expected",
        arguments: [
            ("1.2", "'1.2' is not a semantic version: expected MAJOR.MINOR.PATCH such as 1.2.0"),
            ("1", "'1' is not a semantic version: expected MAJOR.MINOR.PATCH such as 1.0.0"),
            ("1.2.3.DEV", "'1.2.3.DEV' is not a semantic version: expected MAJOR.MINOR.PATCH such as 1.2.0"),
            ("", "'' is not a semantic version: it is empty; expected MAJOR.MINOR.PATCH such as 1.2.0"),
            ("01.2.3", "'01.2.3': major version has a leading zero"),
            ("1.01.1", "'1.01.1': minor version has a leading zero"),
            ("1.1.01", "'1.1.01': patch version has a leading zero"),
            ("1..3", "'1..3': minor version is empty"),
            ("1.x.3", "'1.x.3': minor version 'x' is not a number"),
            ("1.2.3-", "'1.2.3-' has an empty pre-release identifier"),
            ("1.0.0-alpha..1", "'1.0.0-alpha..1' has an empty pre-release identifier"),
            ("1.1.2+.123", "'1.1.2+.123' has an empty build identifier"),
            ("1.2.3-0123", "'1.2.3-0123': numeric pre-release identifier '0123' has a leading zero"),
            (
                "1.0.0-alpha_beta",
                "'1.0.0-alpha_beta': pre-release identifier 'alpha_beta' contains '_'; use only ASCII letters, digits and '-'"
            ),
            (
                "9.8.7+meta+meta",
                "'9.8.7+meta+meta': build identifier 'meta+meta' contains '+'; use only ASCII letters, digits and '-'"
            ),
            ("v1.2.3", "'v1.2.3' is not a semantic version: remove the leading 'v' (1.2.3)"),
            (
                "9223372036854775808.0.0",
                "'9223372036854775808.0.0': major version 9223372036854775808 is too large (the limit is 9223372036854775807)"
            ),
            (
                "1.0.0-99999999999999999999",
                "'1.0.0-99999999999999999999': numeric pre-release identifier '99999999999999999999' is too large (the limit is 9223372036854775807)"
            ),
        ])
    func messages(text: String, expected: String) {
        #expect(throws: SemanticVersionError(message: expected)) { try SemanticVersion(validating: text) }
        #expect(SemanticVersionError(message: expected).description == expected)
    }

    @Test("parts: numbers, pre-release identifiers by kind, build verbatim")
    func parts() throws {
        let version = try SemanticVersion(validating: "1.20.300-alpha.1.0A.x-y+build.007")
        #expect(version.major == 1 && version.minor == 20 && version.patch == 300)
        #expect(version.preRelease == [.alphanumeric("alpha"), .numeric(1), .alphanumeric("0A"), .alphanumeric("x-y")])
        #expect(version.build == ["build", "007"])
    }

    @Test("the memberwise initializer builds the same value as parsing")
    func memberwise() throws {
        let built = SemanticVersion(major: 1, minor: 0, patch: 0, preRelease: ["alpha", "1"], build: ["build", "5"])
        #expect(built.description == "1.0.0-alpha.1+build.5")
        #expect(built == (try SemanticVersion(validating: "1.0.0-alpha.1+build.5")))
        #expect(SemanticVersion(major: 2, minor: 3, patch: 4).description == "2.3.4")
    }

    @Test("Codable as a single string")
    func codable() throws {
        let version = Self.version("1.0.0-alpha.1+build.5")
        let data = try JSONEncoder().encode(["v": version])
        #expect(String(decoding: data, as: UTF8.self) == #"{"v":"1.0.0-alpha.1+build.5"}"#)
        let decoded = try JSONDecoder().decode([String: SemanticVersion].self, from: data)
        #expect(decoded["v"] == version)
    }

    @Test("decoding an invalid string fails with the parse message")
    func decodingInvalid() {
        let data = Data(#"["01.2.3"]"#.utf8)
        do {
            _ = try JSONDecoder().decode([SemanticVersion].self, from: data)
            Issue.record("decoding succeeded")
        } catch let DecodingError.dataCorrupted(context) {
            #expect(context.debugDescription == "'01.2.3': major version has a leading zero")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }
}
