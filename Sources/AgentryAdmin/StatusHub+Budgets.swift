import AgentryCore
import AgentryRuntime
import Foundation
import NIOConcurrencyHelpers

/// The `budgets` kind: every budget in its current period, as `GET /api/budgets` lists them.
///
/// A budget's usage moves when a run reserves or settles (after its run's state has changed, so the run's notification
/// may come before it), when a deferred run is counted and when a period ends: none of these notifies, so the kind is
/// sampled every second while clients are connected, and sent when it differs. A sample costs two queries (the
/// periods' usage and the deferred runs' counts): the published agents' definitions, which declare the budgets, are
/// kept between samples and read again only when agents change (or after ``definitionsLifetime``, in case a
/// notification was missed while the database connection was down).
extension StatusHub {
    static let definitionsLifetime: Duration = .seconds(30)

    func budgets() async throws -> [JSONValue] {
        let overview = dependencies.registry.budgetOverview(calendar: dependencies.budgetCalendar)
        let now = ContinuousClock.now
        let (kept, changes) = state.withLockedValue { s -> ([AgentDefinition]?, Int) in
            guard let kept = s.budgetDefinitions, kept.changes == s.agentsChanges, now - kept.at < Self.definitionsLifetime,
                s.watching, usable(kept.at, s)
            else { return (nil, s.agentsChanges) }
            return (kept.value, s.agentsChanges)
        }
        let definitions: [AgentDefinition]
        if let kept {
            definitions = kept
        } else {
            definitions = try await overview.published()
            // Kept with the count of changes seen before reading: a change notified meanwhile makes the next sample
            // read them again.
            state.withLockedValue { $0.budgetDefinitions = (now, changes, definitions) }
        }
        return try await overview.all(of: definitions).map(\.jsonValue)
    }
}
