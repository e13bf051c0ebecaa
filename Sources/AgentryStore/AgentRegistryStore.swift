public import Foundation
public import Logging
import PostgresNIO

/// What the registry stores of one agent version: the columns the seed's `agent_registry` has, the definition as
/// JSON, and its triggers.
public struct AgentVersionRecord: Sendable, Hashable {
    public struct Trigger: Sendable, Hashable {
        public var eventType: String
        /// CRITICAL, HIGH, NORMAL or LOW.
        public var priority: String
        /// The trigger's payload filters as JSON, or nil.
        public var filters: String?

        public init(eventType: String, priority: String, filters: String?) {
            self.eventType = eventType
            self.priority = priority
            self.filters = filters
        }
    }

    public var agentID: String
    public var name: String
    public var version: String
    public var author: String
    public var description: String?
    public var goalType: String
    public var goalDescription: String
    /// The whole definition as JSON (stored as jsonb, compared semantically).
    public var definition: String
    public var triggers: [Trigger]

    public init(
        agentID: String, name: String, version: String, author: String, description: String?, goalType: String,
        goalDescription: String, definition: String, triggers: [Trigger]
    ) {
        self.agentID = agentID
        self.name = name
        self.version = version
        self.author = author
        self.description = description
        self.goalType = goalType
        self.goalDescription = goalDescription
        self.definition = definition
        self.triggers = triggers
    }
}

/// A stored agent version and where it stands.
public struct StoredAgentVersion: Sendable, Hashable {
    public enum Status: String, Sendable { case draft, published, retired }
    public var agentID: String
    public var version: String
    public var status: Status
    public var definition: String
    public var createdAt: Date
    public var updatedAt: Date
    public var publishedAt: Date?
}

/// Where an agent stands: its active version, whether it is retired, the patterns bound to its queue, and its canary.
public struct AgentState: Sendable, Hashable {
    public var agentID: String
    public var activeVersion: String?
    public var retired: Bool
    public var boundPatterns: [String]
    /// The canary, when the agent has one: the version that takes `percent` of its events.
    public var canary: Canary? = nil

    public struct Canary: Sendable, Hashable {
        public var version: String
        public var percent: Int
        public init(version: String, percent: Int) {
            self.version = version
            self.percent = percent
        }
    }
}

/// The agent registry's tables: `agent_registry`, `agent_event_triggers`, `agents`.
/// Every change to one agent holds that agent's transaction-level advisory lock, so hosts that register or publish
/// the same agent at once are serialised and end in one consistent state.
public struct AgentRegistryStore: Sendable {
    public enum RegisterOutcome: String, Sendable {
        /// A new draft version.
        case created
        /// An existing draft replaced by a different definition.
        case replaced
        /// The same definition was registered already (draft or published): nothing changed.
        case unchanged
    }

    public let database: Database
    let logger: Logger

    /// The schedules of the same database (an agent's `schedule` triggers are kept there as it is published and retired).
    public var schedules: ScheduleStore { ScheduleStore(database: database, logger: logger) }

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// Registers a version as a draft. A draft may be replaced; a published version never changes: registering it
    /// again with a different definition throws ``RegistryError/Code-swift.struct/publishedImmutable``.
    public func register(_ record: AgentVersionRecord) async throws -> RegisterOutcome {
        try await transaction(agentID: record.agentID) { connection in
            var existing: (status: String, same: Bool)?
            for try await (status, same) in try await connection.queryAll(
                """
                SELECT status, definition = \(record.definition)::jsonb FROM agent_registry
                WHERE agent_id = \(record.agentID) AND version = \(record.version)
                """, logger: logger
            ).decode((String, Bool).self) {
                existing = (status, same)
            }
            switch existing {
            case nil:
                try await connection.queryAll(
                    """
                    INSERT INTO agent_registry (agent_id, name, version, author, description, goal_type, goal_description, definition, status)
                    VALUES (\(record.agentID), \(record.name), \(record.version), \(record.author), \(record.description),
                            \(record.goalType), \(record.goalDescription), \(record.definition)::jsonb, 'draft')
                    """, logger: logger)
                try await replaceTriggers(record, on: connection)
                return .created
            case (_, true)?:
                return .unchanged
            case ("draft", false)?:
                try await connection.queryAll(
                    """
                    UPDATE agent_registry SET name = \(record.name), author = \(record.author), description = \(record.description),
                        goal_type = \(record.goalType), goal_description = \(record.goalDescription),
                        definition = \(record.definition)::jsonb, updated_at = now()
                    WHERE agent_id = \(record.agentID) AND version = \(record.version)
                    """, logger: logger)
                try await replaceTriggers(record, on: connection)
                return .replaced
            case (let status, false)?:
                throw RegistryError(
                    .publishedImmutable,
                    "agent '\(record.agentID)' version \(record.version) is \(status) and cannot change; register the new definition under a new version (e.g. a higher patch version)"
                )
            }
        }
    }

