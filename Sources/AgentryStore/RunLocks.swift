public import AgentryCore
public import Foundation
import PostgresNIO

/// A lock a run held (or holds): kept with the run when its hold ends (`task_runs.locks`, migration 0029), or read
/// from `resource_locks` while the run still holds it. `resource_locks` itself keeps only each resource's latest
/// holder, so it cannot say what a run held once the resource changed hands.
public struct RunLock: Sendable, Hashable {
    /// How the hold ended: given back, taken back at its expiry, or lost with its database session; `held` while it
    /// lasts.
    public enum Ending: String, Sendable, Hashable { case held, released, expired, lost }

    public var resource: ResourceKey
    public var fencingToken: Int64
    public var acquiredAt: Date
    public var expiresAt: Date
    public var releasedAt: Date?
    public var ending: Ending

    public init(resource: ResourceKey, fencingToken: Int64, acquiredAt: Date, expiresAt: Date, releasedAt: Date?, ending: Ending) {
        self.resource = resource
        self.fencingToken = fencingToken
        self.acquiredAt = acquiredAt
        self.expiresAt = expiresAt
        self.releasedAt = releasedAt
        self.ending = ending
    }

    /// As kept in `task_runs.locks` (and answered by the API).
    public var jsonValue: JSONValue {
        .object([
            "resource": .string(resource.description), "resource_type": .string(resource.type), "resource_id": .string(resource.id),
            "fencing_token": .int(fencingToken), "acquired_at": .string(Timestamp.format(acquiredAt)),
            "expires_at": .string(Timestamp.format(expiresAt)), "released_at": releasedAt.map { .string(Timestamp.format($0)) } ?? .null,
            "ended": .string(ending.rawValue),
        ])
    }

    /// Reads an entry of `task_runs.locks`; nil for one of another shape.
    init?(_ value: JSONValue) {
        guard let type = value[path: "resource_type"]?.stringValue, let id = value[path: "resource_id"]?.stringValue,
            let acquired = value[path: "acquired_at"]?.stringValue.flatMap(Timestamp.parse),
            let expires = value[path: "expires_at"]?.stringValue.flatMap(Timestamp.parse)
        else { return nil }
        self.init(
            resource: ResourceKey(type: type, id: id), fencingToken: value[path: "fencing_token"]?.intValue ?? 0, acquiredAt: acquired,
            expiresAt: expires, releasedAt: value[path: "released_at"]?.stringValue.flatMap(Timestamp.parse),
            ending: value[path: "ended"]?.stringValue.flatMap(Ending.init(rawValue:)) ?? .released)
    }
}

extension LockStore {
    /// Appends the locks of a hold that ended to its run's record (one statement; nothing when the run is unknown).
    public func record(_ locks: [RunLock], of runID: UUID) async throws {
        guard !locks.isEmpty else { return }
        let entries = JSON.serialize(.array(locks.map(\.jsonValue)))
        do {
            try await database.write(
                "UPDATE task_runs SET locks = coalesce(locks, '[]'::jsonb) || \(entries)::jsonb WHERE run_id = \(runID)", logger: logger)
        } catch {
            throw StoreError(.query, "cannot record the locks run \(runID) held", cause: error)
        }
    }

    /// What a run held: the holds that ended (recorded with the run), then those it holds now, in order of acquisition.
    public func locks(of runID: UUID) async throws -> [RunLock] {
        var recorded: [RunLock] = []
        do {
            let rows = try await database.query("SELECT locks::text FROM task_runs WHERE run_id = \(runID) AND locks IS NOT NULL", logger: logger)
            for try await text in rows.decode(String.self) {
                guard case .array(let items) = try JSON.parse(text) else { continue }
                recorded += items.compactMap(RunLock.init)
            }
        } catch {
            throw StoreError(.query, "cannot read the locks run \(runID) held", cause: error)
        }
        var binds = PostgresBindings()
        binds.append(runID)
        let current = try await holders(where: "l.run_id = $1", binds: binds).filter(\.held).map { holder in
            RunLock(
                resource: holder.resource, fencingToken: holder.fencingToken ?? 0, acquiredAt: holder.acquiredAt, expiresAt: holder.expiresAt,
                releasedAt: nil, ending: .held)
        }
        // A hold that ended and was recorded is no longer held (its token is not the holder's any more).
        let ended = Set(recorded.map(\.fencingToken))
        return (recorded + current.filter { !ended.contains($0.fencingToken) }).sorted { ($0.acquiredAt, $0.resource) < ($1.acquiredAt, $1.resource) }
    }
}
