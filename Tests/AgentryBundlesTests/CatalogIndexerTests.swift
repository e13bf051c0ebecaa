import AgentryCore
import Foundation
import Testing

@testable import AgentryBundles

/// A small valid bundle: one definition, one handler script, `needs` as dependencies; signed with `key` when given.
func catalogTestBundle(
    _ id: String, _ version: String, needs: [(String, String)] = [], key: BundleSigningKey? = nil
) -> Data {
    let definition = Data("metadata:\n  id: \(id)\n  version: \(version)\n".utf8)
    let script = Data("#!/bin/sh\necho \(id)\n".utf8)
    let manifest = BundleManifest(
        id: id, version: version, description: "Checks devices for \(id)", author: "qa-team", license: "Apache-2.0",
        minAgentryVersion: "0.1.0",
        definitions: [.init(path: "agents/\(id).yaml", id: id, version: version, sha256: BundleArchive.sha256(definition))],
        files: [
            .init(
                path: "handlers/run.sh", sha256: BundleArchive.sha256(script), size: script.count, executable: true,
                usedBy: [id])
        ],
        dependencies: needs.map { .init(id: $0.0, range: $0.1, requiredBy: [id]) }, skills: ["screenshot"],
        permissions: ["devices": ["read"]], approvals: ["devices.reboot"])
    let manifestData = manifest.encoded()
    return BundleWriter.archive(
        manifestData: manifestData, signature: key?.signature(of: manifestData),
        contents: ["agents/\(id).yaml": definition, "handlers/run.sh": script], executable: ["handlers/run.sh"])
}

/// A fresh empty directory under the system's temporary directory.
func temporaryCatalogDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "agentry-catalog-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite("Catalog index")
struct CatalogIndexerTests {
    @Test("a folder of bundles becomes a sorted index with each archive's hash, agents, dependencies and signer")
    func index() throws {
        let directory = try temporaryCatalogDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let key = BundleSigningKey(comment: "qa")
        let files = [
            "device-check-1.10.0.agentry": catalogTestBundle("device-check", "1.10.0", needs: [("device-rebooter", "^1.2")], key: key),
            "device-check-1.2.0.agentry": catalogTestBundle("device-check", "1.2.0"),
            "device-rebooter-1.3.0.agentry": catalogTestBundle("device-rebooter", "1.3.0", key: key),
        ]
        for (name, data) in files { try data.write(to: URL(fileURLWithPath: "\(directory)/\(name)")) }
        try Data("not a bundle".utf8).write(to: URL(fileURLWithPath: "\(directory)/README.txt"))

        let index = try CatalogIndexer.write(directory: directory)
        #expect(index.bundles.map(\.name) == ["device-check 1.2.0", "device-check 1.10.0", "device-rebooter 1.3.0"])
        let newest = try #require(index.entry(id: "device-check", version: "1.10.0"))
        #expect(newest.file == "device-check-1.10.0.agentry")
        #expect(newest.sha256 == BundleArchive.sha256(files["device-check-1.10.0.agentry"]!))
        #expect(newest.size == files["device-check-1.10.0.agentry"]!.count)
        #expect(newest.agents == [.init(id: "device-check", version: "1.10.0")])
        #expect(newest.dependencies.map(\.range) == ["^1.2"])
        #expect(newest.signature?.publicKey == key.publicKey)
        #expect(index.entry(id: "device-check", version: "1.2.0")?.signature == nil)

        // What was written reads back the same, and indexing again gives the same bytes.
        let written = try #require(FileManager.default.contents(atPath: "\(directory)/index.json"))
        #expect(try CatalogIndex.decode(written, source: "index.json") == index)
        #expect(try CatalogIndexer.index(directory: directory).encoded() == written)
        let text = String(decoding: written, as: UTF8.self)
        #expect(text.contains("\"signature\" : null"))
        #expect(text.contains("\"min_agentry_version\" : \"0.1.0\""))

        #expect(index.search("REBOOT").map(\.name) == ["device-rebooter 1.3.0"])
        #expect(index.search("qa-team").count == 3)
        #expect(index.search("screenshot").count == 3)
        #expect(index.search("nothing-like-it").isEmpty)
        #expect(index.entries(id: "device-check").map(\.version) == ["1.2.0", "1.10.0"])
    }

    @Test("a damaged bundle, or a link, is refused, naming its file")
    func damaged() throws {
        let directory = try temporaryCatalogDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try catalogTestBundle("good", "1.0.0").write(to: URL(fileURLWithPath: "\(directory)/good-1.0.0.agentry"))
        var bytes = catalogTestBundle("bad", "1.0.0")
        bytes.removeLast(bytes.count / 2)
        try bytes.write(to: URL(fileURLWithPath: "\(directory)/bad-1.0.0.agentry"))
        let error = try #require(throws: BundleError.self) { try CatalogIndexer.write(directory: directory) }
        #expect(error.message.hasPrefix("\(directory)/bad-1.0.0.agentry: "), "\(error.message)")
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/index.json"))

        // A link is refused too: reading the catalog would not follow it.
        try FileManager.default.removeItem(atPath: "\(directory)/bad-1.0.0.agentry")
        try FileManager.default.createSymbolicLink(
            atPath: "\(directory)/linked-1.0.0.agentry", withDestinationPath: "\(directory)/good-1.0.0.agentry")
        let link = try #require(throws: BundleError.self) { try CatalogIndexer.write(directory: directory) }
        #expect(link.kind == .unsafePath)
        #expect(link.message == "\(directory)/linked-1.0.0.agentry is a link; a catalog's bundles must be regular files in it")
    }

    @Test("two files holding the same bundle id and version are refused, naming both")
    func duplicate() throws {
        let directory = try temporaryCatalogDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try catalogTestBundle("twin", "1.0.0").write(to: URL(fileURLWithPath: "\(directory)/twin.agentry"))
        try catalogTestBundle("twin", "1.0.0", key: BundleSigningKey()).write(
            to: URL(fileURLWithPath: "\(directory)/twin-copy.agentry"))
        #expect(
            throws: BundleError(
                .catalog, "twin-copy.agentry and twin.agentry both hold twin 1.0.0; a catalog holds one bundle per id and version"
            )
        ) {
            try CatalogIndexer.index(directory: directory)
        }
    }

    @Test("an index whose file climbs out of the catalog, or lists a bundle twice, is refused")
    func unsafeIndex() throws {
        var entry = catalogEntry("x", "1.0.0")
        entry.file = "../outside.agentry"
        let escaping = CatalogIndex(bundles: [entry]).encoded()
        let error = try #require(throws: BundleError.self) { try CatalogIndex.decode(escaping, source: "test") }
        #expect(error.kind == .unsafePath)
        #expect(error.message.contains("x 1.0.0") && error.message.contains("'..'"), "\(error.message)")

        let twice = CatalogIndex(bundles: [catalogEntry("x", "1.0.0"), catalogEntry("x", "1.0.0")]).encoded()
        #expect(throws: BundleError(.catalog, "the catalog index test: x 1.0.0 is listed twice")) {
            try CatalogIndex.decode(twice, source: "test")
        }
    }
}
