import AMQP
import AgentryAdmin
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import ArgumentParser
import Foundation
import Logging

/// Runs `body` with the lock tables (and the broker, for the events an administrator's action publishes).
func withLocks<T: Sendable>(
    _ options: GlobalOptions, broker: Bool = false,
    _ body: @Sendable (LockStore, EventBus?) async throws -> T
) async throws -> T {
    let configuration = try options.resolve()
    let logger = try options.logger("agentry.locks", default: .warning)
    let connection = AMQPConnection(configuration: configuration.amqp, logger: logger)
    do {
        let bus: EventBus?
        if broker {
            try await connection.connect()
            bus = try await EventBus(connection: connection, logger: logger)
        } else {
            bus = nil
        }
        let result = try await Database.with(configuration.database, logger: logger) { database in
            try await database.ping()
            return try await body(LockStore(database: database, logger: logger), bus)
        }
        await connection.close()
        return result
    } catch {
        await connection.close()
        throw fail(error)
    }
}

func parseResource(_ text: String) throws -> ResourceKey {
    switch ResourceKey.parse(naming: text) {
    case .success(let key): return key
    case .failure(let problem): throw ValidationError(problem.description)
    }
}

extension Agentry {
    struct Locks: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resource locks across every host: who holds what, who waits, people taking and giving back resources, and taking a lock back.",
            subcommands: [List.self, Show.self, Acquire.self, Release.self, Holds.self], defaultSubcommand: List.self)
    }
}

extension Agentry.Locks {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Held resources and resources with waiters.")
        @OptionGroup var options: GlobalOptions

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let locks = try await withLocks(options) { store, _ in try await store.list() }
            if json {
                printJSON(.object(["locks": .array(locks.map(Representation.lock)), "count": .int(Int64(locks.count))]))
                return
            }
            if locks.isEmpty {
                print("no resource is locked or waited for")
                return
            }
            printTable(
                header: ["RESOURCE", "STATUS", "OWNER", "PRIORITY", "TOKEN", "EXPIRES", "WAITING"],
                rows: locks.map { lock in
                    [
                        lock.resource.description, lock.isAvailable ? "available" : "locked", lock.holder.map(\.owner.description) ?? "-",
                        lock.holder?.priority.name ?? "-", lock.holder?.fencingToken.map(String.init) ?? "-",
                        lock.holder.map { Timestamp.format($0.expiresAt) } ?? "-", String(lock.queueLength),
                    ]
                })
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One resource: its holder, expiry, fencing token and waiters in the order they will be served.")
        @OptionGroup var options: GlobalOptions

        @Argument(help: "The resource, <type>:<id> (device:tv-1).")
        var resource: String

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws { _ = try parseResource(resource) }

        func run() async throws {
            let key = try parseResource(resource)
            let status = try await withLocks(options) { store, _ in try await store.status(key) }
            if json {
                printJSON(Representation.lock(status))
                return
            }
            var lines: [(String, String)] = [("resource", key.description), ("status", status.isAvailable ? "available" : "locked")]
            if let holder = status.holder {
                lines += [
                    ("owner", holder.owner.description), ("priority", holder.priority.name),
                    ("acquired", Timestamp.format(holder.acquiredAt)), ("expires", Timestamp.format(holder.expiresAt)),
                    ("fencing token", holder.fencingToken.map(String.init) ?? "-"), ("worker", holder.workerID ?? "-"),
                    ("run", holder.runID.map { $0.uuidString.lowercased() } ?? "-"),
                ]
            }
            lines.append(("queue length", String(status.queueLength)))
            let width = lines.map(\.0.count).max() ?? 0
            for (key, value) in lines { print("\(key.padding(toLength: width, withPad: " ", startingAt: 0))  \(value)") }
            if !status.waiters.isEmpty {
                print("")
                printTable(
                    header: ["#", "OWNER", "PRIORITY", "QUEUED", "GIVES UP", "RUN"],
                    rows: status.waiters.map { waiter in
                        [
                            String(waiter.position), waiter.owner.description, waiter.priority.name, Timestamp.format(waiter.queuedAt),
                            Timestamp.format(waiter.waitUntil), waiter.runID.map { $0.uuidString.lowercased() } ?? "-",
                        ]
                    })
            }
        }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Give back a resource a person took (--owner), or take a resource back from its holder (--force): its database session is ended (which frees every lock of its hold), its task is stopped by its worker, and the next waiter is served."
        )
        @OptionGroup var options: GlobalOptions

        @Argument(help: "The resource, <type>:<id> (device:tv-1).")
        var resource: String

        @Option(help: "Give back this person's hold (taken with `agentry locks acquire --owner NAME`), or withdraw their request.")
        var owner: String?

        @Flag(help: "Take the resource from whoever holds it (an agent's run is stopped).")
        var force = false

        func validate() throws {
            _ = try parseResource(resource)
            if force, owner != nil {
                throw ValidationError("--owner gives back that person's hold, --force takes the resource from anyone: give one")
            }
            guard force || owner != nil else {
                throw ValidationError(
                    "a lock is released by the task that holds it; to give back a person's hold, say whose with --owner NAME; to take \(resource) back anyway, add --force"
                )
            }
        }

        func run() async throws {
            if let owner {
                let key = try parseResource(resource)
                let released = try await withHoldDesk(options) { desk in
                    try await desk.giveBack(key, owner: ownerOption(owner), by: commandCaller("release"))
                }
                let was = released.acquiredAt == nil ? "withdrew the request of \(released.owner) for \(key)" : "\(released.owner) gave back \(key)"
                print(was + (released.freedAt == nil && released.acquiredAt != nil ? " (the keeper lets it go as soon as it sees it)" : ""))
                return
            }
            let key = try parseResource(resource)
            let who = "\(ProcessInfo.processInfo.environment["USER"] ?? "an operator") (agentry locks release --force)"
            let released = try await withLocks(options, broker: true) { store, bus in
                guard let released = try await store.forceRelease(key) else { return nil as ForcedRelease? }
                let event = Event(
                    type: "resource.released",
                    payload: [
                        "resource_id": .string(key.id), "resource_type": .string(key.type), "resource": .string(key.description),
                        "owner_id": .string(released.owner.id), "owner_type": .string(released.owner.kind.rawValue),
                        "fencing_token": released.fencingToken.map { .int($0) } ?? .null,
                        "run_id": released.runID.map { .string($0.uuidString.lowercased()) } ?? .null,
                        "forced": true, "by": .string(who),
                    ], priority: .normal, source: "agentry.locks")
                try await bus?.publish(event)
                return released
            }
            guard let released else {
                throw Failure("\(key) is not locked; `agentry locks list` shows what is")
            }
            let run = released.runID.map { " (run \($0.uuidString.lowercased()))" } ?? ""
            print(
                "released \(key): took it from \(released.owner)\(run); its worker stops the task"
                    + (released.terminatedHolder ? "" : " (its session is still closing)"))
        }
    }
}
