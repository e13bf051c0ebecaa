public import Foundation

/// A run's moments, published → received → started → finished, and the waits between them: what `agentry runs show`
/// prints and the run's page draws, computed here once so that both say the same.
public struct RunTimings: Sendable, Hashable {
    /// When the event was published (its timestamp), when the worker received the delivery, when the run was claimed
    /// and its handler started, when it ended.
    public var published: Date?
    public var received: Date?
    public var started: Date
    public var finished: Date?

    /// In the broker: the queue's backlog and the prefetch window (publish → receipt).
    public var inBroker: TimeInterval? { received.flatMap { received in published.map { received.timeIntervalSince($0) } } }
    /// In the worker before the handler started (a full agent slot, the claim): from the receipt, or from the publish
    /// for runs recorded before receipts were kept.
    public var inWorker: TimeInterval? { (received ?? published).map { started.timeIntervalSince($0) } }
    /// Whether ``inWorker`` counts from the publish (no receipt recorded).
    public var workerWaitFromPublish: Bool { received == nil }
    /// The run itself, started → finished (nil while it runs).
    public var running: TimeInterval? { finished.map { $0.timeIntervalSince(started) } }
}

extension TaskRun {
    public var timings: RunTimings { RunTimings(published: eventAt, received: receivedAt, started: startedAt, finished: finishedAt) }
}