    private func replaceTriggers(_ record: AgentVersionRecord, on connection: PostgresConnection) async throws {
        try await connection.queryAll(
            "DELETE FROM agent_event_triggers WHERE agent_id = \(record.agentID) AND version = \(record.version)", logger: logger)
        guard !record.triggers.isEmpty else { return }
        let types = record.triggers.map(\.eventType)
        let priorities = record.triggers.map(\.priority)
        let filters = record.triggers.map { $0.filters ?? "" }
        try await connection.queryAll(
            """
            INSERT INTO agent_event_triggers (agent_id, version, event_type, priority, filters)
            SELECT \(record.agentID), \(record.version), t, p, NULLIF(f, '')::jsonb
            FROM unnest(\(types)::text[], \(priorities)::text[], \(filters)::text[]) AS x(t, p, f)
            """, logger: logger)
    }

    /// Every version of an agent (any status), in no particular order.
    public func versions(of agentID: String) async throws -> [StoredAgentVersion] {
        try await fetchVersions("WHERE agent_id = \(agentID)")
    }

    /// Every version of every agent.
    public func allVersions() async throws -> [StoredAgentVersion] {
        try await fetchVersions("")
    }

    /// The current version of every published (not retired) agent that declares budgets or draws from event pools:
    /// those that budgets concern, in one query.
    public func currentVersionsWithBudgets() async throws -> [StoredAgentVersion] {
        try await fetchVersions(
            """
            WHERE (agent_id, version) IN (SELECT agent_id, active_version FROM agents WHERE status <> 'retired' AND active_version IS NOT NULL)
              AND (definition ? 'budgets' OR jsonb_array_length(coalesce(definition->'event_pools', '[]'::jsonb)) > 0)
            """)
    }

    /// One version, or nil.
    public func version(_ version: String, of agentID: String) async throws -> StoredAgentVersion? {
        try await fetchVersions("WHERE agent_id = \(agentID) AND version = \(version)").first
    }

    private func fetchVersions(_ condition: PostgresQuery) async throws -> [StoredAgentVersion] {
        var query: PostgresQuery = """
            SELECT agent_id, version, status, definition::text, extract(epoch FROM created_at)::float8,
                   extract(epoch FROM updated_at)::float8, extract(epoch FROM published_at)::float8
            FROM agent_registry
            """
        query.sql += " " + condition.sql
        query.binds = condition.binds
        var result: [StoredAgentVersion] = []
        for try await (id, version, status, definition, created, updated, published)
            in try await database.query(query, logger: logger).decode((String, String, String, String, Double, Double, Double?).self)
        {
            result.append(
                StoredAgentVersion(
                    agentID: id, version: version, status: StoredAgentVersion.Status(rawValue: status) ?? .draft,
                    definition: definition, createdAt: Date(timeIntervalSince1970: created),
                    updatedAt: Date(timeIntervalSince1970: updated),
                    publishedAt: published.map { Date(timeIntervalSince1970: $0) }))
        }
        return result
    }

    /// Where one agent stands, or nil when it was never published.
    public func state(of agentID: String) async throws -> AgentState? {
        try await states(condition: "WHERE agent_id = \(agentID)").first
    }

    /// Every agent that was ever published (retired ones included).
    public func states() async throws -> [AgentState] {
        try await states(condition: "")
    }

    private func states(condition: PostgresQuery) async throws -> [AgentState] {
        var query: PostgresQuery = "SELECT agent_id, active_version, status, bound_patterns::text, canary_version, canary_percent FROM agents"
        query.sql += " " + condition.sql
        query.binds = condition.binds
        var result: [AgentState] = []
        for try await (id, active, status, patterns, canaryVersion, canaryPercent)
            in try await database.query(query, logger: logger).decode((String, String?, String, String, String?, Int32?).self)
        {
            let bound = try StoredJSON.strings(patterns, "the bound patterns of \(id)")
            let canary = canaryVersion.flatMap { version in canaryPercent.map { AgentState.Canary(version: version, percent: Int($0)) } }
            result.append(AgentState(agentID: id, activeVersion: active, retired: status == "retired", boundPatterns: bound, canary: canary))
        }
        return result.sorted { $0.agentID < $1.agentID }
    }

