public import AgentryCore

/// Chooses the versions of every subagent a bundle needs, transitively, and which catalog entries to install.
///
/// A dependency names an agent id and a range; a catalog entry provides the agents of its `agents` list, and the
/// installation provides the agent versions already in its registry. One version is chosen per agent, and it must be
/// in every range asking for that agent. Of the versions that fit, an installed one is preferred (nothing to
/// install), the highest first; otherwise the catalog's highest. Choosing a catalog entry adds its own dependencies'
/// ranges, which can rule out versions chosen earlier: the search then backtracks, trying the next version of the
/// most recent choice (a depth-first search over candidates ordered as above, agents taken in the order they are
/// first needed). Each agent is chosen once, so cycles end.
///
/// When no choice fits, the error (``BundleError/Kind/conflict``) explains the first dead end of the search (the
/// one reached by preferring the highest versions):
/// `ticket-writer: blackscreen-recovery 2.1.0 needs >=1.2 <2, device-triage 1.0.0 needs ^2.0; available 1.4.0, 2.0.1`
/// (every requirer with its version and range, then the versions in the catalog and installed), or for an agent no
/// one has: `device-rebooter: needed by blackscreen-recovery 2.1.0 (>=1.2.0 <2.0.0); no version in the catalog or
/// installed`.
public struct DependencyResolver: Sendable {
    public let entries: [CatalogIndex.Entry]
    public let installed: [String: [SemanticVersion]]
    public let agentryVersion: SemanticVersion?
    /// How many choices the search may try before giving up (a guard against pathological catalogs).
    public var maxSteps = 200_000

    /// `entries`: the catalog's; `installed`: agent id → the versions the installation's registry holds;
    /// `agentryVersion`: when given, entries whose `min_agentry_version` is higher are left out.
    public init(
        entries: [CatalogIndex.Entry], installed: [String: [SemanticVersion]] = [:],
        agentryVersion: SemanticVersion? = nil
    ) {
        self.entries = entries
        self.installed = installed
        self.agentryVersion = agentryVersion
    }

    /// The plan for installing bundle `id` at `version` (the highest this Agentry runs when nil). Throws
    /// ``BundleError/Kind/catalog`` when the catalog has no such bundle or version, ``BundleError/Kind/conflict``
    /// when the dependencies cannot all be met.
    public func plan(bundle id: String, version: SemanticVersion? = nil) throws(BundleError) -> InstallPlan {
        let root = try rootEntry(id: id, version: version)
        let search = Search(resolver: self)
        var start = Search.State()
        for agent in entries[root].agents {
            start.chosen[agent.id] = Search.Candidate(version: parsed(agent.version), entry: root)
        }
        if let failure = search.select(root, in: &start) {
            throw BundleError(.conflict, search.explain(failure))
        }
        guard let solved = try search.solve(start) else {
            throw BundleError(.conflict, search.explain(search.firstFailure))
        }
        return makePlan(root: root, state: solved)
    }

    func rootEntry(id: String, version: SemanticVersion?) throws(BundleError) -> Int {
        let all = entries.indices.filter { entries[$0].id == id }
        guard !all.isEmpty else { throw BundleError(.catalog, "the catalog has no bundle \(id)") }
        let listed = all.map { entries[$0].semanticVersion }.sorted().map(\.description).joined(separator: ", ")
        if let version {
            guard let index = all.first(where: { entries[$0].semanticVersion == version }) else {
                throw BundleError(.catalog, "the catalog has no version \(version) of \(id); it has \(listed)")
            }
            if !runsHere(entries[index]) {
                throw BundleError(
                    .catalog,
                    "\(id) \(version) needs Agentry \(entries[index].minAgentryVersion) or newer; this is \(agentryVersion.map(\.description) ?? "")"
                )
            }
            return index
        }
        let runnable = all.filter { runsHere(entries[$0]) }
        guard let best = runnable.max(by: { entries[$0].semanticVersion < entries[$1].semanticVersion }) else {
            throw BundleError(
                .catalog,
                "every version of \(id) in the catalog (\(listed)) needs a newer Agentry than \(agentryVersion.map(\.description) ?? "")"
            )
        }
        return best
    }

