public import AgentryCore

/// How a worker runs agents.
public struct WorkerOptions: Sendable {
    /// Serve only these agents (`--agents`); nil serves every published agent.
    public var agents: Set<String>?
    /// The worker's labels (`--label key=value`): it serves only agents whose `worker_labels` it all carries.
    public var labels: [String: String] = [:]
    /// At most this many tasks of one agent at once on this worker (the agent's `max_parallel_tasks` holds across
    /// all workers in any case). Default: no extra limit.
    public var maxTasksPerAgent: Int?
    /// How often the worker writes its heartbeat. Default 2 s.
    public var heartbeatInterval: Duration = .seconds(2)
    /// A worker whose heartbeat is older than this counts as gone: its runs are taken over. Default 10 s.
    public var workerExpiry: Duration = .seconds(10)
    /// How long a stopped or lost worker stays listed (`agentry workers`, the status page) before its row and its
    /// instance rows are deleted; its runs stay. Default 24 h.
    public var workerRetention: Duration = .seconds(24 * 3600)
    /// Events (`event_log`) and finished runs (`task_runs`) older than this are deleted, a batch at a time, once a
    /// minute, by one worker at a time (see ``RuntimeStore/pruneHistory(olderThan:batchSize:maxBatches:)``).
    /// Default nil: the history is kept for good.
    public var historyRetention: Duration?
    /// How long a cancelling event's mark is kept (`cancel_on`): an event of the agent still in its queue, published
    /// before the cancelling event, is cancelled when it is delivered within this time. Default 24 h.
    public var cancelMarkRetention: Duration = .seconds(24 * 3600)
    /// How often the worker re-reads published agents and their desired states (control messages also trigger it
    /// at once). Default 5 s.
    public var syncInterval: Duration = .seconds(5)
    /// On SIGTERM, how long running tasks may take before their events go back to the queue. Default 30 s.
    public var shutdownGrace: Duration = .seconds(30)
    /// Between SIGTERM and SIGKILL of a handler's process group. Default 5 s.
    public var killGrace: Duration = .seconds(5)
    /// Largest stdout, stderr or response body kept per run. Default 64 KiB.
    public var outputLimit: Int = 64 * 1024
    /// What exec handlers may start and which addresses http handlers may not reach. Default
    /// ``HandlerPolicy/init(execAllow:httpDeny:)``'s: the examples' program, and no link-local addresses.
    public var handlerPolicy = HandlerPolicy()
    /// A run still going after this long is handed over: its event is kept with the run and its delivery acked, so
    /// that the broker's consumer timeout (`consumer_timeout`, 30 minutes by default) neither redelivers it nor
    /// closes the channel. Keep it under the broker's timeout. Default 25 minutes.
    public var ackDeadline: Duration = .seconds(25 * 60)
    /// Retry delays are spread by ± this fraction. Default 0.2.
    public var retryJitter: Double = 0.2
    public var maxBodySize: Int = EventWireFormat.defaultMaxBodySize
    /// The admin endpoint's URL that exec handlers call back with their run token (`AGENTRY_ADMIN_URL`); nil: none
    /// is given to them.
    public var adminURL: String?
    /// How deep run trees may grow and how many tasks a run may delegate at a time.
    public var delegationLimits = DelegationLimits()
    /// How long a run waits for the resources its agent declares before it fails (and is retried per the agent's
    /// policy). It waits at its event's priority, holding none of them meanwhile. Default 10 minutes.
    public var lockWait: Duration = .seconds(600)
    /// The lock manager's settings (poll interval, take-back grace).
    public var lockOptions = LockManager.Options()
    /// Where budget periods begin and end (`AGENTRY_BUDGET_TIMEZONE`, `AGENTRY_BUDGET_PERIOD_SECONDS`).
    public var budgetCalendar = BudgetCalendar()
    /// Where handlers record their language-model generations for Langfuse (``LangfuseExporter/record(_:)``); nil:
    /// no tracing. ``Worker`` sets it from ``AgentryConfiguration/langfuse`` and runs and stops it.
    public var tracing: LangfuseExporter?
    /// What models cost (`--llm-prices`, `AGENTRY_LLM_PRICES`): the cost of a run whose handler reports tokens and a
    /// model but no cost. Default nil: such runs record no cost.
    public var llmPrices: LLMPriceTable?
    /// Told of every call of an `llm` handler once it ended (``LLMCallRecord``), for tracing; called on the run's task,
    /// so it must return at once. Default nil.
    public var llmObserver: (@Sendable (LLMCallRecord) -> Void)?
    /// Where installed bundles' files are on this host (`--bundles-dir`, `AGENTRY_BUNDLES_DIR`): the worker places
    /// there the files of installed bundle versions it lacks, from the archives kept in the database, and deletes those
    /// of uninstalled versions, before each sync with the registry (``BundlePlacement``). Default nil: neither.
    public var bundlesDirectory: String?

    public init() {}
}
