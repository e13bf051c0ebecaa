public import AgentryCore
public import AgentryStore
public import Foundation
import NIOConcurrencyHelpers

/// Why a hold stopped protecting its task before the task gave it back.
public enum LockLoss: Sendable, Hashable, CustomStringConvertible {
    /// The hold outlived its `expires_at`: it was taken back.
    case expired(ResourceKey, at: Date)
    /// The session that held the advisory locks ended (killed with `pg_terminate_backend`, forced release, network,
    /// server restart): PostgreSQL freed the locks, someone else may hold them now.
    case connectionLost(resources: [ResourceKey], reason: String)

    public var description: String {
        switch self {
        case .expired(let resource, let at):
            return "its lock on \(resource) expired at \(Timestamp.format(at)) and was taken back"
        case .connectionLost(let resources, let reason):
            return "it lost its lock on \(resources.map(\.description).joined(separator: ", ")) (\(reason))"
        }
    }
}

/// A lock request that did not end in a hold.
public struct LockError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable { case timedOut, unavailable, notOwner, notHeld, invalid, database, shutDown, conflict }
    public var code: Code
    public var message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}

/// Resources held together, on one database session of their own.
public final class LockHold: Sendable, CustomStringConvertible {
    public let requestID: UUID
    public let owner: LockOwner
    public let resources: [ResourceKey]
    /// Every grant takes a new, larger token: a guarded system that remembers the largest it saw can refuse a
    /// holder that lost its lock (Kleppmann's fencing tokens).
    public let fencingTokens: [ResourceKey: Int64]
    public let priority: Priority
    public let acquiredAt: Date
    public let expiresAt: Date
    public let runID: UUID?
    let session: LockSession
    let cause: Event?
    let onLoss: @Sendable (LockLoss) -> Void
    enum State: Sendable { case held, released, lost(LockLoss) }
    let state = NIOLockedValueBox<State>(.held)
    let expiry = NIOLockedValueBox<Task<Void, Never>?>(nil)

    init(
        requestID: UUID, owner: LockOwner, resources: [ResourceKey], fencingTokens: [ResourceKey: Int64], priority: Priority,
        acquiredAt: Date, expiresAt: Date, runID: UUID?, session: LockSession, cause: Event?,
        onLoss: @escaping @Sendable (LockLoss) -> Void
    ) {
        self.requestID = requestID
        self.owner = owner
        self.resources = resources
        self.fencingTokens = fencingTokens
        self.priority = priority
        self.acquiredAt = acquiredAt
        self.expiresAt = expiresAt
        self.runID = runID
        self.session = session
        self.cause = cause
        self.onLoss = onLoss
    }

    /// The largest token of the hold (the only one when it holds one resource).
    public var fencingToken: Int64 { fencingTokens.values.max() ?? 0 }
    public var isHeld: Bool { if case .held = state.withLockedValue({ $0 }) { return true } else { return false } }
    public var loss: LockLoss? { if case .lost(let loss) = state.withLockedValue({ $0 }) { return loss } else { return nil } }
    public var description: String { "\(resources.map(\.description).joined(separator: ", ")) held by \(owner)" }

    /// Moves from held to `next`; false when it was no longer held.
    func leave(for next: State) -> Bool {
        state.withLockedValue { s in
            guard case .held = s else { return false }
            s = next
            return true
        }
    }
}
