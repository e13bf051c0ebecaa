/// What installing a bundle from a catalog takes, as ``DependencyResolver`` chose it: the catalog entries to install,
/// dependencies first, and the requirements that versions already installed meet.
public struct InstallPlan: Sendable, Hashable {
    /// A range a bundle asks of an agent it delegates to.
    public struct Requirement: Sendable, Hashable, CustomStringConvertible {
        /// The agent id asked for.
        public var agent: String
        /// The range, as the bundle's manifest writes it.
        public var range: String
        /// The bundle asking, and its version.
        public var requirer: String
        public var requirerVersion: String

        public init(agent: String, range: String, requirer: String, requirerVersion: String) {
            self.agent = agent
            self.range = range
            self.requirer = requirer
            self.requirerVersion = requirerVersion
        }

        /// `blackscreen-recovery 2.1.0 needs >=1.2 <2`.
        public var description: String { "\(requirer) \(requirerVersion) needs \(range)" }
    }

    /// An agent version already in the installation that meets every range asking for that agent.
    public struct Installed: Sendable, Hashable {
        public var agent: String
        public var version: String
        /// Every range it meets (at least one).
        public var requirements: [Requirement]

        public init(agent: String, version: String, requirements: [Requirement]) {
            self.agent = agent
            self.version = version
            self.requirements = requirements
        }
    }

    /// The bundle asked for.
    public var root: CatalogIndex.Entry
    /// The entries to install, in an order where each comes after the entries providing its dependencies (except
    /// where dependencies form a cycle); the root is last.
    public var install: [CatalogIndex.Entry]
    /// Requirements met without installing anything, sorted by agent id.
    public var alreadyInstalled: [Installed]
    /// Every agent needed, the root's own included, and the version chosen for it.
    public var versions: [String: String]
    /// Every requirement met by the plan, in the order they were found.
    public var requirements: [Requirement]

    public init(
        root: CatalogIndex.Entry, install: [CatalogIndex.Entry], alreadyInstalled: [Installed],
        versions: [String: String], requirements: [Requirement]
    ) {
        self.root = root
        self.install = install
        self.alreadyInstalled = alreadyInstalled
        self.versions = versions
        self.requirements = requirements
    }
}
