public import AsyncHTTPClient
import Foundation
public import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// A catalog of bundles: a directory, or an http(s) URL, holding `index.json` (``CatalogIndex``) and the archives it
/// lists.
///
/// The location names the catalog's directory (`/srv/catalog`, `https://example.org/catalog/`) or its index file
/// itself (`…/index.json`); archives are looked up relative to the directory the index is in. Reading never trusts
/// the index's `file` paths to stay inside (each must pass ``BundlePath``) nor the archive's bytes to match (each must
/// have the SHA-256 the index records).
public struct Catalog: Sendable {
    /// Bounds on what is read, so that a hostile or broken server cannot exhaust memory or hang a command.
    public struct Limits: Sendable {
        public var maxIndexBytes = 16 << 20
        /// As ``BundleArchive/Limits``'s total, plus room for the zip's own headers.
        public var maxArchiveBytes = 160 << 20
        /// For one HTTP request, from connecting to the last byte.
        public var timeout: TimeAmount = .seconds(60)
        public init() {}
    }

    /// Where the catalog is.
    public enum Location: Sendable, Hashable, CustomStringConvertible {
        /// A directory of the file system (or the path of its index).
        case directory(String)
        /// An http or https URL of the catalog's directory (or of its index).
        case url(String)

        public var description: String {
            switch self {
            case .directory(let path): path
            case .url(let url): url
            }
        }
    }

    public let location: Location
    public let limits: Limits
    let httpClient: HTTPClient

    /// The client catalogs use unless given another: the process's event loops, redirects followed (at most 5), and
    /// a connection that cannot be made fails the request at once with its reason (AsyncHTTPClient's default tries
    /// again until the request's deadline, so a wrong port would take a minute to report). Never shut down, like
    /// `HTTPClient.shared`.
    public static let defaultHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .seconds(10)
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    /// The catalog at `location`: an `http://` or `https://` URL, a `file://` URL or a path.
    public init(location: String, limits: Limits = Limits(), httpClient: HTTPClient = Catalog.defaultHTTPClient) {
        let lowered = location.lowercased()
        if lowered.hasPrefix("http://") || lowered.hasPrefix("https://") {
            self.location = .url(location)
        } else if lowered.hasPrefix("file://") {
            self.location = .directory(String(location.dropFirst("file://".count)))
        } else {
            self.location = .directory(location)
        }
        self.limits = limits
        self.httpClient = httpClient
    }

    /// Reads and checks the catalog's index; throws ``BundleError/Kind/catalog`` naming the file or URL (and the HTTP
    /// status) when it cannot be read, or what is wrong in it.
    public func index() async throws(BundleError) -> CatalogIndex {
        let source = indexLocation
        let data = try await read(source, limit: limits.maxIndexBytes, what: "the catalog index")
        return try CatalogIndex.decode(data, source: source)
    }

    /// Every version of bundle `id` in the catalog, lowest first (empty when there is none).
    public func entries(id: String) async throws(BundleError) -> [CatalogIndex.Entry] {
        try await index().entries(id: id)
    }

    /// The catalog's entries whose id, description, author, agent ids or skills contain `text`, case-insensitively.
    public func search(_ text: String) async throws(BundleError) -> [CatalogIndex.Entry] {
        try await index().search(text)
    }

