import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing

@testable import AgentryRuntime

/// The deny list is checked on one lookup of a name, and the connection goes to the address checked: a second
/// lookup by the client (which a rebinding name would answer differently) never happens.
@Suite("Pinned HTTP clients")
struct PinnedHTTPClientTests {
    @Test("a request goes to the address checked, not to a fresh lookup of the name")
    func connectsToCheckedAddress() async throws {
        let server = try await HTTPTestServer()
        defer { server.stop() }
        let clients = PinnedHTTPClients(capacity: 2)
        // `.invalid` never resolves (RFC 6761): the answer can only come through the pin.
        var request = HTTPClientRequest(url: "http://agentry-pin-check.invalid:\(server.port)/ok")
        request.method = .GET
        let body = try await clients.withClient(host: "agentry-pin-check.invalid", address: "127.0.0.1", configuration: HandlerRunner.configuration) {
            client in
            let response = try await client.execute(request, timeout: .seconds(5))
            return String(buffer: try await response.body.collect(upTo: 1 << 16))
        }
        #expect(body == #"{"reached": "ok"}"#)
        // The name as the URL writes it, capitals included: the pin matches it, so no lookup can go around it.
        var mixed = HTTPClientRequest(url: "http://Agentry-Pin-Check.INVALID:\(server.port)/ok")
        mixed.method = .GET
        let status = try await clients.withClient(host: "Agentry-Pin-Check.INVALID", address: "127.0.0.1", configuration: HandlerRunner.configuration)
        {
            client in
            try await client.execute(mixed, timeout: .seconds(5)).status.code
        }
        #expect(status == 200)
    }

    @Test("idle clients beyond the capacity are closed")
    func capacity() async throws {
        let server = try await HTTPTestServer()
        defer { server.stop() }
        let clients = PinnedHTTPClients(capacity: 2)
        for index in 1...4 {
            let host = "host\(index).invalid"
            var request = HTTPClientRequest(url: "http://\(host):\(server.port)/ok")
            request.method = .GET
            let status = try await clients.withClient(host: host, address: "127.0.0.1", configuration: HandlerRunner.configuration) { client in
                try await client.execute(request, timeout: .seconds(5)).status.code
            }
            #expect(status == 200)
        }
        #expect(clients.count == 2, "only as many idle clients as the capacity are kept")
    }

    @Test("a name is checked on every address it has; a literal address is not pinned")
    func targets() async throws {
        let denied = await PinnedHTTPClients.target(host: "localhost", deny: [try AddressRange("127.0.0.0/8")])
        guard case .refused(let why) = denied else {
            Issue.record("\(denied)")
            return
        }
        #expect(why.contains("127.0.0.1") && why.contains("--http-deny"), "\(why)")
        let pinned = await PinnedHTTPClients.target(host: "localhost", deny: AddressRange.linkLocal)
        guard case .pinned(let addresses) = pinned else {
            Issue.record("\(pinned)")
            return
        }
        #expect(addresses.contains("127.0.0.1"), "\(addresses)")
        #expect(await PinnedHTTPClients.target(host: "127.0.0.1", deny: AddressRange.linkLocal) == .unpinned)
        #expect(await PinnedHTTPClients.target(host: "agentry-pin-check.invalid", deny: AddressRange.linkLocal) == .unpinned)
    }

    @Test("when a checked address refuses the connection, the next one is tried")
    func fallsBackAcrossAddresses() async throws {
        let server = try await HTTPTestServer()  // listens on 127.0.0.1 only
        defer { server.stop() }
        let runner = HandlerRunner(logger: TestEnvironment.logger, httpClient: HandlerRunner.client)
        var request = HTTPClientRequest(url: "http://agentry-pin-check.invalid:\(server.port)/ok")
        request.method = .GET
        let (response, body) = try await runner.exchange(
            request, host: "agentry-pin-check.invalid", target: .pinned(["::1", "127.0.0.1"]),
            deadline: .now() + .seconds(5), bodyLimit: 1 << 16)
        #expect(response.status.code == 200)
        #expect(String(decoding: body, as: UTF8.self) == #"{"reached": "ok"}"#)
    }

    @Test("connection refused and connect timeouts count as connect failures; other errors do not")
    func connectFailures() {
        #expect(PinnedHTTPClients.isConnectFailure(IOError(errnoCode: ECONNREFUSED, reason: "connect")))
        #expect(PinnedHTTPClients.isConnectFailure(HTTPClientError.connectTimeout))
        #expect(!PinnedHTTPClients.isConnectFailure(HTTPClientError.readTimeout))
        #expect(!PinnedHTTPClients.isConnectFailure(IOError(errnoCode: ECONNRESET, reason: "read")))
    }
}
