import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import HTTPTypes

/// People's holds: taking a resource, giving it back, and the list. The hold itself is kept by the hold keeper of the
/// workers (``AgentryRuntime/HoldKeeper``), so it outlives the request that asks for it.
extension AdminAPI {
    /// How long a request to take a resource waits for the keeper's answer before answering 202.
    static let holdAnswerLimit: Duration = .seconds(30)

    var holdDesk: HoldDesk { HoldDesk(database: dependencies.database, logger: logger) }

    /// The owner a body names, or the caller's admin token's name.
    private func holdOwner(_ name: String?, type: String?) throws -> LockOwner {
        let kind = LockOwner.Kind(rawValue: type ?? "user") ?? .user
        guard kind != .agent else { throw AdminError.badRequest("owner_type must be user or system: agents take resources through their runs") }
        let fallback: String
        switch AdminIdentity.current {
        case .admin(let name): fallback = name
        case .anonymous, .run: fallback = "admin"
        }
        let owner = (name?.trimmingCharacters(in: .whitespaces)).flatMap { $0.isEmpty ? nil : $0 } ?? fallback
        return LockOwner(id: owner, kind: kind)
    }

    func acquireLock(_ input: Operations.AcquireLock.Input) async throws -> Operations.AcquireLock.Output {
        let key = try resource(input.path.resource)
        var owner: String?
        var ownerType: String?
        var forSeconds = 3600
        var waitSeconds = 0
        var priorityName: String?
        if case .json(let body)? = input.body {
            owner = body.owner
            ownerType = body.ownerType?.rawValue
            forSeconds = body.forSeconds ?? forSeconds
            waitSeconds = body.waitSeconds ?? waitSeconds
            priorityName = body.priority
        }
        guard (1...604_800).contains(forSeconds) else { throw AdminError.badRequest("for_seconds must be from 1 to 604800 (7 days)") }
        guard (0...86_400).contains(waitSeconds) else { throw AdminError.badRequest("wait_seconds must be from 0 to 86400 (1 day)") }
        let request = LockHoldRequest(
            resource: key, owner: try holdOwner(owner, type: ownerType), priority: try priorityLevel(priorityName),
            holdFor: .seconds(forSeconds), wait: .seconds(waitSeconds),
            requestedBy: AdminIdentity.current.describe(authority: AdminRequest.current.head.authority))
        let desk = holdDesk
        let hold = try await Self.holdAnswer {
            try await desk.take(request, answerWithin: min(Self.holdAnswerLimit, request.wait + desk.keeperGrace))
        }
        switch hold.state {
        case .requested: return .accepted(.init(body: .json(Representation.hold(hold))))
        case .held: return .ok(.init(body: .json(Representation.hold(hold))))
        case .released, .expired, .timedOut:
            throw AdminError.conflict("the hold \(hold.id.uuidString.lowercased()) on \(key) is \(hold.state.rawValue): \(hold.message ?? "")")
        }
    }

    func giveBackLock(_ input: Operations.GiveBackLock.Input) async throws -> Operations.GiveBackLock.Output {
        let key = try resource(input.path.resource)
        var owner: String?
        var ownerType: String?
        if case .json(let body)? = input.body {
            owner = body.owner
            ownerType = body.ownerType?.rawValue
        }
        let who = AdminIdentity.current.describe(authority: AdminRequest.current.head.authority)
        let desk = holdDesk
        let holder = try holdOwner(owner, type: ownerType)
        let released = try await Self.holdAnswer { try await desk.giveBack(key, owner: holder, by: who) }
        return .ok(.init(body: .json(Representation.hold(released))))
    }

    func listHolds(_ input: Operations.ListHolds.Input) async throws -> Operations.ListHolds.Output {
        let limit = try limit(input.query.limit, default: 100)
        let holds = try await holdDesk.store.list(liveOnly: !(input.query.all ?? false), limit: min(limit, 1000))
        return .ok(.init(body: .json(.init(holds: holds.map(Representation.hold), count: holds.count))))
    }

    func getHold(_ input: Operations.GetHold.Input) async throws -> Operations.GetHold.Output {
        let id = try uuid(input.path.holdId, "hold_id")
        guard let hold = try await holdDesk.store.hold(id) else { throw AdminError.notFound("no hold \(id.uuidString.lowercased())") }
        return .ok(.init(body: .json(Representation.hold(hold))))
    }

    /// The desk's refusals as the API's errors: someone else's hold and a request not granted in time are conflicts
    /// (409, with the holder's name), nothing to give back is 404, a bad request 400.
    static func holdAnswer<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as LockError {
            switch error.code {
            case .invalid: throw AdminError.badRequest(error.message)
            case .notHeld: throw AdminError.notFound(error.message)
            case .timedOut: throw AdminError(status: .conflict, code: "timed_out", message: error.message)
            case .notOwner: throw AdminError(status: .conflict, code: "not_owner", message: error.message)
            case .conflict, .unavailable: throw AdminError.conflict(error.message)
            case .database, .shutDown: throw AdminError.unavailable(error.message)
            }
        }
    }
}
