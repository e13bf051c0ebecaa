import AgentryBundles
import AgentryCore
import AgentryRuntime
import ArgumentParser
import Foundation

extension Agentry {
    struct Bundle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bundle",
            abstract: "Pack, sign, inspect and install agent bundles (docs/bundles.md).",
            subcommands: [Pack.self, Inspect.self, Keygen.self, Sign.self])

        struct Pack: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Make a bundle (.agentry) from a directory with bundle.yaml, agents/*.yaml and the handlers' files.")

            @Argument(help: "The bundle's source directory.") var directory: String

            @Option(name: .shortAndLong, help: "The bundle file to write (default: ID-VERSION.agentry in the current directory).")
            var output: String?

            @Option(help: "Sign it with this private key (made by `agentry bundle keygen`).")
            var sign: String?

            func run() async throws {
                let key = try sign.map(BundleSigningKey.init(contentsOf:))
                let (manifest, data) = try BundlePacker.pack(
                    directory: directory, signingKey: key, defaultMinAgentryVersion: AgentryVersion.current)
                let path = output ?? "\(manifest.id)-\(manifest.version).agentry"
                try BundleFile.write(data, to: path, mode: 0o644)
                print("packed \(manifest.id) \(manifest.version) into \(path) (\(data.count) bytes, sha256 \(BundleArchive.sha256(data)))")
                print(
                    "  \(manifest.definitions.count) definition(s), \(manifest.files.count) file(s), \(manifest.dependencies.count) dependency(ies)"
                )
                print(key.map { "  signed by \($0.publicKey)" } ?? "  not signed: `agentry bundle sign \(path) --key KEY` signs it")
            }
        }

        struct Inspect: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Check a bundle's files against its manifest and print the manifest and who signed it.")

            @Argument(help: "The bundle file.") var file: String

            @Option(help: "Also check the signer against this trusted keys file (default: AGENTRY_TRUSTED_KEYS).")
            var trustedKeys: String?

            @Flag(help: "Print the manifest as JSON.") var json = false

            func run() async throws {
                let archive = try BundleArchive(contentsOf: file)
                let keysPath = trustedKeys ?? ProcessInfo.processInfo.environment["AGENTRY_TRUSTED_KEYS"]
                var trust = archive.signature.map { "signed by \($0.publicKey.fingerprint)" } ?? "not signed"
                if let keysPath, !keysPath.isEmpty {
                    let keys = try TrustedKeys.load(paths: keysPath.split(separator: ":").map(String.init))
                    do {
                        trust = "signed by \(try archive.verify(trusting: keys).signer), a trusted key"
                    } catch {
                        trust = error.message
                    }
                } else if let signature = archive.signature, !signature.verifies(archive.manifestData) {
                    trust = "the manifest does not match its signature by \(signature.publicKey.fingerprint): it was changed after signing"
                }
                if json {
                    print(String(decoding: archive.manifest.encoded(), as: UTF8.self))
                    return
                }
                let m = archive.manifest
                print("\(m.id) \(m.version) — \(m.description)")
                print("author: \(m.author)   license: \(m.license)   needs Agentry \(m.minAgentryVersion) or later")
                print("sha256: \(archive.sha256)   \(trust)")
                print("agents:")
                for definition in m.definitions { print("  \(definition.id) \(definition.version)  (\(definition.path))") }
                if !m.files.isEmpty {
                    print("files:")
                    for file in m.files {
                        let used = file.usedBy.isEmpty ? "" : "  used by \(file.usedBy.joined(separator: ", "))"
                        print("  \(file.executable ? "x" : "-") \(file.path)  \(file.size) bytes  \(file.sha256.prefix(16))…\(used)")
                    }
                }
                if !m.dependencies.isEmpty {
                    print("needs:")
                    for dependency in m.dependencies {
                        print("  \(dependency.id) \(dependency.range)  (for \(dependency.requiredBy.joined(separator: ", ")))")
                    }
                }
                if !m.permissions.isEmpty {
                    print(
                        "asks for permissions: "
                            + m.permissions.keys.sorted().map { "\($0): \(m.permissions[$0, default: []].joined(separator: ", "))" }.joined(
                                separator: "; "))
                }
                if !m.approvals.isEmpty { print("asks a person to approve first: \(m.approvals.joined(separator: ", "))") }
                if !m.skills.isEmpty { print("skills: \(m.skills.joined(separator: ", "))") }
            }
        }

        struct Keygen: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Make an Ed25519 key pair for signing bundles: NAME.key (private, mode 0600) and NAME.pub.",
                discussion: """
                    Keep NAME.key secret. Installations that should trust your bundles add NAME.pub's line to their \
                    trusted keys file (AGENTRY_TRUSTED_KEYS).
                    """)

            @Option(name: .shortAndLong, help: "The files' name without extension (NAME.key, NAME.pub).")
            var output: String

            @Option(help: "Who the key belongs to, kept on the public key's line (default: NAME's last part).")
            var comment: String?

            func run() async throws {
                let comment = self.comment ?? String(output.split(separator: "/").last ?? "")
                for path in ["\(output).key", "\(output).pub"] where FileManager.default.fileExists(atPath: path) {
                    throw BundleError(.badKey, "\(path) exists; choose another name or remove it (a key is never overwritten)")
                }
                let key = BundleSigningKey(comment: comment)
                try BundleFile.write(Data(key.fileContents.utf8), to: "\(output).key", mode: 0o600)
                try BundleFile.write(Data((key.publicKey.line + "\n").utf8), to: "\(output).pub", mode: 0o644)
                print("wrote \(output).key (private, keep it secret) and \(output).pub")
                print("public key \(key.publicKey.fingerprint): add this line to an installation's trusted keys file:")
                print(key.publicKey.line)
            }
        }

        struct Sign: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Sign a bundle's manifest with a private key (replacing any earlier signature).")

            @Argument(help: "The bundle file.") var file: String

            @Option(help: "The private key (made by `agentry bundle keygen`).") var key: String

            @Option(name: .shortAndLong, help: "Write the signed bundle here (default: replace FILE).")
            var output: String?

            func run() async throws {
                let signingKey = try BundleSigningKey(contentsOf: key)
                let archive = try BundleArchive(contentsOf: file)
                let data = archive.signed(with: signingKey)
                try BundleFile.write(data, to: output ?? file, mode: 0o644)
                print("signed \(archive.manifest.id) \(archive.manifest.version) with \(signingKey.publicKey) into \(output ?? file)")
            }
        }
    }
}
