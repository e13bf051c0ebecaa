import AgentryBundles
import AsyncHTTPClient
public import Foundation
import NIOCore
import NIOHTTP1

/// Where `agentry bundle install` reads a bundle from: a file, or an `http://` / `https://` URL downloaded with a
/// bounded size (the archive limit of ``BundleArchive/Limits``, so a hostile server cannot fill memory).
public enum BundleSource {
    /// The largest archive downloaded: the most a bundle may expand to (compressed archives are smaller).
    public static let maxDownloadBytes = BundleArchive.Limits().maxTotalBytes

    /// The bytes of the file or URL `source`.
    public static func read(_ source: String, timeout: Duration = .seconds(60)) async throws -> Data {
        guard source.hasPrefix("http://") || source.hasPrefix("https://") else {
            guard let data = FileManager.default.contents(atPath: source) else {
                throw BundleError(.malformed, "cannot read the bundle '\(source)': no such file, or not readable")
            }
            return data
        }
        guard URL(string: source)?.host != nil else { throw BundleError(.malformed, "'\(source)' is not a URL") }
        var request = HTTPClientRequest(url: source)
        request.headers.add(name: "User-Agent", value: "agentry/\(AgentryVersion.current)")
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(timeout.components.seconds))
        } catch {
            throw BundleError(.malformed, "cannot download \(source): \(error)")
        }
        guard response.status == .ok else {
            throw BundleError(.malformed, "cannot download \(source): the server answered \(response.status.code) \(response.status.reasonPhrase)")
        }
        if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > maxDownloadBytes {
            throw BundleError(
                .malformed, "cannot download \(source): it is \(length >> 20) MiB, more than a bundle may hold (\(maxDownloadBytes >> 20) MiB)")
        }
        do {
            let body = try await response.body.collect(upTo: maxDownloadBytes)
            return Data(body.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw BundleError(.malformed, "cannot download \(source): it is larger than a bundle may be (\(maxDownloadBytes >> 20) MiB)")
        } catch {
            throw BundleError(.malformed, "cannot download \(source): \(error)")
        }
    }
}
