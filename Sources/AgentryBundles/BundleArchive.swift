import AgentryCore
import Crypto
public import Foundation
import ZIPFoundation

/// A `.agentry` bundle read into memory and checked: a zip archive with `manifest.json`, optionally `manifest.sig`,
/// and exactly the files the manifest lists, each matching its SHA-256.
///
/// Reading checks integrity (structure, paths, hashes, limits); ``verify(trusting:)`` checks who signed it. Neither
/// writes anything to disk: placing files is the installer's job, after both checks passed.
public struct BundleArchive: Sendable {
    public static let manifestPath = "manifest.json"
    public static let signaturePath = "manifest.sig"

    /// Bounds on what a bundle may hold, so that a hostile archive cannot exhaust memory (a zip bomb) or disk.
    public struct Limits: Sendable {
        public var maxEntries = 2000
        public var maxFileBytes = 32 << 20
        public var maxTotalBytes = 128 << 20
        public init() {}
    }

    public let manifest: BundleManifest
    /// `manifest.json` exactly as in the archive (what the signature covers).
    public let manifestData: Data
    public let signature: BundleSignature?
    /// Every definition and file the manifest lists, by path.
    public let contents: [String: Data]
    /// Lowercase hex SHA-256 of the whole archive (what a catalog's index records).
    public let sha256: String
    /// The archive's bytes.
    public let data: Data

    /// Reads and checks `data`; throws ``BundleError`` (`malformed`, `unsafePath`, `tamperedFile`) naming the file.
    public init(data: Data, limits: Limits = Limits()) throws(BundleError) {
        let archive: Archive
        do {
            archive = try Archive(data: data, accessMode: .read, pathEncoding: nil)
        } catch {
            throw BundleError(.malformed, "not a bundle: the file is not a zip archive")
        }
        var entries: [String: Data] = [:]
        var total = 0
        var count = 0
        for entry in archive {
            count += 1
            if count > limits.maxEntries {
                throw BundleError(.malformed, "the bundle holds more than \(limits.maxEntries) entries")
            }
            let path = entry.path
            switch entry.type {
            case .symlink:
                throw BundleError(.unsafePath, "unsafe path in the bundle: '\(path)' is a link")
            case .directory:
                let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
                try BundlePath.check(trimmed)
                continue
            case .file:
                break
            }
            try BundlePath.check(path)
            guard entries[path] == nil else { throw BundleError(.malformed, "the bundle holds '\(path)' twice") }
            guard entry.uncompressedSize <= UInt64(limits.maxFileBytes) else {
                throw BundleError(.malformed, "'\(path)' is larger than \(limits.maxFileBytes >> 20) MiB")
            }
            var bytes = Data()
            do {
                _ = try archive.extract(entry) { chunk in
                    // The header's size can lie; count what actually comes out.
                    guard bytes.count + chunk.count <= limits.maxFileBytes,
                        total + bytes.count + chunk.count <= limits.maxTotalBytes
                    else { throw BundleError(.malformed, "'\(path)' expands past the bundle's size limits") }
                    bytes.append(chunk)
                }
            } catch let error as BundleError {
                throw error
            } catch {
                throw BundleError(.malformed, "'\(path)' cannot be read from the archive: \(error)")
            }
            total += bytes.count
            entries[path] = bytes
        }
        guard let manifestData = entries.removeValue(forKey: Self.manifestPath) else {
            throw BundleError(.malformed, "not a bundle: the archive has no \(Self.manifestPath)")
        }
        let manifest: BundleManifest
        do {
            manifest = try JSONDecoder().decode(BundleManifest.self, from: manifestData)
        } catch {
            throw BundleError(.malformed, "\(Self.manifestPath) cannot be read: \(Self.describe(error))")
        }
        try Self.checkShape(manifest)
        var signature: BundleSignature?
        if let signatureData = entries.removeValue(forKey: Self.signaturePath) {
            do {
                signature = try JSONDecoder().decode(BundleSignature.self, from: signatureData)
            } catch {
                throw BundleError(.malformed, "\(Self.signaturePath) cannot be read: \(Self.describe(error))")
            }
        }
        let listed = manifest.definitions.map { ($0.path, $0.sha256) } + manifest.files.map { ($0.path, $0.sha256) }
        for (path, expected) in listed {
            guard let bytes = entries[path] else {
                throw BundleError(.tamperedFile, "'\(path)' is listed in the manifest but missing from the bundle")
            }
            let actual = Self.sha256(bytes)
            guard actual == expected else {
                throw BundleError(
                    .tamperedFile,
                    "'\(path)' was changed: its SHA-256 is \(actual), the manifest says \(expected)")
            }
        }
        let listedPaths = Set(listed.map(\.0))
        if let extra = entries.keys.sorted().first(where: { !listedPaths.contains($0) }) {
            throw BundleError(.tamperedFile, "'\(extra)' is in the bundle but not in its manifest")
        }
        self.manifest = manifest
        self.manifestData = manifestData
        self.signature = signature
        contents = entries
        sha256 = Self.sha256(data)
        self.data = data
    }

