public import AgentryBus
public import AgentryCore
public import AgentryStore
import Foundation
public import Logging

/// The versioned agent registry: definitions in PostgreSQL, queues and bindings on RabbitMQ.
///
/// Register puts a version in as a draft; publish makes a version the agent's active one, declares the agent's queue
/// `agentry.agent.<agent-id>`, binds it to exactly the version's trigger patterns and the patterns of its event pools
/// (removing bindings the previous version had and this one does not), and announces `agent.published`. Retire
/// removes the bindings and keeps the queue until it is drained. Publish and retire hold the agent's advisory lock,
/// so two hosts doing either at once end in one consistent state.
public struct AgentRegistry: Sendable {
    let store: AgentRegistryStore
    let bus: EventBus
    let topology: Topology
    let logger: Logger

    public init(store: AgentRegistryStore, bus: EventBus, topology: Topology, logger: Logger) {
        self.store = store
        self.bus = bus
        self.topology = topology
        self.logger = logger
    }

    // MARK: Register

    /// Registers a version as a draft (or finds it registered already). "Already registered" compares definitions,
    /// not their stored text: a version stored in an earlier JSON form (before the stored form was the YAML writer's
    /// tree) is the same version when it reads back equal.
    public func register(_ definition: AgentDefinition) async throws -> AgentRegistryStore.RegisterOutcome {
        if let stored = try await store.version(definition.metadata.version, of: definition.metadata.id),
            (try? Self.decode(stored)) == definition
        {
            return .unchanged
        }
        return try await store.register(Self.record(for: definition))
    }

    /// The definition as the registry stores it: ``AgentDefinition/jsonValue()`` (the YAML writer's tree), keys sorted.
    public static func storedJSON(_ definition: AgentDefinition) -> String {
        JSON.serialize(definition.jsonValue())
    }

    static func record(for definition: AgentDefinition) throws -> AgentVersionRecord {
        let json = storedJSON(definition)
        let triggers = definition.triggers.map { trigger in
            AgentVersionRecord.Trigger(
                eventType: trigger.type, priority: trigger.priority.name,
                filters: trigger.filters.map { JSON.serialize(.object($0)) })
        }
        return AgentVersionRecord(
            agentID: definition.metadata.id, name: definition.metadata.name, version: definition.metadata.version,
            author: definition.metadata.author, description: definition.metadata.description,
            goalType: definition.goal.type.rawValue, goalDescription: definition.goal.description, definition: json,
            triggers: triggers)
    }

    // MARK: Publish and retire

    /// What a publish did.
    public struct Publication: Sendable, Equatable {
        public var agentID: String
        public var version: String
        public var previousVersion: String?
        public var queue: String
        public var patterns: [String]
        public var added: [String]
        public var removed: [String]
    }

    /// Publishes a version (default: the highest registered version by semantic-version order).
    public func publish(agentID: String, version: String? = nil) async throws -> Publication {
        try await store.withAgentLock(agentID) {
            let versions = try await store.versions(of: agentID)
            guard !versions.isEmpty else {
                throw RegistryError(.notFound, "no agent '\(agentID)' is registered; register it first with `agentry agents apply FILE`")
            }
            let chosen: StoredAgentVersion
            if let version {
                guard let match = versions.first(where: { $0.version == version }) else {
                    throw RegistryError(
                        .notFound,
                        "agent '\(agentID)' has no version \(version); registered: \(Self.sortedVersions(versions).joined(separator: ", "))")
                }
                chosen = match
            } else {
                chosen = try Self.highest(versions)
            }
            let definition = try Self.decode(chosen)
            try await checkReferences(definition)
            let patterns = patterns(for: definition)
            let previous = try await store.state(of: agentID)

            // The broker first, then the record: a publish interrupted in between is completed by running it again.
            do {
                try await bus.declareAgentQueue(agentID, patterns: patterns)
            } catch {
                throw RegistryError(.broker, "cannot declare or bind queue \(definition.queueName): \(error)")
            }
            try await bindCancelQueue(definition, previousVersion: previous?.retired == true ? nil : previous?.activeVersion)
            try await store.markPublished(agentID: agentID, version: chosen.version, boundPatterns: patterns)
            // Its `schedule` triggers become its schedules (new ones made, changed ones updated, dropped ones removed).
            try await store.schedules.syncAgentSchedules(agentID: agentID, Schedule.declared(by: definition))
            let stale = (previous?.boundPatterns ?? []).filter { !patterns.contains($0) }
            for pattern in stale {
                do {
                    try await bus.unbindAgentQueue(agentID, pattern: pattern)
                } catch {
                    throw RegistryError(
                        .broker,
                        "published, but cannot remove the old binding '\(pattern)' of \(definition.queueName): \(error); publish again to retry")
                }
            }
            let publication = Publication(
                agentID: agentID, version: chosen.version,
                previousVersion: previous?.retired == true ? nil : previous?.activeVersion,
                queue: definition.queueName, patterns: patterns,
                added: patterns.filter { !(previous?.boundPatterns ?? []).contains($0) }, removed: stale)
            try await bus.publish(
                Event(
                    type: "agent.published",
                    payload: [
                        "agent_id": .string(agentID), "version": .string(chosen.version),
                        "previous_version": publication.previousVersion.map(JSONValue.string) ?? .null,
                        "queue": .string(definition.queueName), "patterns": .array(patterns.map(JSONValue.string)),
                    ],
                    priority: .normal, source: "agentry.registry"))
            logger.info("agent published", metadata: ["agentry.agent.id": "\(agentID)", "agentry.agent.version": "\(chosen.version)"])
            // Running workers start serving the new version now rather than at their next periodic sync.
            try? await WorkerCommand.sync.send(on: bus.connection)
            return publication
        }
    }

