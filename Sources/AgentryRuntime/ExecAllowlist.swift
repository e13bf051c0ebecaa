import Foundation

#if canImport(Glibc)
// `struct stat` reaches this module through CoreFoundation as well (AsyncHTTPClient imports Foundation publicly), and a
// release build asks for the module that defines it.
import CoreFoundation
import Glibc
#endif

/// The programs a worker's exec handlers may start (`agentry worker --exec-allow PATH_OR_DIR`, repeatable;
/// `AGENTRY_EXEC_ALLOW`, colon-separated).
///
/// Each entry is a program or a directory, compared by real path (symlinks resolved): a directory allows every
/// program under it. A handler's program is looked up in PATH (when it has no `/`) and its symlinks resolved before
/// the check, so `/usr/bin/python3 → python3.11` is checked as `/usr/bin/python3.11`. Allowing a shell or an
/// interpreter (`/bin/sh`, `/usr/bin/python3`) allows whatever an agent's definition writes for it to run.
public struct ExecAllowlist: Sendable, Hashable {
    /// The entries as given.
    public var entries: [String]

    public init(_ entries: [String]) {
        self.entries = entries
    }

    /// The default: the program the example agents name (`/usr/local/bin/blackscreen-recover`); the examples'
    /// scripts come in bundles, whose directory every worker allows (``addingBundles(_:)``). No system directory:
    /// allowing `/bin` would allow `/bin/sh`, and with it anything.
    public static let `default` = ExecAllowlist(["/usr/local/bin/blackscreen-recover"])

    /// Allows every program (for tests and trusted setups: `--exec-allow /`).
    public static let everything = ExecAllowlist(["/"])

    /// The list with the bundles directory (``BundleSettings/directory``) added: a worker lets the programs of
    /// installed bundles run, whatever else it allows. Only the installer writes there, after checking each file
    /// against a signed manifest, so keep the directory writable by the installing user alone.
    public func addingBundles(_ directory: String) -> ExecAllowlist {
        entries.contains(directory) ? self : ExecAllowlist(entries + [directory])
    }

    /// The entries from `AGENTRY_EXEC_ALLOW` (colon-separated), or nil when it is not set.
    public static func fromEnvironment(_ value: String?) -> ExecAllowlist? {
        guard let value, !value.isEmpty else { return nil }
        return ExecAllowlist(value.split(separator: ":").map(String.init).filter { !$0.isEmpty })
    }

    /// The program `argv0` stands for: looked up in `path` when it has no `/`, relative to `workingDirectory`
    /// (itself relative to the worker's directory) otherwise. Returns an absolute path to execute (not resolved
    /// through symlinks), or nil when there is no such file.
    static func locate(_ argv0: String, path: String, workingDirectory: String?) -> String? {
        let here = FileManager.default.currentDirectoryPath
        func absolute(_ p: String, in base: String) -> String { p.hasPrefix("/") ? p : "\(base)/\(p)" }
        if argv0.contains("/") {
            let base = workingDirectory.map { absolute($0, in: here) } ?? here
            let full = absolute(argv0, in: base)
            return FileManager.default.fileExists(atPath: full) ? full : nil
        }
        for directory in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = absolute("\(directory.isEmpty ? "." : String(directory))/\(argv0)", in: here)
            if isExecutableFile(candidate) { return candidate }
        }
        return nil
    }

    static func isExecutableFile(_ path: String) -> Bool {
        var info = Glibc.stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }

    /// The real path of `path` (symlinks and `..` resolved), or nil when it does not exist.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Why the program at `program` (a located path) may not run, or nil when it may.
    func refusal(of program: String, named argv0: String) -> String? {
        let real = Self.realPath(program) ?? program
        for entry in entries {
            guard let allowed = Self.realPath(entry) else { continue }
            if real == allowed || allowed == "/" || real.hasPrefix(allowed + "/") { return nil }
        }
        let shown = real == argv0 ? "'\(argv0)'" : "'\(argv0)' (\(real))"
        return
            "this worker does not allow the program \(shown); allow it with `agentry worker --exec-allow \(real)` (or its directory), or AGENTRY_EXEC_ALLOW; allowed now: \(entries.isEmpty ? "nothing" : entries.joined(separator: ", "))"
    }
}
