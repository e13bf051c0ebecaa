import AgentryAdmin
import AgentryBundles
import AgentryCore
import Foundation
import NIOHTTP1
import Testing

/// The admin API against its contract, Sources/AgentryAdmin/openapi.yaml, as served at `/openapi.json`.
@Suite("admin API contract")
struct AdminContractTests {
    /// A catalog with no bundle, so that `GET /api/catalog` answers 200 as every other read (without one it is a 404).
    static let emptyCatalog: String = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("agentry-contract-catalog").path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        _ = try? CatalogIndexer.write(directory: directory)
        return directory
    }()

    /// The status codes, content types and bodies must be the ones the document gives, for inputs schemathesis derives
    /// from it: every read with the token, and every write without it (which must be refused, 401).
    @Test("schemathesis finds no failure: reads with the token, writes without it")
    func schemathesis() async throws {
        let schemathesis = try Schemathesis.executable()
        try await withAdminServer(configure: { $0.catalog = Self.emptyCatalog }) { a in
            let token = try #require(a.token)
            let common = [
                "run", "\(a.base)/openapi.json", "--url", a.base,
                "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--max-examples", "15", "--seed", "1", "--workers", "1", "--request-timeout", "20",
                "--generation-database", "none",
            ]
            let reads = try await Schemathesis.run(schemathesis, common + ["--include-method", "GET", "--header", "Authorization: Bearer \(token)"])
            #expect(reads.status == 0, "schemathesis, reads with the token:\n\(reads.output)")
            let writes = try await Schemathesis.run(schemathesis, common + ["--include-method", "POST", "--checks", "ignored_auth"])
            #expect(writes.status == 0, "schemathesis, writes without the token:\n\(writes.output)")
        }
    }

    @Test(
        "every write the document lists answers 401 without the token (but a webhook delivery, 404 for no such source); every read without parameters answers 200"
    )
    func writesNeedTheToken() async throws {
        try await withAdminServer(configure: { $0.catalog = Self.emptyCatalog }) { a in
            let document = try #require(try await a.request(.GET, "/openapi.json").json)
            #expect(document[path: "openapi"] == "3.0.3")
            let paths = try #require(document[path: "paths"]?.objectValue)
            #expect(paths.count > 25)
            var writes = 0
            for (path, operations) in paths.sorted(by: { $0.key < $1.key }) {
                let concrete = path.replacingOccurrences(of: "{agent_id}", with: "nope").replacingOccurrences(of: "{resource}", with: "device:nope")
                    .replacingOccurrences(of: "{instance_id}", with: UUID().uuidString).replacingOccurrences(of: "{run_id}", with: UUID().uuidString)
                for method in (operations.objectValue ?? [:]).keys {
                    switch method {
                    case "post" where path == "/api/webhooks/{source}":
                        // The one write without the token: its signature is its credential.
                        let answer = try await a.request(.POST, "/api/webhooks/nope", body: "{}", authorized: false)
                        #expect(answer.status == 404 && answer.errorCode == "not_found", "POST \(path): \(answer.status) \(answer.text)")
                    case "post":
                        writes += 1
                        let answer = try await a.request(.POST, concrete, body: "{}", authorized: false)
                        #expect(answer.status == 401 && answer.errorCode == "unauthorized", "POST \(path): \(answer.status) \(answer.text)")
                    case "get" where !path.contains("{") && !path.hasSuffix("/status"):
                        let status = try await a.request(.GET, path).status
                        #expect(status == 200, "GET \(path) answered \(status)")
                    default:
                        continue
                    }
                }
            }
            #expect(writes > 10)
        }
    }
}

/// schemathesis (from PyPI), in the virtual environment Scripts/test makes (Scripts/test-requirements.txt).
enum Schemathesis {
    /// `AGENTRY_SCHEMATHESIS`, or the one beside the tests' Python.
    static func executable() throws -> String {
        if let given = ProcessInfo.processInfo.environment["AGENTRY_SCHEMATHESIS"], !given.isEmpty { return given }
        let installed = TestEnvironment.testPython.deletingLastPathComponent().appendingPathComponent("schemathesis").path
        try #require(
            FileManager.default.isExecutableFile(atPath: installed),
            "schemathesis is not installed at \(installed): Scripts/test installs it (Scripts/test-requirements.txt)")
        return installed
    }

    /// Runs schemathesis without holding a thread while it runs; returns its exit status and output.
    static func run(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("agentry-schemathesis-\(UUID().uuidString.prefix(8)).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let output = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = FileManager.default.temporaryDirectory
        process.environment = ProcessInfo.processInfo.environment.merging(["NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"]) { _, new in new }
        process.standardOutput = output
        process.standardError = output
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        try output.close()
        return (status, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }
}
