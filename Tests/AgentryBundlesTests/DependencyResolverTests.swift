import AgentryCore
import Testing

@testable import AgentryBundles

/// A catalog entry for the resolver: bundle `id` at `version` providing the agent of the same id and version (or
/// `agents`), needing `needs` (agent id, range).
func catalogEntry(
    _ id: String, _ version: String, needs: [(String, String)] = [], agents: [(String, String)]? = nil
) -> CatalogIndex.Entry {
    CatalogIndex.Entry(
        id: id, version: version, file: "\(id)-\(version).agentry", sha256: String(repeating: "0", count: 64), size: 1,
        description: "", author: "", license: "", agents: (agents ?? [(id, version)]).map { .init(id: $0.0, version: $0.1) },
        dependencies: needs.map { .init(id: $0.0, range: $0.1, requiredBy: [id]) }, skills: [], permissions: [:],
        approvals: [], signature: nil, minAgentryVersion: "0.1.0")
}

func version(_ text: String) -> SemanticVersion { SemanticVersion.parse(text)! }

@Suite("Dependency resolution")
struct DependencyResolverTests {
    /// D in four versions, two of them in both B's and C's ranges.
    static let ds = ["1.2.0", "1.4.0", "1.9.9", "2.0.1"].map { catalogEntry("d", $0) }

    static let diamond =
        [
            catalogEntry("a", "1.0.0", needs: [("b", "^1"), ("c", "^1")]),
            catalogEntry("b", "1.0.0", needs: [("d", ">=1.2 <2")]),
            catalogEntry("b", "1.3.0", needs: [("d", ">=1.2 <2")]),
            catalogEntry("c", "1.1.0", needs: [("d", "^1.4")]),
        ] + ds

    func names(_ plan: InstallPlan) -> [String] { plan.install.map(\.name) }

    @Test("a diamond: A needs B and C, both need D; the highest D in both ranges is chosen, dependencies first")
    func diamond() throws {
        let plan = try DependencyResolver(entries: Self.diamond).plan(bundle: "a")
        #expect(plan.versions == ["a": "1.0.0", "b": "1.3.0", "c": "1.1.0", "d": "1.9.9"])
        #expect(names(plan).last == "a 1.0.0")
        #expect(Set(names(plan)) == ["a 1.0.0", "b 1.3.0", "c 1.1.0", "d 1.9.9"])
        let position = Dictionary(uniqueKeysWithValues: names(plan).enumerated().map { ($1, $0) })
        #expect(position["d 1.9.9"]! < position["b 1.3.0"]! && position["d 1.9.9"]! < position["c 1.1.0"]!)
        #expect(plan.alreadyInstalled.isEmpty)
    }

    @Test("the highest B forces a D no other range allows: an older B that fits is chosen instead")
    func backtracking() throws {
        let entries =
            [
                catalogEntry("a", "1.0.0", needs: [("b", "^1"), ("c", "^1")]),
                catalogEntry("b", "1.0.0", needs: [("d", ">=1.2 <2")]),
                catalogEntry("b", "1.5.0", needs: [("d", "^2")]),
                catalogEntry("c", "1.1.0", needs: [("d", "^1.4")]),
            ] + Self.ds
        let plan = try DependencyResolver(entries: entries).plan(bundle: "a")
        #expect(plan.versions["b"] == "1.0.0")
        #expect(plan.versions["d"] == "1.9.9")
        #expect(!names(plan).contains("b 1.5.0") && !names(plan).contains("d 2.0.1"))
    }

    @Test("installed versions meet ranges without installing; a range they miss installs another")
    func installed() throws {
        let plan = try DependencyResolver(entries: Self.diamond, installed: ["d": [version("1.4.0")]]).plan(bundle: "a")
        #expect(plan.versions["d"] == "1.4.0")
        #expect(Set(names(plan)) == ["a 1.0.0", "b 1.3.0", "c 1.1.0"])
        #expect(plan.alreadyInstalled.map(\.agent) == ["d"])
        #expect(plan.alreadyInstalled.first?.requirements.map(\.description) == ["b 1.3.0 needs >=1.2 <2", "c 1.1.0 needs ^1.4"])

        // 1.2.0 is installed but outside C's ^1.4: the catalog's highest fitting D is installed.
        let other = try DependencyResolver(entries: Self.diamond, installed: ["d": [version("1.2.0")]]).plan(bundle: "a")
        #expect(other.versions["d"] == "1.9.9")
        #expect(names(other).contains("d 1.9.9"))
        #expect(other.alreadyInstalled.isEmpty)

        // An installed version not in the catalog at all counts as well.
        let b = try DependencyResolver(entries: Self.diamond, installed: ["b": [version("1.7.0")]]).plan(bundle: "a")
        #expect(b.versions["b"] == "1.7.0")
        #expect(!names(b).contains { $0.hasPrefix("b ") })
    }