    func runsHere(_ entry: CatalogIndex.Entry) -> Bool {
        guard let agentryVersion, let needed = SemanticVersion.parse(entry.minAgentryVersion) else { return true }
        return !(agentryVersion < needed)
    }

    func parsed(_ version: String) -> SemanticVersion {
        SemanticVersion.parse(version) ?? SemanticVersion(major: 0, minor: 0, patch: 0)
    }

    func makePlan(root: Int, state: Search.State) -> InstallPlan {
        var order: [Int] = []
        var visited = Set<Int>()
        func visit(_ index: Int) {
            guard visited.insert(index).inserted else { return }
            for dependency in entries[index].dependencies {
                if let provider = state.chosen[dependency.id]?.entry { visit(provider) }
            }
            order.append(index)
        }
        visit(root)
        let installedChoices = state.chosen.filter { $0.value.entry == nil }.sorted { $0.key < $1.key }
        return InstallPlan(
            root: entries[root], install: order.map { entries[$0] },
            alreadyInstalled: installedChoices.map { agent, candidate in
                InstallPlan.Installed(
                    agent: agent, version: candidate.version.description,
                    requirements: (state.requirements[agent] ?? []).map(\.requirement))
            },
            versions: state.chosen.mapValues(\.version.description),
            requirements: state.found.map(\.requirement))
    }
}

extension DependencyResolver {
    /// One run of the backtracking search.
    final class Search {
        /// A version of an agent: installed (`entry` nil) or provided by the catalog entry at that index.
        struct Candidate: Hashable {
            var version: SemanticVersion
            var entry: Int?
        }

        struct Need {
            var requirement: InstallPlan.Requirement
            var range: VersionRange
        }

        /// The choices so far; a value, so that backtracking is dropping a copy.
        struct State {
            var chosen: [String: Candidate] = [:]
            var requirements: [String: [Need]] = [:]
            /// Agents in the order they were first needed.
            var open: [String] = []
            var selected = Set<Int>()
            var found: [Need] = []
        }

        enum Failure {
            case unknown
            case missing(agent: String, needs: [Need])
            case conflict(agent: String, needs: [Need])
        }

        let resolver: DependencyResolver
        var firstFailure = Failure.unknown
        var steps = 0
        /// Candidates by agent, sorted as the search tries them (ranges not yet applied).
        var candidateCache: [String: [Candidate]] = [:]

        init(resolver: DependencyResolver) { self.resolver = resolver }

        func solve(_ state: State) throws(BundleError) -> State? {
            steps += 1
            if steps > resolver.maxSteps {
                throw BundleError(
                    .conflict,
                    "the dependencies have too many combinations to search (more than \(resolver.maxSteps)); install some of them at exact versions first"
                )
            }
            guard let agent = state.open.first(where: { state.chosen[$0] == nil }) else { return state }
            let needs = state.requirements[agent] ?? []
            let all = candidates(agent, state: state)
            if all.isEmpty {
                record(.missing(agent: agent, needs: needs))
                return nil
            }
            let fitting = all.filter { candidate in needs.allSatisfy { $0.range.contains(candidate.version) } }
            if fitting.isEmpty {
                record(.conflict(agent: agent, needs: needs))
                return nil
            }
            for candidate in fitting {
                var next = state
                next.chosen[agent] = candidate
                if let entry = candidate.entry, let failure = select(entry, in: &next) {
                    record(failure)
                    continue
                }
                if let solved = try solve(next) { return solved }
            }
            return nil
        }

