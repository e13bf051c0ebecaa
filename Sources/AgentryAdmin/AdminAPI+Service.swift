import AMQP
import AgentryBus
import AgentryCore
import AgentryStore

/// The probes: `/healthz` and `/readyz`.
extension AdminAPI {
    func getHealth(_ input: Operations.GetHealth.Input) async throws -> Operations.GetHealth.Output {
        .ok(.init(body: .json(.init(status: .ok))))
    }

    /// What is ready; the reasons for what is not name servers, users and databases only to callers with the token.
    func getReadiness(_ input: Operations.GetReadiness.Input) async throws -> Operations.GetReadiness.Output {
        let detailed = callerHasToken
        var checks: [String: String] = [:]
        var ready = true
        do {
            try await dependencies.database.ping()
            checks["database"] = "ok"
            let version = try await Migrator.currentVersion(database: dependencies.database, logger: logger) ?? 0
            if version >= dependencies.expectedSchemaVersion {
                checks["migrations"] = "ok"
            } else {
                ready = false
                checks["migrations"] =
                    "the schema is at version \(version), this binary needs \(dependencies.expectedSchemaVersion): run `agentry migrate`"
            }
        } catch {
            ready = false
            checks["database"] = detailed ? "\(error)" : "PostgreSQL does not answer (details with the admin token)"
            checks["migrations"] = "unknown (the database does not answer)"
        }
        do {
            _ = try await dependencies.connection.queueStatus(Topology.deadQueue)
            if let reason = dependencies.connection.blockedReason {
                // A memory or disk alarm: publishes wait (consumers still ack, on a connection of their own).
                ready = false
                checks["broker"] = "RabbitMQ has blocked publishing (\(reason)): events, follow-ups and retries wait until the alarm clears"
            } else {
                checks["broker"] = "ok"
            }
        } catch {
            ready = false
            checks["broker"] = detailed ? "RabbitMQ does not answer: \(error)" : "RabbitMQ does not answer (details with the admin token)"
        }
        if ready {
            return .ok(.init(body: .json(.init(status: .ready, checks: .init(additionalProperties: checks)))))
        }
        return .serviceUnavailable(.init(body: .json(.init(status: .notReady, checks: .init(additionalProperties: checks)))))
    }
}