    @Test("a conflict names the agent, every requirer with its version and range, and the versions available")
    func conflict() {
        let entries = [
            catalogEntry("support-flow", "1.0.0", needs: [("blackscreen-recovery", "^2"), ("device-triage", "^1")]),
            catalogEntry("blackscreen-recovery", "2.1.0", needs: [("ticket-writer", ">=1.2 <2")]),
            catalogEntry("device-triage", "1.0.0", needs: [("ticket-writer", "^2.0")]),
            catalogEntry("ticket-writer", "1.4.0"),
            catalogEntry("ticket-writer", "2.0.1"),
        ]
        #expect(
            throws: BundleError(
                .conflict,
                "ticket-writer: blackscreen-recovery 2.1.0 needs >=1.2 <2, device-triage 1.0.0 needs ^2.0; available 1.4.0, 2.0.1"
            )
        ) {
            try DependencyResolver(entries: entries).plan(bundle: "support-flow")
        }
    }

    @Test("an agent nobody has is named with who needs it")
    func missing() {
        let entries = [catalogEntry("x", "1.0.0", needs: [("device-rebooter", ">=1.2.0 <2.0.0")])]
        #expect(
            throws: BundleError(
                .conflict,
                "device-rebooter: needed by x 1.0.0 (>=1.2.0 <2.0.0); no version in the catalog or installed"
            )
        ) {
            try DependencyResolver(entries: entries).plan(bundle: "x")
        }
    }

    @Test("a cycle ends: each agent is chosen once, and every bundle of the cycle is installed once")
    func cycle() throws {
        let entries = [
            catalogEntry("a", "1.0.0", needs: [("b", "^1")]),
            catalogEntry("b", "1.0.0", needs: [("c", "^1")]),
            catalogEntry("c", "1.0.0", needs: [("b", "^1"), ("a", "^1")]),
        ]
        let plan = try DependencyResolver(entries: entries).plan(bundle: "a")
        #expect(Set(names(plan)) == ["a 1.0.0", "b 1.0.0", "c 1.0.0"])
        #expect(names(plan).count == 3)
        #expect(names(plan).last == "a 1.0.0")

        // A cycle that cannot close: b needs an a the root is not.
        let broken = [
            catalogEntry("a", "1.0.0", needs: [("b", "^1")]),
            catalogEntry("b", "1.0.0", needs: [("a", "^2")]),
        ]
        #expect(throws: BundleError(.conflict, "a: b 1.0.0 needs ^2; available 1.0.0")) {
            try DependencyResolver(entries: broken).plan(bundle: "a")
        }
    }

    @Test("an exact version is honoured; an unknown bundle or version says what the catalog has")
    func rootVersion() throws {
        let plan = try DependencyResolver(entries: Self.diamond).plan(bundle: "b", version: version("1.0.0"))
        #expect(plan.root.name == "b 1.0.0")
        #expect(names(plan) == ["d 1.9.9", "b 1.0.0"])
        #expect(throws: BundleError(.catalog, "the catalog has no version 2.0.0 of b; it has 1.0.0, 1.3.0")) {
            try DependencyResolver(entries: Self.diamond).plan(bundle: "b", version: version("2.0.0"))
        }
        #expect(throws: BundleError(.catalog, "the catalog has no bundle zzz")) {
            try DependencyResolver(entries: Self.diamond).plan(bundle: "zzz")
        }
    }

    @Test("a bundle providing several agents provides each of them")
    func multipleAgents() throws {
        let entries = [
            catalogEntry("flow", "1.0.0", needs: [("triage", "^1"), ("notifier", "^1")]),
            catalogEntry("toolkit", "1.2.0", agents: [("triage", "1.2.0"), ("notifier", "1.0.3")]),
        ]
        let plan = try DependencyResolver(entries: entries).plan(bundle: "flow")
        #expect(names(plan) == ["toolkit 1.2.0", "flow 1.0.0"])
        #expect(plan.versions == ["flow": "1.0.0", "triage": "1.2.0", "notifier": "1.0.3"])
    }

    @Test("a hundred bundles in ten versions each resolve quickly")
    func scale() throws {
        var entries: [CatalogIndex.Entry] = []
        for n in 0..<100 {
            for minor in 0..<10 {
                let needs = n < 99 ? [("agent-\(n + 1)", "^1.\(minor / 2)")] : []
                entries.append(catalogEntry("agent-\(n)", "1.\(minor).0", needs: needs))
            }
        }
        let plan = try DependencyResolver(entries: entries).plan(bundle: "agent-0")
        #expect(plan.install.count == 100)
        #expect(plan.versions["agent-99"] == "1.9.0")
    }
}
