/// Limits on when an agent's runs start, per key (YAML `flow`), held across all workers:
///
/// ```yaml
/// flow:
///   key: "{{payload.device_id}}"            # a template filled from the event; runs with the same key are limited together
///   concurrency: 1                          # at most this many running runs per key
///   rate: {limit: 10, per: minute, scope: key}   # a token bucket per key (or `scope: agent`: one for the agent)
///   debounce_seconds: 5                     # of a burst of events with the same key, only the last one runs
///   expire_after_seconds: 600               # an event older than this when its run would start is skipped
/// ```
///
/// A run that must wait holds no slot: it is recorded `deferred` with its reason and starts when its turn comes.
public struct FlowControl: Sendable, Hashable {
    /// Template of the key; nil means one key for the whole agent.
    public var key: String?
    public var concurrency: Int?
    public var rate: RateLimit?
    public var debounceSeconds: Double?
    public var expireAfterSeconds: Double?

    public init(
        key: String? = nil, concurrency: Int? = nil, rate: RateLimit? = nil, debounceSeconds: Double? = nil, expireAfterSeconds: Double? = nil
    ) {
        self.key = key
        self.concurrency = concurrency
        self.rate = rate
        self.debounceSeconds = debounceSeconds
        self.expireAfterSeconds = expireAfterSeconds
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case key, concurrency, rate
        case debounceSeconds = "debounce_seconds"
        case expireAfterSeconds = "expire_after_seconds"
    }

    /// The key of an event's run: the template filled from the event, or "" without a template.
    public func key(for event: Event) -> String {
        guard let key else { return "" }
        return EventTemplate.renderText(key, with: event)
    }

    /// Whether anything here makes a run wait or skip (else the agent's runs start as without `flow`).
    public var limitsRuns: Bool { concurrency != nil || rate != nil || debounceSeconds != nil || expireAfterSeconds != nil }

    /// N runs per period, as a token bucket of N tokens refilled evenly over the period.
    public struct RateLimit: Sendable, Hashable {
        public enum Per: String, Sendable, Hashable, CaseIterable {
            case second, minute, hour, day

            public var seconds: Double {
                switch self {
                case .second: 1
                case .minute: 60
                case .hour: 3600
                case .day: 86400
                }
            }
        }

        public enum Scope: String, Sendable, Hashable, CaseIterable {
            /// One bucket per key.
            case key
            /// One bucket for all the agent's runs.
            case agent
        }

        public var limit: Int
        public var per: Per
        /// Nil means `key` when the flow has a key, else `agent`.
        public var scope: Scope?

        public init(limit: Int, per: Per, scope: Scope? = nil) {
            self.limit = limit
            self.per = per
            self.scope = scope
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case limit, per, scope
        }

        /// Tokens added per second.
        public var refillPerSecond: Double { Double(limit) / per.seconds }
    }

    /// The bucket's key for a run with flow key `key`: the key, or "" for a bucket of the whole agent.
    public func bucketKey(for key: String) -> String {
        guard let rate else { return "" }
        switch rate.scope ?? (self.key == nil ? .agent : .key) {
        case .key: return key
        case .agent: return ""
        }
    }
}