    /// The archive of `entry`, read from the catalog and checked: its SHA-256 must be the index's (otherwise
    /// ``BundleError/Kind/tamperedFile`` naming the bundle), it must be a well-formed bundle (``BundleArchive``'s
    /// checks) holding the id and version the index says. The signature is not checked here: the installer verifies
    /// it against the trusted keys.
    public func archive(of entry: CatalogIndex.Entry) async throws(BundleError) -> BundleArchive {
        if let reason = BundlePath.refusal(entry.file) {
            throw BundleError(.unsafePath, "the catalog \(location) lists \(entry.name) at an unsafe path: \(reason)")
        }
        let source = fileLocation(entry.file)
        let data = try await read(source, limit: limits.maxArchiveBytes, what: "the bundle \(entry.name)")
        let hash = BundleArchive.sha256(data)
        guard hash == entry.sha256 else {
            throw BundleError(
                .tamperedFile,
                "the bundle \(entry.name) at \(source) does not match the catalog's index: its SHA-256 is \(hash), the index says \(entry.sha256)"
            )
        }
        let archive: BundleArchive
        do {
            archive = try BundleArchive(data: data)
        } catch {
            throw BundleError(error.kind, "the bundle \(entry.name) at \(source): \(error.message)")
        }
        guard archive.manifest.id == entry.id, archive.manifest.version == entry.version else {
            throw BundleError(
                .tamperedFile,
                "the catalog's index says \(source) is \(entry.name), but its manifest says \(archive.manifest.id) \(archive.manifest.version)"
            )
        }
        return archive
    }

    /// The index's path or URL.
    public var indexLocation: String {
        switch location {
        case .directory(let path):
            if path.hasSuffix(".json") { return path }
            return path.hasSuffix("/") ? path + CatalogIndex.fileName : path + "/" + CatalogIndex.fileName
        case .url(let url):
            if url.split(separator: "?").first?.hasSuffix(".json") == true { return url }
            return url.hasSuffix("/") ? url + CatalogIndex.fileName : url + "/" + CatalogIndex.fileName
        }
    }

    /// The path or URL of `file` (a safe relative path), beside the index.
    func fileLocation(_ file: String) -> String {
        let index = indexLocation
        let base = index.range(of: "/", options: .backwards).map { String(index[..<$0.upperBound]) } ?? ""
        switch location {
        case .directory:
            return base + file
        case .url:
            let encoded = file.split(separator: "/").map {
                $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#")))
                    ?? String($0)
            }
            return base + encoded.joined(separator: "/")
        }
    }

    func read(_ source: String, limit: Int, what: String) async throws(BundleError) -> Data {
        switch location {
        case .directory: return try readFile(source, limit: limit, what: what)
        case .url: return try await download(source, limit: limit, what: what)
        }
    }

    func readFile(_ path: String, limit: Int, what: String) throws(BundleError) -> Data {
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: path)
        } catch {
            throw BundleError(.catalog, "cannot read \(what): \(path) does not exist or is not readable")
        }
        guard (attributes[.type] as? FileAttributeType) == .typeRegular else {
            throw BundleError(.catalog, "cannot read \(what): \(path) is not a regular file")
        }
        if let size = (attributes[.size] as? NSNumber)?.intValue, size > limit {
            throw BundleError(.catalog, "\(what) \(path) is larger than \(limit >> 20) MiB")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BundleError(.catalog, "cannot read \(what): \(path) is not readable")
        }
        return data
    }

    func download(_ url: String, limit: Int, what: String) async throws(BundleError) -> Data {
        let request = HTTPClientRequest(url: url)
        let response: HTTPClientResponse
        do {
            response = try await httpClient.execute(request, timeout: limits.timeout)
        } catch {
            throw BundleError(.catalog, "cannot download \(what) from \(url): \(Self.describe(error))")
        }
        guard response.status == .ok else {
            throw BundleError(.catalog, "cannot download \(what) from \(url): the server answered \(response.status)")
        }
        if let length = response.headers.first(name: "content-length").flatMap(Int.init), length > limit {
            throw BundleError(.catalog, "\(what) at \(url) is larger than \(limit >> 20) MiB")
        }
        do {
            let buffer = try await response.body.collect(upTo: limit)
            return Data(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw BundleError(.catalog, "\(what) at \(url) is larger than \(limit >> 20) MiB")
        } catch {
            throw BundleError(.catalog, "cannot download \(what) from \(url): \(Self.describe(error))")
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            if error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout { return "timed out" }
            if error == .invalidURL || error == .emptyHost { return "not a valid URL" }
        }
        // "connection reset (error set): Connection refused (errno: 111)" says less than the system's own words.
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        return "\(error)"
    }
}
