import AgentryCore
import Crypto
public import Foundation

/// The short-lived credential an exec handler gets (`AGENTRY_RUN_TOKEN`) to call the admin API back within its
/// grants: publish events, invoke the subagents its definition names, and report its own run's progress — nothing
/// else (no definitions, no locks, no approvals, no other runs).
///
/// `agr1.<payload>.<mac>`: the payload is JSON (`run`, `agent`, `subagents`, `grants`, `exp`), base64url; the mac its
/// HMAC-SHA256 under the cluster's run-token key (`signing_keys`, made by a migration, read by every worker and admin
/// endpoint), base64url. Stateless, so minting one costs a run no database write; it expires shortly after the run's
/// timeout. (Written here rather than taken from a JWT library: none is among the machine's packages, and the format
/// needs one fixed algorithm, no header negotiation.)
public struct RunToken: Sendable, Hashable {
    public var runID: UUID
    public var agentID: String
    /// The subagents it may invoke.
    public var subagents: [String]
    /// The definition's permissions, qualified (`devices.reboot`), as `AGENTRY_PERMISSIONS` has them.
    public var grants: [String]
    public var expiresAt: Date

    static let prefix = "agr1."

    public init(runID: UUID, agentID: String, subagents: [String], grants: [String], expiresAt: Date) {
        self.runID = runID
        self.agentID = agentID
        self.subagents = subagents
        self.grants = grants
        self.expiresAt = expiresAt
    }

    /// Whether `bearer` looks like a run token (rather than an admin token).
    public static func isRunToken(_ bearer: String) -> Bool { bearer.hasPrefix(prefix) }

    public func signed(with key: [UInt8]) -> String {
        let payload: JSONValue = .object([
            "run": .string(runID.uuidString.lowercased()), "agent": .string(agentID), "subagents": .array(subagents.map(JSONValue.string)),
            "grants": .array(grants.map(JSONValue.string)), "exp": .int(Int64(expiresAt.timeIntervalSince1970.rounded(.up))),
        ])
        let body = Self.base64url(Array(JSON.serialize(payload).utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Array(body.utf8), using: SymmetricKey(data: key))
        return Self.prefix + body + "." + Self.base64url(Array(mac))
    }

    /// Why a token is refused.
    public enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        case malformed, badSignature, expired(Date)
        public var description: String {
            switch self {
            case .malformed: return "the run token is malformed"
            case .badSignature: return "the run token's signature does not match (a token of another cluster, or altered)"
            case .expired(let at): return "the run token expired at \(Timestamp.format(at)) (a token lives as long as its run may)"
            }
        }
    }

    /// The token `text` carries, if its signature holds under `key` and it has not expired at `now`.
    public static func verify(_ text: String, key: [UInt8], now: Date = Date()) -> Result<RunToken, Refusal> {
        guard text.hasPrefix(prefix) else { return .failure(.malformed) }
        let parts = text.dropFirst(prefix.count).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let mac = decode64url(String(parts[1])) else { return .failure(.malformed) }
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Array(parts[0].utf8), using: SymmetricKey(data: key)) else {
            return .failure(.badSignature)
        }
        guard let bytes = decode64url(String(parts[0])), case .object(let o)? = try? JSON.parse(bytes),
            let run = o["run"]?.stringValue.flatMap(UUID.init(uuidString:)), let agent = o["agent"]?.stringValue,
            let exp = o["exp"]?.intValue
        else { return .failure(.malformed) }
        let token = RunToken(
            runID: run, agentID: agent, subagents: o["subagents"]?.arrayValue?.compactMap(\.stringValue) ?? [],
            grants: o["grants"]?.arrayValue?.compactMap(\.stringValue) ?? [], expiresAt: Date(timeIntervalSince1970: Double(exp)))
        guard token.expiresAt > now else { return .failure(.expired(token.expiresAt)) }
        return .success(token)
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decode64url(_ text: String) -> [UInt8]? {
        var base = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base.count % 4 != 0 { base += "=" }
        return Data(base64Encoded: base).map(Array.init)
    }
}
