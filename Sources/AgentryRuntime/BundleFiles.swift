import AgentryBundles
import Foundation

#if canImport(Glibc)
// `struct stat` reaches this module through CoreFoundation as well (AsyncHTTPClient imports Foundation publicly), and a
// release build asks for the module that defines it.
import CoreFoundation
import Glibc
#endif

/// Places the files of bundle versions under the bundles directory, and removes them, never anywhere else.
///
/// Each version's files go to `<root>/<bundle-id>/<version>/<path>`. The paths were checked when the archive was read
/// (``BundlePath``) and are checked again here; no existing component below the root may be a symbolic link (a link
/// planted there could send a write anywhere the installer may write), and after each file is in place its real path
/// must lie inside its version's directory. Directories are made 0755; a file is written to a temporary name in its
/// directory and renamed over its target (a worker never runs half a script), 0755 when the manifest marks it
/// executable, 0644 otherwise. A file already there with the right SHA-256 is left as it is (its mode corrected).
struct BundleFiles {
    /// The bundles directory's real path (the directory itself may be a link, as `/var/lib` sometimes is).
    let root: String

    /// Opens the bundles directory, making it (and its parents) when missing.
    init(directory: String) throws(BundleError) {
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        } catch {
            throw BundleError(.install, "cannot make the bundles directory '\(directory)' (AGENTRY_BUNDLES_DIR): \(Self.reason(error))")
        }
        guard let real = Self.realPath(directory) else {
            throw BundleError(.install, "cannot resolve the bundles directory '\(directory)' (AGENTRY_BUNDLES_DIR)")
        }
        root = real
    }

    /// The directory of one bundle version.
    func versionDirectory(_ bundleID: String, _ version: String) -> String { "\(root)/\(bundleID)/\(version)" }

    /// Checks, before anything is written, that each of `paths` can be placed: a safe path, no link and no file where
    /// a directory must be, no directory where a file must be.
    func check(_ bundleID: String, _ version: String, paths: [String]) throws(BundleError) {
        for path in paths {
            _ = try components(bundleID, version, path)
        }
    }

    /// What ``place(_:_:files:)`` did.
    struct Placement: Sendable, Hashable {
        var written = 0
        var kept = 0
    }

    /// Writes the files (path, bytes, executable) of one version.
    func place(
        _ bundleID: String, _ version: String, files: [(path: String, bytes: Data, executable: Bool)]
    ) throws(BundleError)
        -> Placement
    {
        var placement = Placement()
        let versionDirectory = versionDirectory(bundleID, version)
        guard BundleID.isValid(bundleID), BundlePath.refusal("\(bundleID)/\(version)") == nil else {
            throw BundleError(.unsafePath, "unsafe bundle id or version: '\(bundleID)/\(version)'")
        }
        // The version's directory even without files: its handlers run there.
        _ = try makeDirectories([bundleID, version])
        for file in files {
            let parts = try components(bundleID, version, file.path)
            let current = try makeDirectories(parts.dropLast())
            let target = current + "/" + parts[parts.count - 1]
            let mode: mode_t = file.executable ? 0o755 : 0o644
            if Self.kind(target) == .file, let existing = FileManager.default.contents(atPath: target),
                BundleArchive.sha256(existing) == BundleArchive.sha256(file.bytes)
            {
                chmod(target, mode)
                placement.kept += 1
            } else {
                try BundleFile.write(file.bytes, to: target, mode: Int(mode))
                placement.written += 1
            }
            guard let real = Self.realPath(target), real.hasPrefix(versionDirectory + "/") else {
                unlink(target)
                throw BundleError(.unsafePath, "'\(file.path)' would land outside \(versionDirectory); nothing is placed there")
            }
        }
        return placement
    }

    /// Removes the files `paths` of one version (never following a link), then the directories left empty, the
    /// version's directory and the bundle's when empty. - Returns: how many files were removed.
    func remove(_ bundleID: String, _ version: String, paths: [String]) throws(BundleError) -> Int {
        var removed = 0
        var directories = Set<String>()
        for path in paths {
            let parts: [String]
            do {
                parts = try components(bundleID, version, path)
            } catch {
                // A link or a stray file where the bundle had a directory: not the bundle's file, left alone.
                continue
            }
            var current = root
            for part in parts.dropLast() {
                current += "/" + part
                directories.insert(current)
            }
            let target = current + "/" + parts[parts.count - 1]
            if Self.kind(target) == .file, unlink(target) == 0 { removed += 1 }
        }
        directories.insert("\(root)/\(bundleID)")
        directories.insert(versionDirectory(bundleID, version))
        // Deepest first; rmdir removes only empty directories and never follows a link.
        for directory in directories.sorted(by: { $0.count > $1.count }) {
            rmdir(directory)
        }
        return removed
    }

    // MARK: Helpers

    /// Makes the missing directories of `parts` below the root, one by one, each checked not to be a link once it
    /// exists. - Returns: the deepest one.
    private func makeDirectories(_ parts: some Sequence<String>) throws(BundleError) -> String {
        var current = root
        for part in parts {
            current += "/" + part
            if mkdir(current, 0o755) == 0 {
                chmod(current, 0o755)
            } else if errno != EEXIST {
                throw BundleError(.install, "cannot make the directory '\(current)': \(Self.errnoText())")
            }
            guard Self.kind(current) == .directory else {
                throw BundleError(.install, "'\(current)' is not a directory (a link or a file); the installer places no file through it")
            }
        }
        return current
    }

    /// `<bundle-id>/<version>/<path>` split into its segments, with every existing one checked.
    private func components(_ bundleID: String, _ version: String, _ path: String) throws(BundleError) -> [String] {
        try BundlePath.check(path)
        let full = "\(bundleID)/\(version)/\(path)"
        guard BundleID.isValid(bundleID), BundlePath.refusal(full) == nil else {
            throw BundleError(.unsafePath, "unsafe path in the bundle: '\(full)'")
        }
        let parts = full.split(separator: "/").map(String.init)
        var current = root
        for (index, part) in parts.enumerated() {
            current += "/" + part
            switch Self.kind(current) {
            case .missing:
                return parts
            case .link:
                throw BundleError(
                    .unsafePath, "'\(current)' is a symbolic link; the installer places no file through a link (remove it and install again)")
            case .directory where index == parts.count - 1:
                throw BundleError(.install, "'\(current)' is a directory where the bundle has the file '\(path)'")
            case .file where index < parts.count - 1, .other where index < parts.count - 1:
                throw BundleError(.install, "'\(current)' is not a directory, but the bundle places '\(path)' under it")
            case .directory, .file, .other:
                continue
            }
        }
        return parts
    }

    enum Kind { case missing, link, directory, file, other }

    /// What is at `path`, without following a link.
    static func kind(_ path: String) -> Kind {
        // `Glibc.` because with AgentryBundles importing AsyncHTTPClient publicly, a bare `stat` resolves to
        // CoreFoundation's copy of the header, which MemberImportVisibility refuses.
        var info = Glibc.stat()
        guard lstat(path, &info) == 0 else { return .missing }
        switch info.st_mode & S_IFMT {
        case S_IFLNK: return .link
        case S_IFDIR: return .directory
        case S_IFREG: return .file
        default: return .other
        }
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }

    static func reason(_ error: any Error) -> String {
        (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
    }
}
