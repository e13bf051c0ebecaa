/// The migrations compiled into the binary: the files of `Sources/AgentryStore/Migrations/`, which SwiftPM embeds
/// (`resources: [.embedInCode("Migrations")]`) as one constant per file. SwiftPM gives no list of them, so a new
/// migration file gets a line here too; a test checks that this list and the directory hold the same migrations.
extension Migration {
    static let builtInFiles: [(name: String, bytes: [UInt8])] = [
        ("0001_event_log.sql", PackageResources._001_event_log_sql),
        ("0002_resource_locks.sql", PackageResources._002_resource_locks_sql),
        ("0003_agent_registry.sql", PackageResources._003_agent_registry_sql),
        ("0004_scheduled_events.sql", PackageResources._004_scheduled_events_sql),
        ("0005_agent_publication.sql", PackageResources._005_agent_publication_sql),
        ("0006_runtime.sql", PackageResources._006_runtime_sql),
        ("0007_agent_slots.sql", PackageResources._007_agent_slots_sql),
        ("0008_run_handover.sql", PackageResources._008_run_handover_sql),
        ("0009_run_cancel.sql", PackageResources._009_run_cancel_sql),
        ("0010_lock_manager.sql", PackageResources._010_lock_manager_sql),
        ("0011_status_notify.sql", PackageResources._011_status_notify_sql),
        ("0012_event_log_priority_index.sql", PackageResources._012_event_log_priority_index_sql),
        ("0013_run_received.sql", PackageResources._013_run_received_sql),
        ("0014_instance_prefetch.sql", PackageResources._014_instance_prefetch_sql),
        ("0015_event_log_ordered_keys.sql", PackageResources._015_event_log_ordered_keys_sql),
        ("0016_status_watchers.sql", PackageResources._016_status_watchers_sql),
        ("0017_task_run_event_text.sql", PackageResources._017_task_run_event_text_sql),
        ("0018_run_republish.sql", PackageResources._018_run_republish_sql),
        ("0019_schedules.sql", PackageResources._019_schedules_sql),
        ("0020_webhooks.sql", PackageResources._020_webhooks_sql),
        ("0021_run_tree.sql", PackageResources._021_run_tree_sql),
        ("0022_approvals.sql", PackageResources._022_approvals_sql),
        ("0023_feedback_canary.sql", PackageResources._023_feedback_canary_sql),
        ("0024_run_tokens.sql", PackageResources._024_run_tokens_sql),
        ("0025_run_usage.sql", PackageResources._025_run_usage_sql),
        ("0026_cancel_on.sql", PackageResources._026_cancel_on_sql),
        ("0027_flow_budgets.sql", PackageResources._027_flow_budgets_sql),
        ("0028_stats.sql", PackageResources._028_stats_sql),
        ("0029_run_locks.sql", PackageResources._029_run_locks_sql),
        ("0030_search.sql", PackageResources._030_search_sql),
        ("0031_worker_rss.sql", PackageResources._031_worker_rss_sql),
        ("0032_lock_holds.sql", PackageResources._032_lock_holds_sql),
        ("0033_bundles.sql", PackageResources._033_bundles_sql),
        ("0034_one_running_run.sql", PackageResources._034_one_running_run_sql),
    ]

    /// The migrations this binary was built with, in version order.
    public static let builtIn: [Migration] = {
        do {
            return try parse(builtInFiles.map { ($0.name, String(decoding: $0.bytes, as: UTF8.self)) }, source: "the built-in migrations")
        } catch {
            preconditionFailure("the built-in migrations do not load: \(error)")
        }
    }()
}
