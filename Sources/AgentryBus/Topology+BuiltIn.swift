/// The topology compiled into the binary: the files of `Sources/AgentryBus/Topology/`, which SwiftPM embeds
/// (`resources: [.embedInCode("Topology")]`) as one constant per file. SwiftPM gives no list of them, so a new file
/// gets a line here too; a test checks that this list and the directory make the same topology.
extension Topology {
    static let builtInFiles: [(name: String, bytes: [UInt8])] = [
        ("agentry.yaml", PackageResources.agentry_yaml),
        ("event-pools.yaml", PackageResources.event_pools_yaml),
        ("skills.yaml", PackageResources.skills_yaml),
        ("webhooks.yaml", PackageResources.webhooks_yaml),
    ]

    /// The topology this binary was built with.
    public static let builtIn: Topology = {
        do {
            return try merge(builtInFiles.map { ($0.name, String(decoding: $0.bytes, as: UTF8.self)) })
        } catch {
            preconditionFailure("the built-in topology does not load: \(error)")
        }
    }()
}
