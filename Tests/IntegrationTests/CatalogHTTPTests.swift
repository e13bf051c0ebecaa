import AgentryBundles
import AgentryCore
import Foundation
import Hummingbird
import Testing

/// A catalog served over HTTP by a real server (Hummingbird's file middleware over a catalog directory).
@Suite("Catalog over HTTP", .timeLimit(.minutes(2)))
struct CatalogHTTPTests {
    /// Serves `directory` on 127.0.0.1; returns the serving task (cancel it to stop) and the base URL.
    static func serve(_ directory: String) async throws -> (task: Task<Void, any Error>, url: String) {
        let router = Router()
        router.middlewares.add(FileMiddleware(directory, searchForIndexHtml: false, logger: TestEnvironment.logger))
        let (task, port) = try await StandInServer.serve(router)
        return (task, "http://127.0.0.1:\(port)/")
    }

    @Test("search and fetch work; the fetched bundle is the signed one the index describes")
    func searchAndFetch() async throws {
        let key = BundleSigningKey(comment: "qa")
        let directory = try CatalogFixture.devices(key: key)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try CatalogIndexer.write(directory: directory)
        let (task, url) = try await Self.serve(directory)
        defer { task.cancel() }

        let catalog = Catalog(location: url)
        #expect(try await catalog.index().bundles.count == 4)
        #expect(try await catalog.search("REBOOTER").map(\.name) == ["device-rebooter 1.2.0", "device-rebooter 1.3.0"])
        let entries = try await catalog.entries(id: "device-check")
        #expect(entries.map(\.version) == ["1.0.0", "1.1.0"])
        #expect(entries.allSatisfy { $0.signature?.publicKey == key.publicKey })

        let plan = try DependencyResolver(entries: try await catalog.index().bundles).plan(bundle: "device-check")
        #expect(plan.install.map(\.name) == ["device-rebooter 1.3.0", "device-check 1.1.0"])
        for entry in plan.install {
            let archive = try await catalog.archive(of: entry)
            #expect(archive.manifest.id == entry.id && archive.manifest.version == entry.version)
            #expect(try archive.verify(trusting: TrustedKeys([key.publicKey])).signer == key.publicKey)
        }

        // The index's own URL works as the location too.
        #expect(try await Catalog(location: url + "index.json").entries(id: "device-rebooter").count == 2)
    }

    @Test("a bundle whose bytes differ from the index's hash is refused, naming it")
    func tampered() async throws {
        let key = BundleSigningKey()
        let directory = try CatalogFixture.devices(key: key)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try CatalogIndexer.write(directory: directory)
        // Replaced after indexing: a valid bundle, same id and version, other bytes.
        try CatalogFixture.bundle("device-rebooter", "1.3.0", key: key, note: "changed").write(
            to: URL(fileURLWithPath: "\(directory)/device-rebooter-1.3.0.agentry"))
        let (task, url) = try await Self.serve(directory)
        defer { task.cancel() }

        let catalog = Catalog(location: url)
        let entry = try #require(try await catalog.index().entry(id: "device-rebooter", version: "1.3.0"))
        let error = try await #require(throws: BundleError.self) { try await catalog.archive(of: entry) }
        #expect(error.kind == .tamperedFile)
        #expect(
            error.message.contains("the bundle device-rebooter 1.3.0 at \(url)device-rebooter-1.3.0.agentry does not match the catalog's index"),
            "\(error.message)")
        #expect(error.message.contains(entry.sha256))
        // The untouched one still comes.
        let other = try #require(try await catalog.index().entry(id: "device-rebooter", version: "1.2.0"))
        #expect(try await catalog.archive(of: other).manifest.version == "1.2.0")
    }

    @Test("a missing index or bundle gives the URL and the server's status")
    func notFound() async throws {
        let directory = try CatalogFixture.devices(key: BundleSigningKey())
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try CatalogIndexer.write(directory: directory)
        try FileManager.default.removeItem(atPath: "\(directory)/device-check-1.0.0.agentry")
        let (task, url) = try await Self.serve(directory)
        defer { task.cancel() }

        let nowhere = try await #require(throws: BundleError.self) { try await Catalog(location: url + "nowhere").index() }
        #expect(nowhere.kind == .catalog)
        #expect(nowhere.message == "cannot download the catalog index from \(url)nowhere/index.json: the server answered 404 Not Found")

        let catalog = Catalog(location: url)
        let entry = try #require(try await catalog.index().entry(id: "device-check", version: "1.0.0"))
        let missing = try await #require(throws: BundleError.self) { try await catalog.archive(of: entry) }
        #expect(
            missing.message
                == "cannot download the bundle device-check 1.0.0 from \(url)device-check-1.0.0.agentry: the server answered 404 Not Found")

        // Nothing listening at all: said at once, not after the request's time limit.
        let started = ContinuousClock.now
        let refused = try await #require(throws: BundleError.self) { try await Catalog(location: "http://127.0.0.1:1/").index() }
        #expect(refused.message == "cannot download the catalog index from http://127.0.0.1:1/index.json: connection refused")
        #expect(ContinuousClock.now - started < .seconds(15))
    }
}
