public import AgentryCore
import Metrics

/// What Agentry counts and times, through swift-metrics (exported by `/metrics` when the process bootstraps the
/// Prometheus factory; a no-op otherwise).
public enum AgentryMetrics {
    /// The first word of an event type (`alert`, `agent`, `resource`, …): a bounded label.
    static func typeClass(_ type: String) -> String {
        String(type.prefix { $0 != "." })
    }

    public static func published(_ event: Event) {
        Counter(
            label: "agentry_events_published_total",
            dimensions: [("type_class", typeClass(event.type)), ("priority", event.priority.name)]
        ).increment()
    }

    public static func consumed(_ event: Event, by consumer: String) {
        Counter(
            label: "agentry_events_consumed_total",
            dimensions: [("type_class", typeClass(event.type)), ("priority", event.priority.name), ("consumer", consumer)]
        ).increment()
    }

    /// A run started: how long after its event was published.
    public static func runStarted(agent: String, publishToStart seconds: Double) {
        Timer(label: "agentry_publish_to_start_seconds", dimensions: [("agent", agent)])
            .recordNanoseconds(Int64(max(0, seconds) * 1e9))
    }

    /// A run ended (`succeeded`, `failed`, `timed_out`, `cancelled`, `skipped`).
    public static func runFinished(agent: String, outcome: String, seconds: Double?) {
        Counter(label: "agentry_runs_total", dimensions: [("agent", agent), ("outcome", outcome)]).increment()
        if let seconds {
            Timer(label: "agentry_run_duration_seconds", dimensions: [("agent", agent)]).recordNanoseconds(Int64(max(0, seconds) * 1e9))
        }
    }

    /// What a run of `agent` used (a handler's `usage`): tokens by kind and cost by currency, per model (`unknown` when
    /// the handler named none). Counted by the worker that ran it, once per try.
    public static func usage(agent: String, _ usage: RunUsage) {
        let model = usage.model ?? "unknown"
        if let tokens = usage.inputTokens {
            Counter(label: "agentry_llm_tokens_total", dimensions: [("agent", agent), ("model", model), ("kind", "input")]).increment(by: tokens)
        }
        if let tokens = usage.outputTokens {
            Counter(label: "agentry_llm_tokens_total", dimensions: [("agent", agent), ("model", model), ("kind", "output")]).increment(by: tokens)
        }
        if let cost = usage.cost {
            FloatingPointCounter(
                label: "agentry_llm_cost_total",
                dimensions: [("agent", agent), ("model", model), ("currency", usage.currency ?? RunUsage.defaultCurrency)]
            ).increment(by: cost)
        }
    }

    /// How long a lock request waited (`acquired`, `timed_out`, `unavailable`, `cancelled`).
    public static func lockWaited(seconds: Double, outcome: String) {
        Timer(label: "agentry_lock_wait_seconds", dimensions: [("outcome", outcome)]).recordNanoseconds(Int64(max(0, seconds) * 1e9))
    }

    public static func queueDepth(_ queue: String, _ messages: Int) {
        Gauge(label: "agentry_queue_depth", dimensions: [("queue", queue)]).record(messages)
    }

    public static func reconnected(_ component: String) {
        Counter(label: "agentry_reconnects_total", dimensions: [("component", component)]).increment()
    }

    /// A scheduler claimed a schedule's due ticks: how many it will publish and how many it counted as missed.
    public static func scheduleTicks(schedule: String, claimed: Int, missed: Int) {
        if claimed > 0 {
            Counter(label: "agentry_schedule_ticks_total", dimensions: [("schedule", schedule), ("outcome", "claimed")]).increment(by: claimed)
        }
        if missed > 0 {
            Counter(label: "agentry_schedule_ticks_total", dimensions: [("schedule", schedule), ("outcome", "missed")]).increment(by: missed)
        }
    }

    /// A delayed event (`delayed`) or a schedule's tick (`tick`) was published, `lateness` seconds after its delivery
    /// time; one more than a second late counts as late.
    public static func delayedPublished(kind: String, lateness seconds: Double) {
        Counter(label: "agentry_delayed_events_published_total", dimensions: [("kind", kind)]).increment()
        Timer(label: "agentry_delayed_event_lateness_seconds", dimensions: [("kind", kind)]).recordNanoseconds(Int64(max(0, seconds) * 1e9))
        if seconds > 1 { Counter(label: "agentry_delayed_events_late_total", dimensions: [("kind", kind)]).increment() }
    }

    /// A run of `agent` delegated `tasks` tasks to subagents.
    public static func delegated(agent: String, tasks: Int) {
        Counter(label: "agentry_delegated_tasks_total", dimensions: [("agent", agent)]).increment(by: tasks)
    }

    /// Feedback on a run was recorded by this process, given through the admin API (`api`) or a `run.feedback` event
    /// (`event`).
    public static func feedbackRecorded(from channel: String) {
        Counter(label: "agentry_feedback_total", dimensions: [("from", channel)]).increment()
    }

    /// A `run.feedback` event's feedback was refused: `invalid` (its payload), `unknown_run`, `not_finished` or
    /// `collection_off`.
    public static func feedbackRefused(reason: String) {
        Counter(label: "agentry_feedback_refused_total", dimensions: [("reason", reason)]).increment()
    }

    /// A waiting run was woken: its children ended (`children`) or its deadline passed (`deadline`).
    public static func runWoken(reason: String) {
        Counter(label: "agentry_runs_woken_total", dimensions: [("reason", reason)]).increment()
    }

    /// A run of `agent` asked for an approval.
    public static func approvalRequested(agent: String) {
        Counter(label: "agentry_approvals_requested_total", dimensions: [("agent", agent)]).increment()
    }

    /// An approval was decided: `approved`, `rejected` or `expired`.
    public static func approvalDecided(agent: String, decision: String) {
        Counter(label: "agentry_approvals_decided_total", dimensions: [("agent", agent), ("decision", decision)]).increment()
    }
}
