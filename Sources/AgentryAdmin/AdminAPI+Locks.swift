import AgentryBus
import AgentryCore
import AgentryStore

/// Resource locks: holders and waiters, and taking a resource back from its holder.
extension AdminAPI {
    func listLocks(_ input: Operations.ListLocks.Input) async throws -> Operations.ListLocks.Output {
        let locks = try await dependencies.locks.list()
        return .ok(.init(body: .json(.init(locks: locks.map(Representation.lock), count: locks.count))))
    }

    func getLock(_ input: Operations.GetLock.Input) async throws -> Operations.GetLock.Output {
        .ok(.init(body: .json(Representation.lock(try await dependencies.locks.status(try resource(input.path.resource))))))
    }

    /// Releases the lock whoever holds it; the holder's worker stops its task when it sees the release.
    func releaseLock(_ input: Operations.ReleaseLock.Input) async throws -> Operations.ReleaseLock.Output {
        let key = try resource(input.path.resource)
        guard let released = try await dependencies.locks.forceRelease(key) else {
            throw AdminError.notFound("\(key) is not locked")
        }
        try? await dependencies.bus.publish(
            Event(
                type: "resource.released",
                payload: [
                    "resource_id": .string(key.id), "resource_type": .string(key.type), "resource": .string(key.description),
                    "owner_id": .string(released.owner.id), "owner_type": .string(released.owner.kind.rawValue),
                    "fencing_token": released.fencingToken.map { .int($0) } ?? .null, "run_id": Representation.id(released.runID),
                    "forced": true, "by": "admin API",
                ], priority: .normal, source: "agentry.locks"))
        return .ok(
            .init(
                body: .json([
                    "resource": .string(key.description), "owner": .string(released.owner.id),
                    "owner_type": .string(released.owner.kind.rawValue), "run_id": Representation.id(released.runID),
                    "message": .string("released \(key): took it from \(released.owner); its worker stops the task"),
                ])))
    }
}
