import Foundation
import Testing

@testable import AgentryRuntime

#if canImport(Glibc)
import Glibc
#endif

/// Placing and removing a bundle version's files in a temporary bundles directory.
@Suite("Bundle files")
struct BundleFilesTests {
    func mode(_ path: String) -> mode_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o777 : nil
    }

    func withDirectory(_ body: (String) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("agentry-files-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try body(directory + "/bundles")
    }

    @Test("files land in <dir>/<id>/<version>/ with their modes; a right file is kept, a wrong one replaced")
    func place() throws {
        try withDirectory { directory in
            let files = try BundleFiles(directory: directory)
            let version = files.versionDirectory("check", "1.0.0")
            let first = try files.place(
                "check", "1.0.0", files: [("bin/run.sh", Data("#!/bin/sh\n".utf8), true), ("data/a.txt", Data("a".utf8), false)])
            #expect(first == .init(written: 2, kept: 0))
            #expect(mode(version + "/bin/run.sh") == 0o755)
            #expect(mode(version + "/data/a.txt") == 0o644)
            try Data("changed".utf8).write(to: URL(fileURLWithPath: version + "/data/a.txt"))
            let second = try files.place(
                "check", "1.0.0", files: [("bin/run.sh", Data("#!/bin/sh\n".utf8), true), ("data/a.txt", Data("a".utf8), false)])
            #expect(second == .init(written: 1, kept: 1))
            #expect(try String(contentsOfFile: version + "/data/a.txt", encoding: .utf8) == "a")
            #expect(try FileManager.default.contentsOfDirectory(atPath: version + "/data") == ["a.txt"], "no temporary file left")

            #expect(try files.remove("check", "1.0.0", paths: ["bin/run.sh", "data/a.txt"]) == 2)
            #expect(!FileManager.default.fileExists(atPath: directory + "/check"), "empty directories go too")
        }
    }

    @Test("a link under the bundles directory, a file where a directory goes and an unsafe path are refused")
    func refusals() throws {
        try withDirectory { directory in
            let files = try BundleFiles(directory: directory)
            try FileManager.default.createDirectory(atPath: directory + "/check/1.0.0", withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: directory + "/check/1.0.0/bin", withDestinationPath: "/tmp")
            #expect(throws: (any Error).self) { try files.check("check", "1.0.0", paths: ["bin/run.sh"]) }
            try Data().write(to: URL(fileURLWithPath: directory + "/check/1.0.0/data"))
            #expect(throws: (any Error).self) { try files.check("check", "1.0.0", paths: ["data/a.txt"]) }
            #expect(throws: (any Error).self) { try files.check("check", "1.0.0", paths: ["../x"]) }
            #expect(throws: (any Error).self) { try files.check("check", "../1.0.0", paths: ["x"]) }
            // Removing never follows the link.
            _ = try files.remove("check", "1.0.0", paths: ["bin/run.sh"])
            #expect(FileManager.default.fileExists(atPath: "/tmp"))
        }
    }
}
