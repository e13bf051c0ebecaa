import AMQP
import AgentryBus
import AgentryCore

/// How a delivery is settled: normally through the broker (ack, reject to requeue); for a run that was handed over
/// (its delivery acked early), "requeue" publishes the event again to the agent's queue.
struct Settlement: Sendable {
    let delivery: AMQPDelivery
    let handedOver: Bool
    let event: Event
    let queue: String
    let channel: AMQPChannel

    func ack() {
        if !handedOver { delivery.ack() }
    }

    /// For an outcome that could not be recorded: the delivery goes back to the queue unacknowledged (a handed-over
    /// run's was acked already; its event stays kept with the run, which a worker that declares this one lost
    /// publishes again).
    func release() {
        if !handedOver { delivery.reject(requeue: true) }
    }

    func requeue() async {
        guard handedOver else {
            delivery.reject(requeue: true)
            return
        }
        var message = EventBus.message(for: event, toQueue: queue)
        // As delivered: a delegated task or a resume keeps what its headers say (see `DirectDelivery`).
        message.properties.headers = delivery.properties.headers
        var delay = Duration.milliseconds(200)
        while (try? await channel.publish(message)) == nil {
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }
}