        /// Marks `entry` for installing and adds its dependencies' ranges; the failure when a range rules out a
        /// version already chosen.
        func select(_ entry: Int, in state: inout State) -> Failure? {
            guard state.selected.insert(entry).inserted else { return nil }
            let bundle = resolver.entries[entry]
            for dependency in bundle.dependencies {
                guard let range = VersionRange.parse(dependency.range) else { continue }
                let need = Need(
                    requirement: InstallPlan.Requirement(
                        agent: dependency.id, range: dependency.range, requirer: bundle.id,
                        requirerVersion: bundle.version),
                    range: range)
                state.requirements[dependency.id, default: []].append(need)
                state.found.append(need)
                if let chosen = state.chosen[dependency.id] {
                    if !range.contains(chosen.version) {
                        return .conflict(agent: dependency.id, needs: state.requirements[dependency.id] ?? [])
                    }
                } else if !state.open.contains(dependency.id) {
                    state.open.append(dependency.id)
                }
            }
            return nil
        }

        /// The versions of `agent` to try, in order: installed ones highest first, then the catalog's highest first
        /// (for one agent version: an entry already chosen, then the highest bundle version, then by bundle id). A
        /// catalog version that is also installed is not listed again.
        func candidates(_ agent: String, state: State) -> [Candidate] {
            let base: [Candidate]
            if let cached = candidateCache[agent] {
                base = cached
            } else {
                let installedVersions = Set(resolver.installed[agent] ?? [])
                let installed = installedVersions.sorted(by: >).map { Candidate(version: $0, entry: nil) }
                var catalog: [Candidate] = []
                for (index, entry) in resolver.entries.enumerated() where resolver.runsHere(entry) {
                    for provided in entry.agents where provided.id == agent {
                        let version = resolver.parsed(provided.version)
                        if !installedVersions.contains(version) { catalog.append(Candidate(version: version, entry: index)) }
                    }
                }
                catalog.sort { a, b in
                    if a.version != b.version { return a.version > b.version }
                    let x = resolver.entries[a.entry ?? 0]
                    let y = resolver.entries[b.entry ?? 0]
                    if x.semanticVersion != y.semanticVersion { return x.semanticVersion > y.semanticVersion }
                    return x.id < y.id
                }
                base = installed + catalog
                candidateCache[agent] = base
            }
            // An entry already being installed is preferred among candidates of the same version.
            return base.enumerated().sorted { a, b in
                if a.element.version != b.element.version || (a.element.entry == nil) != (b.element.entry == nil) {
                    return a.offset < b.offset
                }
                let aSelected = a.element.entry.map { state.selected.contains($0) } ?? false
                let bSelected = b.element.entry.map { state.selected.contains($0) } ?? false
                if aSelected != bSelected { return aSelected }
                return a.offset < b.offset
            }.map(\.element)
        }

        func record(_ failure: Failure) {
            if case .unknown = firstFailure { firstFailure = failure }
        }

        /// The message for `failure`, in the shapes the type's documentation shows.
        func explain(_ failure: Failure) -> String {
            switch failure {
            case .unknown:
                return "the dependencies cannot all be met"
            case .missing(let agent, let needs):
                let requirers = needs.map {
                    "\($0.requirement.requirer) \($0.requirement.requirerVersion) (\($0.requirement.range))"
                }
                return "\(agent): needed by \(requirers.joined(separator: ", ")); no version in the catalog or installed"
            case .conflict(let agent, let needs):
                let available = Set(availableVersions(agent)).sorted().map(\.description)
                return "\(agent): \(needs.map(\.requirement.description).joined(separator: ", ")); available "
                    + (available.isEmpty ? "none" : available.joined(separator: ", "))
            }
        }

        /// Every version of `agent` in the catalog (that this Agentry runs) or installed.
        func availableVersions(_ agent: String) -> [SemanticVersion] {
            var versions = resolver.installed[agent] ?? []
            for entry in resolver.entries where resolver.runsHere(entry) {
                for provided in entry.agents where provided.id == agent {
                    versions.append(resolver.parsed(provided.version))
                }
            }
            return versions
        }
    }
}
