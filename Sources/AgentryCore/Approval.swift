/// A handler's request for a person's approval before it goes on, from its result:
///
/// ```json
/// {"request_approval": {"permission": "devices.reboot", "reason": "tv-3 shows a black screen", "then": {"step": "reboot"}}}
/// ```
///
/// The run waits (`awaiting_approval`, holding no slot or lock) until someone approves or rejects it, or the request
/// expires; approved, its handler is called again with the decision and `then`.
public struct ApprovalRequest: Sendable, Hashable {
    /// `<section>.<permission>`.
    public var permission: String
    public var reason: String?
    /// What the handler gets back once approved.
    public var then: JSONValue?
    /// How long the request may wait; nil: ``defaultExpirySeconds``.
    public var expiresInSeconds: Int?

    /// A day.
    public static let defaultExpirySeconds = 86_400
    /// A month.
    public static let maxExpirySeconds = 2_678_400

    public init(permission: String, reason: String? = nil, then: JSONValue? = nil, expiresInSeconds: Int? = nil) {
        self.permission = permission
        self.reason = reason
        self.then = then
        self.expiresInSeconds = expiresInSeconds
    }

    /// The request a result makes: nil when it has no `request_approval`; a problem naming the bad field otherwise. The
    /// permission must be one the definition grants.
    public static func from(
        result: JSONObject, definition: AgentDefinition, vocabulary: AgentVocabulary = .standard
    ) -> Result<ApprovalRequest, DelegationProblem>? {
        guard let value = result["request_approval"] else { return nil }
        guard case .object(let object) = value else {
            return .failure(DelegationProblem("'request_approval' must be an object with permission, reason and then, not \(value.kindName)"))
        }
        let known: Set<String> = ["permission", "reason", "then", "expires_in_seconds"]
        if let extra = object.keys.sorted().first(where: { !known.contains($0) }) {
            return .failure(
                DelegationProblem("request_approval has an unknown key '\(extra)'; expected permission, reason, then, expires_in_seconds"))
        }
        guard let entry = object["permission"]?.stringValue else {
            return .failure(DelegationProblem("request_approval has no 'permission' (e.g. \"devices.reboot\")"))
        }
        guard let permission = definition.qualifiedPermission(entry, vocabulary: vocabulary) else {
            return .failure(
                DelegationProblem(
                    "request_approval.permission '\(entry)' is not a permission \(definition.metadata.id) is granted (granted: \(definition.grantedPermissions.joined(separator: ", ")))"
                ))
        }
        var reason: String?
        if let r = object["reason"] {
            guard let text = r.stringValue else { return .failure(DelegationProblem("request_approval.reason must be a string")) }
            reason = text
        }
        var expiry: Int?
        if let e = object["expires_in_seconds"] {
            guard let seconds = e.numberValue, seconds >= 1, seconds <= Double(maxExpirySeconds), seconds == seconds.rounded() else {
                return .failure(
                    DelegationProblem("request_approval.expires_in_seconds must be a whole number of seconds from 1 to \(maxExpirySeconds)"))
            }
            expiry = Int(seconds)
        }
        return .success(ApprovalRequest(permission: permission, reason: reason, then: object["then"], expiresInSeconds: expiry))
    }
}

extension AgentDefinition {
    /// Every permission the definition grants, qualified (`devices.take_control`), in section order.
    public var grantedPermissions: [String] {
        ["devices", "database", "external"].flatMap { section in permissions.granted(in: section).map { "\(section).\($0)" } }
    }

    /// `entry` qualified (`reboot` → `devices.reboot` when one section has it), when the definition grants it.
    public func qualifiedPermission(_ entry: String, vocabulary: AgentVocabulary = .standard) -> String? {
        let granted = grantedPermissions
        if granted.contains(entry) { return entry }
        let owners = vocabulary.permissionSections.filter { $0.allowed.contains(entry) }
        guard owners.count == 1 else { return nil }
        let qualified = "\(owners[0].section).\(entry)"
        return granted.contains(qualified) ? qualified : nil
    }

    /// The permissions every run uses (`uses`, and `devices.take_control` when it locks devices) that
    /// `approval_required_for` lists: each run waits for their approval before its handler starts. Empty: none.
    public var approvalBeforeRun: [String] {
        let required = Set(config.approvalRequiredFor.compactMap { qualifiedPermission($0) })
        guard !required.isEmpty else { return [] }
        var used = uses.compactMap { qualifiedPermission($0) }
        if resources.contains(where: { $0.hasPrefix("device:") }) { used.append("devices.take_control") }
        var seen = Set<String>()
        return used.filter { required.contains($0) && seen.insert($0).inserted }
    }
}
