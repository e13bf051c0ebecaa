import Foundation
import Testing

@testable import AgentryBundles

/// examples/catalog is what Scripts/catalog builds from examples/bundles: these tests fail when a source changed and
/// the catalog was not rebuilt, or when a bundle there is not signed by the examples' key.
@Suite("The example catalog")
struct ExampleCatalogTests {
    static let examples = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples")

    @Test("every example bundle is in the catalog, with the content of its sources, signed by the examples' key")
    func catalogMatchesSources() throws {
        let catalog = Self.examples.appendingPathComponent("catalog")
        let keys = try TrustedKeys.load(paths: [catalog.appendingPathComponent("agentry-examples.pub").path])
        let sources = try FileManager.default.contentsOfDirectory(atPath: Self.examples.appendingPathComponent("bundles").path)
            .sorted()
        #expect(sources.count >= 7)
        for id in sources {
            let (packed, _) = try BundlePacker.pack(
                directory: Self.examples.appendingPathComponent("bundles/\(id)").path, defaultMinAgentryVersion: "0.4.0")
            let file = catalog.appendingPathComponent("\(packed.id)-\(packed.version).agentry").path
            let shipped = try BundleArchive(contentsOf: file)
            #expect(
                shipped.manifest == packed,
                "examples/bundles/\(id) differs from \(file): run Scripts/catalog --key KEY to rebuild the example catalog")
            #expect(try shipped.verify(trusting: keys).signer.comment == "agentry-examples")
        }
        let index = try String(contentsOf: catalog.appendingPathComponent("index.json"), encoding: .utf8)
        for id in sources { #expect(index.contains("\"\(id)\""), "index.json lists \(id)") }
    }
}