    /// Retires an agent: its bindings go (nothing new reaches its queue); the queue is kept until drained.
    public func retire(agentID: String) async throws -> [String] {
        try await store.withAgentLock(agentID) {
            guard let state = try await store.state(of: agentID) else {
                if try await store.versions(of: agentID).isEmpty {
                    throw RegistryError(.notFound, "no agent '\(agentID)' is registered")
                }
                throw RegistryError(.notFound, "agent '\(agentID)' was never published; there is nothing to retire")
            }
            for pattern in state.boundPatterns {
                do {
                    try await bus.unbindAgentQueue(agentID, pattern: pattern)
                } catch {
                    throw RegistryError(.broker, "cannot remove the binding '\(pattern)' of agentry.agent.\(agentID): \(error)")
                }
            }
            try await unbindCancelQueue(agentID: agentID, version: state.activeVersion)
            try await store.markRetired(agentID: agentID)
            try await store.schedules.syncAgentSchedules(agentID: agentID, [])
            try await bus.publish(
                Event(
                    type: "agent.retired", payload: ["agent_id": .string(agentID)], priority: .normal,
                    source: "agentry.registry"))
            try? await WorkerCommand.sync.send(on: bus.connection)
            return state.boundPatterns
        }
    }

    /// The routing patterns of a definition: its trigger types, then the patterns of its event pools.
    public func patterns(for definition: AgentDefinition) -> [String] {
        var result: [String] = []
        for pattern in definition.triggers.map(\.type) + definition.eventPools.flatMap({ topology.eventPools[$0] ?? [] })
        where !result.contains(pattern) {
            result.append(pattern)
        }
        return result
    }

    /// Checks, at publish time, what a definition refers to outside itself: event pools and skills declared in
    /// the topology, and subagents with a published version in the required range.
    func checkReferences(_ definition: AgentDefinition) async throws {
        var problems: [String] = []
        for skill in definition.referencedSkills where topology.skills[skill] == nil {
            let known = topology.skills.keys.sorted()
            let hint = known.first { Self.isNear($0, skill) }.map { " (did you mean '\($0)'?)" } ?? ""
            problems.append(
                "skills: '\(skill)' is not declared in the topology's skills (skills.yaml)\(hint); declared skills: \(known.joined(separator: ", "))")
        }
        for pool in definition.referencedPools where topology.eventPools[pool] == nil {
            let known = topology.eventPools.keys.sorted()
            let hint = known.first { Self.isNear($0, pool) }.map { " (did you mean '\($0)'?)" } ?? ""
            problems.append(
                "event_pools: '\(pool)' is not declared in the topology's event pools (event-pools.yaml)\(hint); declared pools: \(known.joined(separator: ", "))"
            )
        }
        for subagent in definition.referencedSubagents {
            guard let range = VersionRange.parse(subagent.version) else {
                problems.append("subagents: '\(subagent.id)' has an invalid version range '\(subagent.version)'")
                continue
            }
            if try await resolveSubagent(subagent.id, range: range) == nil {
                let published = try await store.versions(of: subagent.id).filter { $0.status == .published }.map(\.version)
                problems.append(
                    published.isEmpty
                        ? "subagents: '\(subagent.id)' has no published version; publish it before \(definition.metadata.id)"
                        : "subagents: '\(subagent.id)' has no published version in '\(subagent.version)'; published: \(published.joined(separator: ", "))"
                )
            }
        }
        if !problems.isEmpty {
            throw RegistryError(
                .invalid,
                "cannot publish \(definition.metadata.id) \(definition.metadata.version):\n" + problems.map { "  - \($0)" }.joined(separator: "\n"))
        }
    }

    // MARK: Look-ups

    /// One agent's definition: the given version, or the highest *published* version by semantic-version order.
    public func definition(agentID: String, version: String? = nil) async throws -> (StoredAgentVersion, AgentDefinition)? {
        let stored: StoredAgentVersion?
        if let version {
            stored = try await store.version(version, of: agentID)
        } else {
            let published = try await store.versions(of: agentID).filter { $0.status == .published }
            stored = published.isEmpty ? nil : try Self.highest(published)
        }
        guard let stored else { return nil }
        return (stored, try Self.decode(stored))
    }

