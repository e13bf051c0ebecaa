import Crypto
public import Foundation

/// An Ed25519 public key that signs bundles, written as one line `ed25519 BASE64 [comment]` (the form of
/// `agentry bundle keygen`'s `.pub` file and of each line of a trusted-keys file).
public struct BundlePublicKey: Sendable, Hashable, CustomStringConvertible {
    /// The 32 raw bytes.
    public let raw: Data
    /// What followed the key on its line (who it belongs to), or "".
    public var comment: String

    public init(raw: Data, comment: String = "") throws(BundleError) {
        guard raw.count == 32, (try? Curve25519.Signing.PublicKey(rawRepresentation: raw)) != nil else {
            throw BundleError(.badKey, "an Ed25519 public key has 32 bytes; this one has \(raw.count)")
        }
        self.raw = raw
        self.comment = comment
    }

    /// Parses `ed25519 BASE64 [comment]`.
    public init(line: String) throws(BundleError) {
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0] == "ed25519" else {
            throw BundleError(.badKey, "expected 'ed25519 BASE64 [comment]', found '\(line.prefix(60))'")
        }
        guard let raw = Data(base64Encoded: String(parts[1])) else {
            throw BundleError(.badKey, "the key '\(parts[1].prefix(60))' is not base64")
        }
        try self.init(raw: raw, comment: parts.count > 2 ? String(parts[2]) : "")
    }

    /// `ed25519 BASE64 comment`.
    public var line: String {
        "ed25519 \(raw.base64EncodedString())" + (comment.isEmpty ? "" : " \(comment)")
    }

    /// `SHA256:` and the unpadded base64 of the key's SHA-256, as ssh shows keys: short enough to compare by eye.
    public var fingerprint: String {
        let digest = Data(SHA256.hash(data: raw)).base64EncodedString()
        return "SHA256:" + digest.replacingOccurrences(of: "=", with: "")
    }

    /// The fingerprint and, when there is one, the comment.
    public var description: String { comment.isEmpty ? fingerprint : "\(fingerprint) (\(comment))" }

    /// Whether `signature` is this key's signature of `message`.
    public func verifies(_ signature: Data, of message: Data) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else { return false }
        return key.isValidSignature(signature, for: message)
    }

    public static func == (lhs: BundlePublicKey, rhs: BundlePublicKey) -> Bool { lhs.raw == rhs.raw }
    public func hash(into hasher: inout Hasher) { hasher.combine(raw) }
}

/// An Ed25519 private key that signs bundles: `agentry bundle keygen`'s `.key` file, one line
/// `agentry-ed25519-private BASE64 [comment]`, kept with mode 0600.
public struct BundleSigningKey: Sendable {
    let key: Curve25519.Signing.PrivateKey
    public var comment: String

    /// A new random key.
    public init(comment: String = "") {
        key = Curve25519.Signing.PrivateKey()
        self.comment = comment
    }

    /// Parses a `.key` file's text.
    public init(fileContents: String) throws(BundleError) {
        let line = fileContents.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0] == "agentry-ed25519-private" else {
            throw BundleError(
                .badKey,
                "not an Agentry signing key (expected 'agentry-ed25519-private BASE64'); make one with `agentry bundle keygen`"
            )
        }
        guard let raw = Data(base64Encoded: String(parts[1])),
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        else { throw BundleError(.badKey, "the signing key is damaged: its value is not a 32-byte base64 key") }
        self.key = key
        comment = parts.count > 2 ? String(parts[2]) : ""
    }

    /// The `.key` file's text.
    public var fileContents: String {
        "agentry-ed25519-private \(key.rawRepresentation.base64EncodedString())" + (comment.isEmpty ? "" : " \(comment)")
            + "\n"
    }

    public var publicKey: BundlePublicKey {
        // A key Crypto made has a valid 32-byte public half.
        (try? BundlePublicKey(raw: key.publicKey.rawRepresentation, comment: comment))!
    }

    /// Signs `message` (a manifest's bytes).
    public func signature(of message: Data) -> BundleSignature {
        // Signing with a valid key does not fail.
        let bytes = (try? key.signature(for: message)) ?? Data()
        return BundleSignature(publicKey: publicKey, signature: Data(bytes))
    }
}

/// The keys an installation trusts: a file with one public key per line (`ed25519 BASE64 comment`), `#` comments and
/// blank lines allowed (`AGENTRY_TRUSTED_KEYS`, `--trusted-keys`).
public struct TrustedKeys: Sendable, Hashable {
    public var keys: [BundlePublicKey]

    public init(_ keys: [BundlePublicKey] = []) {
        self.keys = keys
    }

    /// Parses a trusted-keys file; a bad line is an error naming its number.
    public init(fileContents: String, file: String = "trusted keys") throws(BundleError) {
        var keys: [BundlePublicKey] = []
        for (index, line) in fileContents.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty || text.hasPrefix("#") { continue }
            do {
                keys.append(try BundlePublicKey(line: text))
            } catch {
                throw BundleError(.badKey, "\(file):\(index + 1): \(error.message)")
            }
        }
        self.keys = keys
    }

    /// Reads each file (a trusted-keys file or a single `.pub`).
    public static func load(paths: [String]) throws(BundleError) -> TrustedKeys {
        var all: [BundlePublicKey] = []
        for path in paths {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw BundleError(.badKey, "cannot read the trusted keys file '\(path)'")
            }
            all += try TrustedKeys(fileContents: text, file: path).keys
        }
        return TrustedKeys(all)
    }

    /// The trusted key equal to `key` (with its comment from the trusted file), or nil.
    public func trusted(_ key: BundlePublicKey) -> BundlePublicKey? { keys.first { $0 == key } }
}

/// `manifest.sig`: who signed the manifest and the signature of its exact bytes.
public struct BundleSignature: Codable, Sendable, Hashable {
    public var publicKey: BundlePublicKey
    public var signature: Data

    public init(publicKey: BundlePublicKey, signature: Data) {
        self.publicKey = publicKey
        self.signature = signature
    }

    enum CodingKeys: String, CodingKey {
        case algorithm
        case publicKey = "public_key"
        case signature
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let algorithm = try container.decode(String.self, forKey: .algorithm)
        guard algorithm == "ed25519" else {
            throw DecodingError.dataCorruptedError(
                forKey: .algorithm, in: container, debugDescription: "only ed25519 signatures are known, not '\(algorithm)'")
        }
        let keyText = try container.decode(String.self, forKey: .publicKey)
        let signatureText = try container.decode(String.self, forKey: .signature)
        guard let raw = Data(base64Encoded: keyText), let key = try? BundlePublicKey(raw: raw) else {
            throw DecodingError.dataCorruptedError(
                forKey: .publicKey, in: container, debugDescription: "not a base64 Ed25519 public key")
        }
        guard let signature = Data(base64Encoded: signatureText) else {
            throw DecodingError.dataCorruptedError(forKey: .signature, in: container, debugDescription: "not base64")
        }
        publicKey = key
        self.signature = signature
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode("ed25519", forKey: .algorithm)
        try container.encode(publicKey.raw.base64EncodedString(), forKey: .publicKey)
        try container.encode(signature.base64EncodedString(), forKey: .signature)
    }

    /// Whether it is a valid signature of `manifest`.
    public func verifies(_ manifest: Data) -> Bool { publicKey.verifies(signature, of: manifest) }
}
