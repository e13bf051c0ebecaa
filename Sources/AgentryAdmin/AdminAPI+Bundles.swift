import AgentryBundles
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import HTTPTypes

/// Bundles: those installed here, the configured catalog's (`AGENTRY_CATALOG`), and installing from it.
extension AdminAPI {
    func listBundles(_ input: Operations.ListBundles.Input) async throws -> Operations.ListBundles.Output {
        let bundles = try await Self.bundleCall { try await dependencies.installer().installed(includingRemoved: input.query.removed ?? false) }
        return .ok(.init(body: .json(.init(bundles: bundles.map(\.jsonValue), count: bundles.count))))
    }

    func listCatalog(_ input: Operations.ListCatalog.Input) async throws -> Operations.ListCatalog.Output {
        let catalog = try configuredCatalog()
        let index = try await Self.catalogIndex(catalog)
        let text = input.query.q?.trimmingCharacters(in: .whitespaces) ?? ""
        let entries = text.isEmpty ? index.bundles : index.search(text)
        let installer = try dependencies.installer()
        let installed = Set(try await installer.installed().map { "\($0.record.bundleID) \($0.record.version)" })
        let bundles = entries.map { entry in
            Representation.catalogBundle(entry, trusted: installer.trusted, installed: installed.contains(entry.name))
        }
        return .ok(.init(body: .json(.init(catalog: catalog.location.description, bundles: bundles, count: bundles.count))))
    }

    /// Installs a bundle of the configured catalog with its dependencies; its signature must come from a trusted key
    /// (the API never installs an unsigned or untrusted bundle).
    func installBundle(_ input: Operations.InstallBundle.Input) async throws -> Operations.InstallBundle.Output {
        let body =
            switch input.body {
            case .json(let json): json
            }
        let catalog = try configuredCatalog()
        let index = try await Self.catalogIndex(catalog)
        let versions = index.entries(id: body.id).map(\.version)
        guard !versions.isEmpty else { throw AdminError.notFound("the catalog \(catalog.location) has no bundle \(body.id)") }
        if let version = body.version {
            guard SemanticVersion.parse(version) != nil else {
                throw AdminError.badRequest("'version' \(version) is not a semantic version (e.g. 2.1.0)")
            }
            guard versions.contains(version) else {
                throw AdminError.notFound(
                    "the catalog \(catalog.location) has no version \(version) of \(body.id) (it has \(versions.joined(separator: ", ")))")
            }
        }
        let installer = try dependencies.installer()
        let plan: InstallPlan
        do {
            plan = try await installer.plan(body.id, version: body.version, index: index)
        } catch let error as BundleError {
            // `catalog` here: nothing in the catalog fits (e.g. every version needs a newer Agentry).
            throw error.kind == .catalog ? AdminError.conflict(error.message) : Self.adminError(error)
        }
        let options = BundleInstaller.Options(
            publish: body.publish ?? false, allowUnsigned: false,
            installedBy: AdminIdentity.current.describe(authority: AdminRequest.current.head.authority))
        let installation = try await Self.bundleCall { try await installer.install(plan, from: catalog, options: options) }
        return .created(.init(body: .json(installation.jsonValue)))
    }

    /// The configured catalog; 404 `no_catalog` when none is.
    func configuredCatalog() throws -> Catalog {
        guard let location = configuration.catalog else {
            throw AdminError(
                status: .notFound, code: "no_catalog",
                message:
                    "no catalog is configured: start the admin endpoint (agentry admin, or agentry worker) with AGENTRY_CATALOG=DIR|URL, a directory or an http(s) URL holding index.json"
            )
        }
        return Catalog(location: location)
    }

    /// The catalog's index; 503 `catalog_unavailable` saying why when it cannot be read.
    static func catalogIndex(_ catalog: Catalog) async throws -> CatalogIndex {
        do {
            return try await catalog.index()
        } catch {
            throw AdminError(status: .serviceUnavailable, code: "catalog_unavailable", message: error.message)
        }
    }

    /// Runs a bundle operation, answering its refusals as ``adminError(_:)`` says.
    static func bundleCall<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as BundleError {
            throw adminError(error)
        }
    }

    /// A bundle refusal's answer: 422 `bundle_refused` for a bundle that cannot be trusted or read (unsigned, an
    /// untrusted key, a file or the manifest changed, an unsafe path, malformed), 409 for a dependency conflict or an
    /// installation refused (a version installed with other content), 503 `catalog_unavailable` when an archive cannot
    /// be read from the catalog.
    static func adminError(_ error: BundleError) -> AdminError {
        switch error.kind {
        case .malformed, .unsafePath, .tamperedFile, .tamperedManifest, .unsigned, .untrustedKey, .packing:
            return AdminError(status: .unprocessableContent, code: "bundle_refused", message: error.message)
        case .conflict, .install:
            return AdminError.conflict(error.message)
        case .catalog:
            return AdminError(status: .serviceUnavailable, code: "catalog_unavailable", message: error.message)
        case .badKey:
            return AdminError.internalError("the trusted keys (AGENTRY_TRUSTED_KEYS) cannot be read: \(error.message)")
        }
    }
}