    /// Reads the file at `path`.
    public init(contentsOf path: String, limits: Limits = Limits()) throws(BundleError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BundleError(.malformed, "cannot read the bundle '\(path)'")
        }
        try self.init(data: data, limits: limits)
    }

    /// What ``verify(trusting:)`` found: the trusted key that signed the bundle.
    public struct Trust: Sendable, Hashable {
        public var signer: BundlePublicKey
    }

    /// Checks the signature against `trusted`; throws `unsigned`, `tamperedManifest` or `untrustedKey`.
    public func verify(trusting trusted: TrustedKeys) throws(BundleError) -> Trust {
        guard let signature else {
            throw BundleError(
                .unsigned,
                "\(manifest.id) \(manifest.version) is not signed; sign it with `agentry bundle sign`, or install it with --allow-unsigned on a loopback-only test setup"
            )
        }
        guard signature.verifies(manifestData) else {
            throw BundleError(
                .tamperedManifest,
                "the manifest of \(manifest.id) \(manifest.version) was changed after it was signed (the signature of \(signature.publicKey.fingerprint) does not match it)"
            )
        }
        guard let key = trusted.trusted(signature.publicKey) else {
            throw BundleError(
                .untrustedKey,
                "\(manifest.id) \(manifest.version) is signed by \(signature.publicKey.fingerprint), a key this installation does not trust; add its line (`\(signature.publicKey.line)`) to the trusted keys file (AGENTRY_TRUSTED_KEYS) if you trust it"
            )
        }
        return Trust(signer: key)
    }

    /// The YAML text of the definition at `path`.
    public func text(_ path: String) -> String? { contents[path].flatMap { String(data: $0, encoding: .utf8) } }

    /// The archive with its signature replaced by `key`'s signature of the manifest.
    public func signed(with key: BundleSigningKey) -> Data {
        BundleWriter.archive(
            manifestData: manifestData, signature: key.signature(of: manifestData), contents: contents,
            executable: Set(manifest.files.filter(\.executable).map(\.path)))
    }

    /// Lowercase hex SHA-256 of `data`.
    public static func sha256(_ data: Data) -> String {
        SHA256.hash(data: data).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    /// The manifest's own rules: a known format, an id and versions that parse, safe and distinct paths, well-formed
    /// hashes and ranges.
    static func checkShape(_ manifest: BundleManifest) throws(BundleError) {
        func bad(_ text: String) -> BundleError { BundleError(.malformed, "\(manifestPath): \(text)") }
        guard manifest.format == BundleManifest.currentFormat else {
            throw bad("format \(manifest.format) is not known to this Agentry (it reads format \(BundleManifest.currentFormat)); upgrade Agentry")
        }
        guard BundleID.isValid(manifest.id) else {
            throw bad("id '\(manifest.id)' must be lowercase letters, digits and '-' (at most 64)")
        }
        guard SemanticVersion.parse(manifest.version) != nil else {
            throw bad("version '\(manifest.version)' is not a semantic version (MAJOR.MINOR.PATCH)")
        }
        guard SemanticVersion.parse(manifest.minAgentryVersion) != nil else {
            throw bad("min_agentry_version '\(manifest.minAgentryVersion)' is not a semantic version")
        }
        guard !manifest.definitions.isEmpty else { throw bad("the bundle holds no agent definition") }
        var paths = Set<String>()
        let all = manifest.definitions.map { ($0.path, $0.sha256) } + manifest.files.map { ($0.path, $0.sha256) }
        for (path, hash) in all {
            try BundlePath.check(path)
            guard path != manifestPath, path != signaturePath else { throw bad("'\(path)' is a reserved name") }
            guard paths.insert(path).inserted else { throw bad("'\(path)' is listed twice") }
            guard hash.count == 64, hash.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
                throw bad("'\(path)' has no lowercase hex SHA-256")
            }
        }
        for definition in manifest.definitions {
            guard SemanticVersion.parse(definition.version) != nil else {
                throw bad("definition \(definition.id) has version '\(definition.version)', not a semantic version")
            }
        }
        for dependency in manifest.dependencies where VersionRange.parse(dependency.range) == nil {
            throw bad("dependency \(dependency.id) has range '\(dependency.range)', which does not parse")
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "'\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))' is missing"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "'\(context.codingPath.map(\.stringValue).joined(separator: "."))': \(context.debugDescription)"
        case DecodingError.dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? "not JSON" : "'\(path)': \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }
}

/// The id rule shared with agent ids: lowercase letters, digits and `-`, starting with a letter or digit.
public enum BundleID {
    public static func isValid(_ id: String) -> Bool {
        guard let first = id.unicodeScalars.first, id.unicodeScalars.count <= 64 else { return false }
        func ok(_ s: Unicode.Scalar) -> Bool { ("a"..."z").contains(s) || ("0"..."9").contains(s) }
        return ok(first) && id.unicodeScalars.allSatisfy { ok($0) || $0 == "-" }
    }
}
