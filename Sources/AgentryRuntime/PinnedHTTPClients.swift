import AsyncHTTPClient
import Dispatch
import Glibc
import NIOConcurrencyHelpers
import NIOCore

/// HTTP clients that connect a host name to the one address the deny list was checked against.
///
/// Checking a host's addresses and then letting the client resolve the name again leaves a gap: a name whose
/// records change between the two lookups (DNS rebinding, a TTL of 0) passes the check with a public address and
/// connects to a denied one. AsyncHTTPClient resolves names itself and has no per-request hook for the address it
/// connects to, but its `dnsOverride` configuration makes a client connect a name to a given address while keeping
/// the name for `Host`, SNI and certificate checks. So each (host, checked address) pair gets a client of its own,
/// kept for reuse (its connections are pooled). When a new one is made and more than ``capacity`` exist, the least
/// recently used among those no request is using are closed.
final class PinnedHTTPClients: Sendable {
    /// How many clients are kept beyond those requests are using.
    let capacity: Int
    private let state = NIOLockedValueBox(State())

    private struct Entry {
        let client: HTTPClient
        var inUse = 0
        var lastUsed: UInt64
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var clock: UInt64 = 0
    }

    init(capacity: Int = 16) {
        self.capacity = capacity
    }

    /// Closes every client (the worker's set lives as long as the process; a set of a test's ends here).
    deinit {
        for entry in state.withLockedValue({ $0.entries.values }) { entry.client.shutdown { _ in } }
    }

    /// Where `host` may be reached under `deny`: the address to connect to, or why not. A literal address is
    /// checked as it is. A name is resolved once (off the cooperative threads: `getaddrinfo` blocks); every address it
    /// has is checked, and the first is the one connected to. A name that does not resolve gets no pin: the client's
    /// own lookup then fails with its error.
    static func target(host: String, deny: [AddressRange]) async -> Target {
        let addresses = await withCheckedContinuation { (continuation: CheckedContinuation<[[UInt8]], Never>) in
            DispatchQueue.global().async { continuation.resume(returning: AddressRange.resolve(host)) }
        }
        for address in addresses {
            if let range = deny.first(where: { $0.contains(address) }) {
                return .refused(
                    "\(host) resolves to \(AddressRange.format(address)), in \(range), which this worker does not connect to (--http-deny)")
            }
        }
        guard !addresses.isEmpty, AddressRange.literal(host) == nil else { return .unpinned }
        return .pinned(addresses.map(AddressRange.format))
    }

    enum Target: Equatable {
        /// Connect the host to one of these addresses (all checked), in this order.
        case pinned([String])
        /// A literal address (checked), or a name that does not resolve.
        case unpinned
        /// The host resolves into a denied range.
        case refused(String)
    }

    /// Runs `body` with the client that connects `host` to `address`, made with `configuration` when new.
    func withClient<T: Sendable>(
        host: String, address: String, configuration: HTTPClient.Configuration,
        _ body: (HTTPClient) async throws -> T
    ) async throws -> T {
        // The exact host string: `dnsOverride` matches the URL's host as written.
        let key = "\(host)\u{0}\(address)"
        let (client, evicted) = state.withLockedValue { state -> (HTTPClient, [HTTPClient]) in
            state.clock += 1
            if var entry = state.entries[key] {
                entry.inUse += 1
                entry.lastUsed = state.clock
                state.entries[key] = entry
                return (entry.client, [])
            }
            var pinned = configuration
            pinned.dnsOverride = [host: address]
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: pinned)
            state.entries[key] = Entry(client: client, inUse: 1, lastUsed: state.clock)
            var evicted: [HTTPClient] = []
            while state.entries.count > capacity,
                let oldest = state.entries.filter({ $0.value.inUse == 0 }).min(by: { $0.value.lastUsed < $1.value.lastUsed })
            {
                state.entries[oldest.key] = nil
                evicted.append(oldest.value.client)
            }
            return (client, evicted)
        }
        for old in evicted { old.shutdown { _ in } }
        defer {
            state.withLockedValue { state in
                state.clock += 1
                state.entries[key]?.inUse -= 1
                state.entries[key]?.lastUsed = state.clock
            }
        }
        return try await body(client)
    }

    /// Whether `error` says that no connection was made (so nothing of the request was sent, and another address
    /// may be tried).
    static func isConnectFailure(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError { return error == .connectTimeout }
        // A connection to an address is refused or unreachable: the socket's error, as NIO reports it.
        if let error = error as? IOError { return [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL].contains(error.errnoCode) }
        return false
    }

    /// How many clients are kept (for tests).
    var count: Int { state.withLockedValue { $0.entries.count } }
}
