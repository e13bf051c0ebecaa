import AgentryRuntime
import Foundation
import Synchronization

/// Who sent the request an admin handler answers: an admin token (by its name) or a handler's run token. What the
/// request decides is recorded under it (an approval's `decided_by`).
enum AdminIdentity: Sendable, Equatable {
    case anonymous
    case admin(String)
    case run(RunToken)

    @TaskLocal static var current: AdminIdentity = .anonymous

    /// How decisions name the caller: `admin API (token alice, 127.0.0.1:8000)`.
    func describe(authority: String?) -> String {
        let place = authority ?? "local"
        switch self {
        case .anonymous: return "admin API (\(place))"
        case .admin(let name): return "admin API (token \(name), \(place))"
        case .run(let token): return "run \(token.runID.uuidString.lowercased()) of \(token.agentID) (admin API, \(place))"
        }
    }
}

/// The run-token key, read from the database at the first run token and kept (it never changes).
final class RunTokenKeyCache: Sendable {
    private let key = Mutex<[UInt8]?>(nil)
    private let read: @Sendable () async throws -> [UInt8]

    init(read: @escaping @Sendable () async throws -> [UInt8]) {
        self.read = read
    }

    func value() async throws -> [UInt8]? {
        if let known = key.withLock({ $0 }) { return known }
        let fresh = try await read()
        key.withLock { $0 = fresh }
        return fresh
    }
}
