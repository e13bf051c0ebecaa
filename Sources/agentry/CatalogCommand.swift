import AgentryBundles
import ArgumentParser
import Foundation

extension Agentry {
    /// `agentry catalog search|show|index`: reading a catalog of bundles (a directory or an http(s) URL with an
    /// `index.json`), and building a directory's index.
    struct CatalogCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "catalog",
            abstract: "Search and show the bundles of a catalog; build a catalog's index.json from a folder of bundles.",
            discussion: """
                A catalog is a directory or an http(s) URL holding index.json and the .agentry archives it lists. \
                search and show read the catalog given by --catalog or AGENTRY_CATALOG.
                """,
            subcommands: [Search.self, Show.self, Index.self])
    }
}

/// Where the catalog is: `--catalog`, else `AGENTRY_CATALOG`.
struct CatalogLocationOptions: ParsableArguments {
    @Option(name: .customLong("catalog"), help: "The catalog: a directory or an http(s) URL holding index.json (AGENTRY_CATALOG).")
    var location: String?

    func catalog() throws -> Catalog {
        let environment = ProcessInfo.processInfo.environment["AGENTRY_CATALOG"]
        guard let location = location ?? environment, !location.isEmpty else {
            throw ValidationError(
                "no catalog given: pass --catalog DIR|URL or set AGENTRY_CATALOG (a directory or an http(s) URL holding index.json)")
        }
        return Catalog(location: location)
    }
}

/// The JSON `--json` prints: entries as the index holds them.
private struct CatalogListing: Encodable {
    var catalog: String
    var bundles: [CatalogIndex.Entry]
    var count: Int
}

private func printEncoded(_ value: some Encodable) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    guard let data = try? encoder.encode(value) else { return }
    print(String(decoding: data, as: UTF8.self))
}

extension Agentry.CatalogCommand {
    struct Search: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bundles whose id, description, author, agents or skills contain TEXT (any case); every bundle for an empty TEXT.",
            discussion: "Example: agentry catalog search reboot --catalog examples/catalog")
        @OptionGroup var location: CatalogLocationOptions
        @Argument(help: "The text to look for.") var text: String = ""
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let catalog = try location.catalog()
            let found: [CatalogIndex.Entry]
            do {
                found = try await catalog.search(text)
            } catch {
                throw fail(error)
            }
            if json {
                printEncoded(CatalogListing(catalog: catalog.location.description, bundles: found, count: found.count))
                return
            }
            if found.isEmpty {
                print(text.isEmpty ? "the catalog \(catalog.location) holds no bundle" : "no bundle in \(catalog.location) matches '\(text)'")
                return
            }
            printTable(
                header: ["ID", "VERSION", "AGENTS", "SIGNED", "DESCRIPTION"],
                rows: found.map { entry in
                    [
                        entry.id, entry.version, entry.agents.map(\.id).joined(separator: ","), entry.signature == nil ? "no" : "yes",
                        entry.description,
                    ]
                })
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every version of a bundle: its agents, dependencies, permissions, approvals and signer.")
        @OptionGroup var location: CatalogLocationOptions
        @Argument(help: "The bundle's id.") var id: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let catalog = try location.catalog()
            let entries: [CatalogIndex.Entry]
            do {
                entries = try await catalog.entries(id: id)
            } catch {
                throw fail(error)
            }
            guard !entries.isEmpty else {
                throw Failure("the catalog \(catalog.location) has no bundle \(id) (agentry catalog search)")
            }
            if json {
                printEncoded(CatalogListing(catalog: catalog.location.description, bundles: entries, count: entries.count))
                return
            }
            for (number, entry) in entries.reversed().enumerated() {
                if number > 0 { print("") }
                print(Self.describe(entry))
            }
        }

        /// One version, as `show` prints it.
        static func describe(_ entry: CatalogIndex.Entry) -> String {
            func list(_ items: [String]) -> String { items.isEmpty ? "none" : items.joined(separator: ", ") }
            var lines = ["\(entry.id) \(entry.version)"]
            if !entry.description.isEmpty { lines.append("  \(entry.description)") }
            lines.append("  author: \(entry.author.isEmpty ? "-" : entry.author)  license: \(entry.license.isEmpty ? "-" : entry.license)")
            lines.append("  needs Agentry \(entry.minAgentryVersion) or newer")
            lines.append("  file: \(entry.file) (\(entry.size) bytes, sha256 \(entry.sha256))")
            lines.append("  agents: \(list(entry.agents.map { "\($0.id) \($0.version)" }))")
            lines.append(
                "  dependencies: "
                    + list(
                        entry.dependencies.map { dependency in
                            let users = dependency.requiredBy.isEmpty ? "" : " (for \(dependency.requiredBy.joined(separator: ", ")))"
                            return "\(dependency.id) \(dependency.range)\(users)"
                        }))
            lines.append("  skills: \(list(entry.skills))")
            lines.append(
                "  permissions: "
                    + list(entry.permissions.keys.sorted().map { "\($0): \((entry.permissions[$0] ?? []).joined(separator: ", "))" }))
            lines.append("  approvals: \(list(entry.approvals))")
            lines.append("  signed by: \(entry.signature.map(\.publicKey.fingerprint) ?? "nobody (unsigned)")")
            return lines.joined(separator: "\n")
        }
    }

    struct Index: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build DIR/index.json from the .agentry bundles in DIR (not its subdirectories).",
            discussion: "Each bundle is read and checked; a damaged bundle, or two with the same id and version, stop it with the file named.")
        @Argument(help: "The catalog's directory.") var directory: String
        @Flag(help: "Print the index written.") var json = false

        func run() async throws {
            let index: CatalogIndex
            do {
                index = try CatalogIndexer.write(directory: directory)
            } catch {
                throw fail(error)
            }
            if json {
                print(String(decoding: index.encoded(), as: UTF8.self), terminator: "")
                return
            }
            let path = (directory as NSString).appendingPathComponent(CatalogIndex.fileName)
            print("indexed \(index.bundles.count) bundle\(index.bundles.count == 1 ? "" : "s") in \(path)")
            printTable(
                header: ["ID", "VERSION", "FILE", "SIGNED BY"],
                rows: index.bundles.map { entry in
                    [entry.id, entry.version, entry.file, entry.signature.map(\.publicKey.fingerprint) ?? "unsigned"]
                })
        }
    }
}