    /// One line per registered agent.
    public struct Summary: Sendable, Equatable {
        public var agentID: String
        public var name: String
        /// The version events are routed to, or nil (never published, or retired).
        public var activeVersion: String?
        public var retired: Bool
        /// Every registered version, lowest first, with its status.
        public var versions: [(version: String, status: StoredAgentVersion.Status)]
        /// The description and trigger types of the active version (else the latest).
        public var description: String? = nil
        public var triggers: [String] = []
        /// The canary running beside the active version, if any.
        public var canary: AgentState.Canary? = nil

        public static func == (lhs: Summary, rhs: Summary) -> Bool {
            lhs.agentID == rhs.agentID && lhs.activeVersion == rhs.activeVersion && lhs.retired == rhs.retired
                && lhs.versions.map(\.version) == rhs.versions.map(\.version) && lhs.canary == rhs.canary
        }
    }

    /// Every registered agent, with its active version.
    public func list() async throws -> [Summary] {
        let states = Dictionary(uniqueKeysWithValues: try await store.states().map { ($0.agentID, $0) })
        var summaries: [Summary] = []
        for (agentID, versions) in Dictionary(grouping: try await store.allVersions(), by: \.agentID) {
            let ordered = versions.sorted { Self.order($0.version, $1.version) }
            let state = states[agentID]
            let active = state.flatMap { $0.retired ? nil : $0.activeVersion }
            let shown = ordered.last { $0.version == active } ?? ordered.last
            // The list shows a few fields: read them from the stored JSON, without reading and checking the whole
            // definition (the status page lists every agent each second it is open).
            let stored = shown.flatMap { try? JSON.parse($0.definition) }
            let triggers = stored?[path: "triggers"]?.arrayValue?.compactMap { $0[path: "type"]?.stringValue } ?? []
            summaries.append(
                Summary(
                    agentID: agentID, name: stored?[path: "metadata.name"]?.stringValue ?? agentID, activeVersion: active,
                    retired: state?.retired ?? false, versions: ordered.map { ($0.version, $0.status) },
                    description: stored?[path: "metadata.description"]?.stringValue, triggers: triggers, canary: state?.canary))
        }
        return summaries.sorted { $0.agentID < $1.agentID }
    }

    /// The active definitions of published agents whose triggers or pools match an event type (wildcards included).
    /// A version whose stored definition no longer reads is left out, as workers leave it unserved.
    public func agents(matching eventType: String) async throws -> [AgentDefinition] {
        var result: [AgentDefinition] = []
        for state in try await store.states() where !state.retired {
            guard let version = state.activeVersion, let stored = try await store.version(version, of: state.agentID),
                let definition = try? Self.decode(stored)
            else { continue }
            if patterns(for: definition).contains(where: { EventType.matches(eventType, pattern: $0) }) {
                result.append(definition)
            }
        }
        return result
    }

    /// The highest published version of a subagent that satisfies a range.
    public func resolveSubagent(_ agentID: String, range: VersionRange) async throws -> (SemanticVersion, AgentDefinition)? {
        let published = try await store.versions(of: agentID).filter { $0.status == .published }
        let candidates = published.compactMap { stored in SemanticVersion.parse(stored.version).map { ($0, stored) } }
        guard let best = range.highestMatch(in: candidates.map(\.0)),
            let stored = candidates.first(where: { $0.0 == best })?.1
        else { return nil }
        return (best, try Self.decode(stored))
    }

    // MARK: Helpers

    /// A stored definition, read by the same reader as a file (JSON is YAML), with the same checks: a version
    /// stored before a check existed and failing it now cannot run, and says why.
    static func decode(_ stored: StoredAgentVersion) throws -> AgentDefinition {
        do {
            return try AgentDefinition.parse(yaml: stored.definition, file: "\(stored.agentID) \(stored.version) (stored)")
        } catch {
            throw RegistryError(
                .invalid, "the stored definition of \(stored.agentID) \(stored.version) cannot be read; register a corrected version: \(error)")
        }
    }

    /// Orders version strings by semantic-version precedence (unparsable ones first, by text).
    public static func order(_ a: String, _ b: String) -> Bool {
        switch (SemanticVersion.parse(a), SemanticVersion.parse(b)) {
        case (let x?, let y?): return x < y || (!(y < x) && a < b)
        case (nil, _?): return true
        case (_?, nil): return false
        case (nil, nil): return a < b
        }
    }

    static func sortedVersions(_ versions: [StoredAgentVersion]) -> [String] {
        versions.map(\.version).sorted(by: order)
    }

    static func highest(_ versions: [StoredAgentVersion]) throws -> StoredAgentVersion {
        guard let best = versions.max(by: { order($0.version, $1.version) }) else {
            throw RegistryError(.notFound, "no versions")
        }
        return best
    }

    static func isNear(_ a: String, _ b: String) -> Bool {
        let x = Array(a), y = Array(b)
        var previous = Array(0...y.count)
        for i in 1...max(x.count, 1) where !x.isEmpty {
            var current = [i] + Array(repeating: 0, count: y.count)
            for j in 1...max(y.count, 1) where !y.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[y.count] <= 2
    }
}
