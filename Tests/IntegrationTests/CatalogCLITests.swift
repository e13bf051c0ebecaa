import AgentryBundles
import Foundation
import Testing

/// `agentry catalog index|search|show`, run as a user would.
@Suite("agentry catalog")
struct CatalogCLITests {
    func agentry(_ arguments: [String], catalog: String? = nil) throws -> (status: Int32, output: String) {
        try TestEnvironment.run(
            TestEnvironment.agentryExecutable, ["catalog"] + arguments, environment: ["AGENTRY_CATALOG": catalog ?? ""])
    }

    @Test("index a folder, then search and show its bundles, as text and JSON")
    func indexSearchShow() throws {
        let key = BundleSigningKey(comment: "qa")
        let directory = try CatalogFixture.devices(key: key)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try CatalogFixture.bundle("unsigned-helper", "0.1.0").write(
            to: URL(fileURLWithPath: "\(directory)/unsigned-helper-0.1.0.agentry"))

        let indexed = try agentry(["index", directory])
        #expect(indexed.status == 0, "\(indexed.output)")
        #expect(indexed.output.contains("indexed 5 bundles in \(directory)/index.json"), "\(indexed.output)")
        #expect(indexed.output.contains("device-rebooter  1.3.0    device-rebooter-1.3.0.agentry  \(key.publicKey.fingerprint)"), "\(indexed.output)")
        #expect(indexed.output.contains("unsigned-helper  0.1.0    unsigned-helper-0.1.0.agentry  unsigned"), "\(indexed.output)")
        #expect(FileManager.default.fileExists(atPath: "\(directory)/index.json"))

        let search = try agentry(["search", "rebooter", "--catalog", directory])
        #expect(search.status == 0, "\(search.output)")
        let lines = search.output.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("ID") == true)
        #expect(
            lines.dropFirst().map { $0.split(separator: " ").prefix(2).joined(separator: " ") } == [
                "device-rebooter 1.2.0", "device-rebooter 1.3.0",
            ], "\(search.output)")

        // AGENTRY_CATALOG instead of --catalog; JSON output.
        let json = try agentry(["search", "DEVICE-CHECK", "--json"], catalog: directory)
        #expect(json.status == 0, "\(json.output)")
        let listing = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any]
        #expect(listing?["count"] as? Int == 2)
        let bundles = listing?["bundles"] as? [[String: Any]] ?? []
        #expect(bundles.map { $0["version"] as? String } == ["1.0.0", "1.1.0"])

        let show = try agentry(["show", "device-check", "--catalog", directory])
        #expect(show.status == 0, "\(show.output)")
        for expected in [
            "device-check 1.1.0", "device-check 1.0.0", "agents: device-check 1.1.0",
            "dependencies: device-rebooter ^1.2 (for device-check)", "permissions: devices: read, reboot",
            "approvals: devices.reboot", "signed by: \(key.publicKey.fingerprint)",
        ] {
            #expect(show.output.contains(expected), "\(expected) in \(show.output)")
        }
        // Newest first.
        let newest = try #require(show.output.range(of: "device-check 1.1.0"))
        let older = try #require(show.output.range(of: "device-check 1.0.0"))
        #expect(newest.lowerBound < older.lowerBound)

        let unsigned = try agentry(["show", "unsigned-helper", "--catalog", directory])
        #expect(unsigned.output.contains("signed by: nobody (unsigned)"), "\(unsigned.output)")

        let unknown = try agentry(["show", "nothing-here", "--catalog", directory])
        #expect(unknown.status != 0)
        #expect(unknown.output.contains("the catalog \(directory) has no bundle nothing-here"), "\(unknown.output)")
    }

    @Test("without --catalog or AGENTRY_CATALOG, or with a damaged bundle, the error says what to do")
    func errors() throws {
        let none = try agentry(["search", "x"])
        #expect(none.status != 0)
        #expect(none.output.contains("no catalog given: pass --catalog DIR|URL or set AGENTRY_CATALOG"), "\(none.output)")

        let directory = try CatalogFixture.directory(["broken.agentry": Data("not a zip".utf8)])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let damaged = try agentry(["index", directory])
        #expect(damaged.status != 0)
        #expect(damaged.output.contains("\(directory)/broken.agentry: not a bundle"), "\(damaged.output)")

        let noIndex = try agentry(["search", "x", "--catalog", directory])
        #expect(noIndex.status != 0)
        #expect(noIndex.output.contains("cannot read the catalog index: \(directory)/index.json does not exist"), "\(noIndex.output)")
    }
}
