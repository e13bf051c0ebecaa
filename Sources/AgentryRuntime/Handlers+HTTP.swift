import AgentryCore
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

extension HandlerRunner {
    /// At most this many redirects are followed (when the definition asks for it).
    static let maxRedirects = 5

    /// POSTs the event. The URL's templates are filled percent-encoded. Before every request (the first and each
    /// redirect's) the host's addresses are checked against the worker's deny list. A 3xx fails the run unless the
    /// definition sets `follow_redirects: true`; then redirects are followed up to ``maxRedirects``, never from https
    /// to http, and never to another host when the definition sets headers (they may hold credentials). An answer
    /// larger than the body limit fails the run, without a retry: the same request would get the same answer.
    func runHTTP(_ http: HTTPHandler, _ context: TaskContext) async -> HandlerOutcome {
        var url = EventTemplate.renderURL(http.url, with: context.event)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "User-Agent", value: "agentry/\(AgentryVersion.current)")
        headers.add(name: "X-Agentry-Run-Id", value: context.runID.uuidString.lowercased())
        headers.add(name: "X-Agentry-Agent-Id", value: context.agent.metadata.id)
        headers.add(name: "X-Agentry-Event-Id", value: context.event.id.rawValue)
        headers.add(name: "X-Agentry-Attempt", value: String(context.attempt))
        if let token = context.fencingTokens.values.max() {
            headers.add(name: "X-Agentry-Resources", value: context.resourcesText)
            headers.add(name: "X-Agentry-Fencing-Token", value: String(token))
        }
        for (name, value) in http.headers.sorted(by: { $0.key < $1.key }) {
            headers.replaceOrAdd(name: name, value: EventTemplate.renderHeader(value, with: context.event))
        }
        let body = ByteBuffer(bytes: context.input)
        let timeout = http.timeoutSeconds.map { Duration.seconds($0) } ?? context.timeout
        let deadline = NIODeadline.now() + .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)
        let bodyLimit = max(context.outputLimit, 1 << 20)
        var method = HTTPMethod.POST
        var first = URLComponents(string: url)
        var redirects = 0
        do {
            while true {
                guard let target = URLComponents(string: url), let scheme = target.scheme?.lowercased(), scheme == "http" || scheme == "https",
                    let host = target.host, !host.isEmpty
                else {
                    return .failed("\(method) \(url): not an absolute http or https URL", retryable: false)
                }
                let pin: PinnedHTTPClients.Target =
                    policy.httpDeny.isEmpty ? .unpinned : await PinnedHTTPClients.target(host: host, deny: policy.httpDeny)
                if case .refused(let refusal) = pin {
                    return .failed("\(method) \(url) refused: \(refusal)", retryable: false)
                }
                var request = HTTPClientRequest(url: url)
                request.method = method
                request.headers = headers
                if method == .POST { request.body = .bytes(body) }
                let (response, bytes) = try await exchange(request, host: host, target: pin, deadline: deadline, bodyLimit: bodyLimit)
                let code = Int(response.status.code)
                if (300..<400).contains(code), let location = response.headers.first(name: "Location") {
                    let next = URL(string: location, relativeTo: URL(string: url))?.absoluteURL.absoluteString ?? location
                    guard http.followRedirects else {
                        return .failed(
                            "\(method) \(url) answered \(code), redirecting to \(next); redirects are not followed (set handler.http.follow_redirects: true to follow them)",
                            exitStatus: code, retryable: false)
                    }
                    if let problem = Self.redirectProblem(from: first, to: URLComponents(string: next), definitionHeaders: !http.headers.isEmpty) {
                        return .failed("\(method) \(url) answered \(code), redirecting to \(next): \(problem)", exitStatus: code, retryable: false)
                    }
                    redirects += 1
                    if redirects > Self.maxRedirects {
                        return .failed(
                            "\(method) \(http.url) was redirected more than \(Self.maxRedirects) times", exitStatus: code, retryable: false)
                    }
                    // 307 and 308 repeat the POST; 301, 302 and 303 turn it into a GET, as browsers do.
                    if code != 307 && code != 308 {
                        method = .GET
                        headers.remove(name: "Content-Type")
                    }
                    first = URLComponents(string: next)
                    url = next
                    continue
                }
                let text = Self.text(Array(bytes.prefix(context.outputLimit)), dropped: max(0, bytes.count - context.outputLimit))
                let parsed = bytes.isEmpty ? nil : try? JSON.parse(bytes)
                if (200..<300).contains(code) {
                    return HandlerOutcome(status: .succeeded, result: parsed, output: parsed == nil && !text.isEmpty ? text : nil, exitStatus: code)
                }
                return HandlerOutcome(
                    status: .failed, result: parsed, output: text.isEmpty ? nil : text, exitStatus: code,
                    message: "\(method) \(url) answered \(code) \(response.status.reasonPhrase)")
            }
        } catch is NIOTooManyBytesError {
            return .failed(
                "\(method) \(url): the answer is larger than \(bodyLimit) bytes, the most a worker reads; not retried (the same request gets the same answer)",
                retryable: false)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            return HandlerOutcome(status: .timedOut, message: "\(method) \(url) did not answer within \(timeout.components.seconds) s (\(error))")
        } catch is CancellationError {
            return HandlerOutcome(status: .cancelled, message: "the run was cancelled during \(method) \(url)")
        } catch {
            if Task.isCancelled { return HandlerOutcome(status: .cancelled, message: "the run was cancelled during \(method) \(url)") }
            return .failed("\(method) \(url) failed: \(error)")
        }
    }

    /// Sends `request` through the client that connects `host` to the checked address (or the shared client when
    /// nothing is pinned) and reads the answer's body up to `bodyLimit`, unless the answer is a redirect.
    func exchange(
        _ request: HTTPClientRequest, host: String, target: PinnedHTTPClients.Target, deadline: NIODeadline,
        bodyLimit: Int
    ) async throws -> (HTTPClientResponse, [UInt8]) {
        @Sendable func send(_ client: HTTPClient) async throws -> (HTTPClientResponse, [UInt8]) {
            let response = try await client.execute(request, deadline: deadline)
            if (300..<400).contains(response.status.code), response.headers.first(name: "Location") != nil { return (response, []) }
            var collected = try await response.body.collect(upTo: bodyLimit)
            return (response, collected.readBytes(length: collected.readableBytes) ?? [])
        }
        guard case .pinned(let addresses) = target else { return try await send(httpClient) }
        // Each checked address in turn while connecting fails, as a client resolving the name itself would try them.
        var failure: any Error = HTTPClientError.connectTimeout
        for address in addresses {
            do {
                return try await pinnedClients.withClient(host: host, address: address, configuration: Self.pinnedConfiguration, send)
            } catch  where PinnedHTTPClients.isConnectFailure(error) {
                failure = error
            }
        }
        throw failure
    }

    /// Why a redirect from `from` to `to` is not followed, or nil.
    static func redirectProblem(from: URLComponents?, to: URLComponents?, definitionHeaders: Bool) -> String? {
        guard let to, let scheme = to.scheme?.lowercased(), scheme == "http" || scheme == "https", to.host?.isEmpty == false else {
            return "the target is not an absolute http or https URL"
        }
        if from?.scheme?.lowercased() == "https" && scheme == "http" {
            return "a redirect from https to http is never followed"
        }
        func origin(_ c: URLComponents?) -> String {
            let scheme = c?.scheme?.lowercased() ?? ""
            return "\(c?.host?.lowercased() ?? ""):\(c?.port ?? (scheme == "https" ? 443 : 80))"
        }
        if definitionHeaders && origin(from) != origin(to) {
            return "a redirect to another host is not followed when the definition sets headers (they could carry credentials there)"
        }
        return nil
    }

    /// The client http handlers use: the process's event loops, and no redirects (``runHTTP(_:_:)`` follows them
    /// itself when asked, checking each hop). Never shut down, like `HTTPClient.shared`.
    static let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)

    /// The configuration of ``client`` and of the pinned clients.
    static var configuration: HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        return configuration
    }

    /// The configuration of the pinned clients: a failed connection fails the request at once (instead of being
    /// tried again until the connect timeout), so that the next of the host's addresses is tried.
    static var pinnedConfiguration: HTTPClient.Configuration {
        var configuration = configuration
        configuration.connectionPool.retryConnectionEstablishment = false
        return configuration
    }

    /// The clients that connect a checked host to the address it was checked at (see ``PinnedHTTPClients``).
    static let pinnedClients = PinnedHTTPClients()
}
