import AgentryBundles
import AgentryCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension BundleInstaller {
    /// The bundle's definitions, read with the normal validation (problems as `agents/x.yaml:LINE:COL: …`), each
    /// matching its manifest entry, with its exec handler's `working_directory` made the absolute directory of the
    /// installed files (joined with a relative one the definition gives). Every problem is reported at once.
    static func definitions(of archive: BundleArchive, directory: String) throws(BundleError) -> [AgentDefinition] {
        let manifest = archive.manifest
        var problems: [String] = []
        var result: [AgentDefinition] = []
        for entry in manifest.definitions {
            guard let text = archive.text(entry.path) else {
                problems.append("\(entry.path): not UTF-8 text")
                continue
            }
            var definition: AgentDefinition
            do {
                definition = try AgentDefinition.parse(yaml: text, file: entry.path)
            } catch {
                problems += error.problems.map(\.description)
                continue
            }
            if definition.metadata.id != entry.id || definition.metadata.version != entry.version {
                problems.append(
                    "\(entry.path): the definition is \(definition.metadata.id) \(definition.metadata.version), but the manifest lists it as \(entry.id) \(entry.version)"
                )
                continue
            }
            if case .exec(var exec) = definition.handler {
                switch Self.workingDirectory(exec.workingDirectory, in: directory) {
                case .success(let resolved): exec.workingDirectory = resolved
                case .failure(let problem): problems.append("\(entry.path): handler.exec.working_directory: \(problem.message)")
                }
                if let program = exec.command.first,
                    let problem = Self.programProblem(program, workingDirectory: exec.workingDirectory, root: directory)
                {
                    problems.append("\(entry.path): handler.exec.command: \(problem)")
                }
                definition.handler = .exec(exec)
            }
            result.append(definition)
        }
        if !problems.isEmpty {
            throw BundleError(
                .install,
                "\(manifest.id) \(manifest.version) holds definitions that cannot be installed:\n"
                    + problems.map { "  \($0)" }.joined(separator: "\n"))
        }
        return result
    }

    /// The absolute working directory of a bundled exec handler: the version's directory, or a directory below it.
    static func workingDirectory(_ given: String?, in root: String) -> Result<String, BundleError> {
        guard var given, !given.isEmpty, given != "." else { return .success(root) }
        if given.hasPrefix("/") {
            return .failure(
                BundleError(
                    .unsafePath,
                    "'\(given)' is absolute, and a bundled agent runs inside its bundle; give a directory relative to the bundle root, or none"))
        }
        while given.hasSuffix("/") { given.removeLast() }
        if let refusal = BundlePath.refusal(given) { return .failure(BundleError(.unsafePath, refusal)) }
        return .success(root + "/" + given)
    }

    /// Why a relative program path would leave the bundle's directory (`../../bin/sh`), or nil. An absolute program
    /// (`/usr/bin/python3`) is the worker's exec allowlist's to allow or not.
    static func programProblem(_ program: String, workingDirectory: String?, root: String) -> String? {
        guard program.contains("/"), !program.hasPrefix("/") else { return nil }
        var segments = (workingDirectory ?? root).split(separator: "/").map(String.init)
        let floor = root.split(separator: "/").count
        for segment in program.split(separator: "/") {
            switch segment {
            case ".": continue
            case "..":
                if segments.count <= floor { return "'\(program)' climbs out of the bundle's directory" }
                segments.removeLast()
            default: segments.append(String(segment))
            }
        }
        return nil
    }
}

/// Whether a host is reached over loopback: `localhost`, 127.0.0.0/8, `::1` (and its IPv4-mapped forms), or a Unix
/// socket's path.
enum LoopbackHost {
    static func isLoopback(_ host: String) -> Bool {
        var name = host.lowercased()
        if name.hasPrefix("/") { return true }
        if name.hasPrefix("["), name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        if name == "localhost" || name.hasSuffix(".localhost") { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, name, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, name, &v6) == 1 {
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
            // ::ffff:127.x.y.z
            return bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff && bytes[12] == 127
        }
        return false
    }
}
