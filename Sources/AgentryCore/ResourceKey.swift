/// A lockable resource, `<type>:<id>` (`device:tv-1`), and the PostgreSQL advisory lock key that guards it.
///
/// The key is FNV-1a (64 bits) of `type`, a zero byte and `id`, as bytes of UTF-8: the same on every host and in
/// every release, independent of Swift's per-process hash seed. Two resources whose keys collide share one advisory
/// lock (they over-lock: one waits for the other); they can never both be held at once, so a collision never
/// under-locks. The metadata rows stay per resource.
public struct ResourceKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var type: String
    public var id: String

    public init(type: String, id: String) {
        self.type = type
        self.id = id
    }

    /// Parses `<type>:<id>`; nil when there is no `:`, or the type or the id is empty.
    public init?(_ text: String) {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let type = String(text[..<colon])
        let id = String(text[text.index(after: colon)...])
        guard !type.isEmpty, !id.isEmpty else { return nil }
        self.init(type: type, id: id)
    }

    public var description: String { "\(type):\(id)" }

    /// The types a resource may have: the agent vocabulary's (`device`, `tree`, `userinterface`).
    public static var knownTypes: [String] { AgentVocabulary.standard.resourceTypes }

    /// Why this resource's type cannot be locked, or nil.
    public var typeProblem: String? {
        guard !Self.knownTypes.contains(type) else { return nil }
        let expected = Self.knownTypes.dropLast().joined(separator: ", ") + " or " + (Self.knownTypes.last ?? "")
        return "unknown resource type '\(type)'; expected \(expected)"
    }

    /// A resource named by a person (`agentry locks`, the admin API), or what is wrong with the name.
    public static func parse(naming text: String) -> Result<ResourceKey, ResourceError> {
        guard let key = ResourceKey(text) else {
            return .failure(ResourceError("'\(text)' is not a resource; write <type>:<id>, e.g. device:tv-1"))
        }
        if let problem = key.typeProblem { return .failure(ResourceError("'\(text)' has \(problem)")) }
        return .success(key)
    }

    /// The `bigint` key of `pg_advisory_lock`.
    public var advisoryKey: Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in Array(type.utf8) + [0] + Array(id.utf8) {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }

    /// The one global order in which a task takes several resources (by type, then id, as bytes), so that two tasks
    /// needing {A, B} and {B, A} take them in the same order and cannot deadlock.
    public static func < (lhs: ResourceKey, rhs: ResourceKey) -> Bool {
        if lhs.type != rhs.type { return Array(lhs.type.utf8).lexicographicallyPrecedes(Array(rhs.type.utf8)) }
        return Array(lhs.id.utf8).lexicographicallyPrecedes(Array(rhs.id.utf8))
    }

    /// The resources a task of `definition` must hold for `event`: its `resources` templates filled from the event,
    /// each once, in the global order. A template that fills to an empty id is reported rather than locked.
    public static func resources(of definition: AgentDefinition, for event: Event) -> Result<[ResourceKey], ResourceError> {
        var keys = Set<ResourceKey>()
        for template in definition.resources {
            let text = EventTemplate.renderText(template, with: event)
            guard let key = ResourceKey(text) else {
                return .failure(
                    ResourceError("resource '\(template)' is '\(text)' for event \(event.id): its id is empty (does the payload have the field?)"))
            }
            keys.insert(key)
        }
        return .success(keys.sorted())
    }

    /// Why an agent may not lock this resource, or nil when it may: a device needs `take_control` in
    /// `permissions.devices`.
    public func permissionProblem(for definition: AgentDefinition) -> String? {
        guard type == "device", !definition.permissions.devices.contains("take_control") else { return nil }
        return "agent \(definition.metadata.id) may not take control of \(self): add take_control to permissions.devices"
    }
}

public struct ResourceError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
