import AgentryBundles
import AgentryCore

extension Representation {
    /// One bundle version of a catalog's index (`CatalogBundle`): what it holds and asks for, who signed it and
    /// whether `trusted` holds that key (the comment then is the trusted file's), and whether it is installed here.
    static func catalogBundle(_ entry: CatalogIndex.Entry, trusted: TrustedKeys, installed: Bool) -> JSONValue {
        .object([
            "id": .string(entry.id), "version": .string(entry.version), "sha256": .string(entry.sha256), "size": .int(Int64(entry.size)),
            "description": .string(entry.description), "author": .string(entry.author), "license": .string(entry.license),
            "agents": .array(entry.agents.map { ["id": .string($0.id), "version": .string($0.version)] }),
            "dependencies": .array(
                entry.dependencies.map {
                    ["id": .string($0.id), "range": .string($0.range), "required_by": .array($0.requiredBy.map(JSONValue.string))]
                }),
            "skills": .array(entry.skills.map(JSONValue.string)),
            "permissions": .object(entry.permissions.mapValues { .array($0.map(JSONValue.string)) }),
            "approvals": .array(entry.approvals.map(JSONValue.string)),
            "signer": entry.signature.map { signer($0.publicKey, trusted: trusted) } ?? .null,
            "min_agentry_version": .string(entry.minAgentryVersion), "installed": .bool(installed),
        ])
    }

    /// A signing key (`BundleSigner`), with the comment the trusted keys file gives it when it is trusted.
    static func signer(_ key: BundlePublicKey, trusted: TrustedKeys) -> JSONValue {
        let known = trusted.trusted(key)
        let shown = known ?? key
        return .object([
            "fingerprint": .string(shown.fingerprint), "comment": .string(shown.comment), "key": .string(shown.line),
            "trusted": .bool(known != nil),
        ])
    }
}