    /// Records a publication: the version becomes published (for good) and the agent's active version; a canary the
    /// agent had ends.
    public func markPublished(agentID: String, version: String, boundPatterns: [String]) async throws {
        let patterns = StoredJSON.text(boundPatterns)
        try await transaction(agentID: agentID) { connection in
            try await connection.queryAll(
                """
                UPDATE agent_registry SET status = 'published', published_at = coalesce(published_at, now()), updated_at = now()
                WHERE agent_id = \(agentID) AND version = \(version)
                """, logger: logger)
            try await connection.queryAll(
                """
                INSERT INTO agents (agent_id, active_version, status, bound_patterns, updated_at)
                VALUES (\(agentID), \(version), 'active', \(patterns)::jsonb, now())
                ON CONFLICT (agent_id) DO UPDATE SET active_version = EXCLUDED.active_version, status = 'active',
                    bound_patterns = EXCLUDED.bound_patterns, canary_version = NULL, canary_percent = NULL, canary_started_at = NULL,
                    updated_at = now()
                """, logger: logger)
        }
    }

    /// Records a retirement: the agent routes nothing any more (its versions stay as they are).
    public func markRetired(agentID: String) async throws {
        try await transaction(agentID: agentID) { connection in
            try await connection.queryAll(
                """
                UPDATE agents SET status = 'retired', bound_patterns = '[]'::jsonb, canary_version = NULL, canary_percent = NULL,
                    canary_started_at = NULL, updated_at = now()
                WHERE agent_id = \(agentID)
                """, logger: logger)
        }
    }

    /// Runs `body` holding the agent's session-level advisory lock on a connection of its own, so that a publish or
    /// retire that also changes the broker runs alone for that agent across hosts. The lock's statements are watched
    /// like every other (``Database/answer(on:_:)``): a connection that closes while they wait ends the wait with an
    /// error instead of hanging. A lock whose release fails on a connection still open is released by closing that
    /// connection, so that no pooled session keeps it.
    public func withAgentLock<T: Sendable>(_ agentID: String, _ body: @Sendable () async throws -> T) async throws -> T {
        let key = "agentry.agent:" + agentID
        let logger = self.logger
        return try await database.withConnection { connection in
            _ = try await Database.answer(on: connection) { connection in
                try await connection.queryAll("SELECT pg_advisory_lock(hashtextextended(\(key), 1))", logger: logger)
            }
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            do {
                _ = try await Database.answer(on: connection) { connection in
                    try await connection.queryAll("SELECT pg_advisory_unlock(hashtextextended(\(key), 1))", logger: logger)
                }
            } catch {
                // A closed connection took the lock with its session; an open one still holds it: end that session.
                logger.warning(
                    "cannot release the agent's lock; closing its connection",
                    metadata: [
                        "agentry.agent.id": "\(agentID)", "error": "\(StoreError.describe(error))",
                    ])
                try? await connection.close()
            }
            return try result.get()
        }
    }

    /// A transaction holding the agent's transaction-level advisory lock, watched like every other statement
    /// (``Database/withTransaction(logger:_:)``).
    @discardableResult
    func transaction<T: Sendable>(agentID: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let key = "agentry.agent:" + agentID
        do {
            return try await database.withTransaction(logger: logger) { [logger] connection in
                try await connection.queryAll("SELECT pg_advisory_xact_lock(hashtextextended(\(key), 0))", logger: logger)
                return try await body(connection)
            }
        } catch let error as RegistryError {
            throw error
        } catch {
            throw RegistryError(.database, "registry update of agent '\(agentID)' failed: \(StoreError.describe(error))")
        }
    }
}

/// A registry operation that cannot be done, and why.
public struct RegistryError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public static let publishedImmutable = Code("published version is immutable")
        public static let notFound = Code("not found")
        /// The agent is not in a state that allows it (e.g. promoting a canary it does not have).
        public static let conflict = Code("conflict")
        public static let invalid = Code("invalid definition")
        public static let database = Code("database")
        public static let broker = Code("broker")
        public var description: String { name }
    }
    public var code: Code
    public var message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}
