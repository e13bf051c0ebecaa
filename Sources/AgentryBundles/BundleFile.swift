public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Writing and reading files whose mode matters: keys and bundles.
public enum BundleFile {
    /// Writes `data` to `path` through a temporary file created with `mode` (never readable by others, even for a
    /// moment, when `mode` says so) and renamed into place.
    public static func write(_ data: Data, to path: String, mode: Int) throws(BundleError) {
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else { throw BundleError(.install, "cannot write '\(path)': \(String(cString: strerror(errno)))") }
        let written = data.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count, let base = bytes.baseAddress {
                let n = Glibc.write(fd, base + offset, bytes.count - offset)
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        fchmod(fd, mode_t(mode))
        close(fd)
        guard written, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw BundleError(.install, "cannot write '\(path)': \(reason)")
        }
    }

    /// The mode bits of `path` (`0o777` part), or nil when it cannot be read.
    public static func mode(_ path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_mode & 0o777)
    }
}

extension BundleSigningKey {
    /// The private key in `path`, refusing one that others can read (as ssh does).
    public init(contentsOf path: String) throws(BundleError) {
        guard let mode = BundleFile.mode(path), let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw BundleError(.badKey, "cannot read the signing key '\(path)'")
        }
        if mode & 0o077 != 0 {
            throw BundleError(
                .badKey,
                "the signing key '\(path)' can be read by others (mode \(String(mode, radix: 8))); `chmod 600 \(path)` first")
        }
        try self.init(fileContents: text)
    }
}
