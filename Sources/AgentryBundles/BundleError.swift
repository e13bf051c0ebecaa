/// Why a bundle, a key or a catalog cannot be used; each message names the file, key or agent concerned and, where
/// there is one, what to do.
public struct BundleError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        /// Not a zip archive, no manifest, a manifest that does not decode, limits exceeded.
        case malformed
        /// A path that would land outside the installation's directory: `..`, absolute, a link.
        case unsafePath
        /// A file's bytes do not match the manifest's SHA-256, or the archive and the manifest list different files.
        case tamperedFile
        /// The manifest does not match its signature.
        case tamperedManifest
        /// No `manifest.sig`.
        case unsigned
        /// Signed by a key the installation does not trust.
        case untrustedKey
        /// A key file that cannot be read.
        case badKey
        /// Packing: the directory cannot become a bundle (no bundle.yaml, an invalid definition, a link).
        case packing
        /// The catalog cannot be read or does not hold what was asked for.
        case catalog
        /// No set of versions satisfies every dependency range.
        case conflict
        /// Installing: the version exists with other content, Agentry too old, a file cannot be placed.
        case install
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
