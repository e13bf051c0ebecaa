import AMQP
import AgentryBus
import AgentryCore
import Foundation
import Metrics
import NIOConcurrencyHelpers
public import Prometheus

/// The process's metrics: swift-metrics bootstrapped once with the Prometheus factory; `/metrics` renders them.
public final class AdminMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// When the per-version gauges were last read from PostgreSQL (see `AdminMetrics+VersionStats.swift`).
    let versionStatsRead = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
    /// When the budget gauges were last read (see `AdminMetrics+Budgets.swift`).
    let budgetsRead = NIOLockedValueBox<ContinuousClock.Instant?>(nil)

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Bootstraps swift-metrics for this process (once) and returns the metrics `/metrics` renders.
    public static let shared: AdminMetrics = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return AdminMetrics(registry: registry)
    }()

    func render(_ dependencies: AdminDependencies, hub: StatusHub) async -> String {
        // Read at scrape time: queue depths (the gauges), and the reconnects the AMQP connection counts itself.
        _ = try? await hub.recent(.queues)
        Gauge(label: "agentry_amqp_reconnects").record(dependencies.connection.reconnectCount)
        await refreshVersionStats(dependencies)
        await refreshBudgets(dependencies)
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    func consumed(_ event: Event) { AgentryMetrics.consumed(event, by: "admin-status") }

    func queueDepth(_ queue: String, _ messages: Int) { AgentryMetrics.queueDepth(queue, messages) }
}
