import CRabbitMQ
import Foundation
import Logging
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// Declarations of exchanges, queues and bindings, on the control channel (which carries nothing else); each is
/// recorded, to be declared again after a reconnect.
extension Session {
    func rawDeclareExchange(_ e: ExchangeDeclaration, passive: Bool) throws {
        guard let conn = connection else { throw lostError() }
        let arena = CArena()
        _ = amqp_exchange_declare(
            conn, Self.controlChannel, arena.bytes(e.name), arena.bytes(e.kind.rawValue),
            passive ? 1 : 0, e.durable ? 1 : 0, e.autoDelete ? 1 : 0, e.internal ? 1 : 0,
            arena.table(e.arguments))
        try check(
            amqp_get_rpc_reply(conn), channel: Self.controlChannel,
            context: passive ? "exchange '\(e.name)' does not exist" : "cannot declare exchange '\(e.name)'")
    }

    func rawDeclareQueue(_ q: QueueDeclaration, passive: Bool) throws -> QueueStatus {
        guard let conn = connection else { throw lostError() }
        let arena = CArena()
        let ok = amqp_queue_declare(
            conn, Self.controlChannel, arena.bytes(q.name), passive ? 1 : 0, q.durable ? 1 : 0,
            q.exclusive ? 1 : 0, q.autoDelete ? 1 : 0, arena.table(q.arguments))
        try check(
            amqp_get_rpc_reply(conn), channel: Self.controlChannel,
            context: passive ? "queue '\(q.name)' does not exist" : "cannot declare queue '\(q.name)'")
        guard let ok else { throw AMQPError(.library, "queue.declare-ok for '\(q.name)' carried no data") }
        return QueueStatus(name: ok.pointee.queue.string, messageCount: ok.pointee.message_count, consumerCount: ok.pointee.consumer_count)
    }

    func rawBind(_ b: BindingDeclaration, unbind: Bool) throws {
        guard let conn = connection else { throw lostError() }
        let arena = CArena()
        let verb = unbind ? "unbind" : "bind"
        let context = "cannot \(verb) \(b.destination) \(unbind ? "from" : "to") exchange '\(b.source)' with routing key '\(b.routingKey)'"
        switch (b.destination, unbind) {
        case (.queue(let q), false):
            _ = amqp_queue_bind(conn, Self.controlChannel, arena.bytes(q), arena.bytes(b.source), arena.bytes(b.routingKey), arena.table(b.arguments))
        case (.queue(let q), true):
            _ = amqp_queue_unbind(
                conn, Self.controlChannel, arena.bytes(q), arena.bytes(b.source), arena.bytes(b.routingKey), arena.table(b.arguments))
        case (.exchange(let e), false):
            _ = amqp_exchange_bind(
                conn, Self.controlChannel, arena.bytes(e), arena.bytes(b.source), arena.bytes(b.routingKey), arena.table(b.arguments))
        case (.exchange(let e), true):
            _ = amqp_exchange_unbind(
                conn, Self.controlChannel, arena.bytes(e), arena.bytes(b.source), arena.bytes(b.routingKey), arena.table(b.arguments))
        }
        try check(amqp_get_rpc_reply(conn), channel: Self.controlChannel, context: context)
    }

    func declareExchange(_ e: ExchangeDeclaration) throws {
        try rawDeclareExchange(e, passive: false)
        topology.record(.exchange(e))
    }

    func exchangeExists(_ name: String) throws -> Bool {
        do {
            try rawDeclareExchange(ExchangeDeclaration(name: name, kind: .direct), passive: true)
            return true
        } catch let error as AMQPError where error.replyCode == 404 {
            return false
        }
    }

    func declareQueue(_ q: QueueDeclaration) throws -> QueueStatus {
        let status = try rawDeclareQueue(q, passive: false)
        topology.record(.queue(q))
        return status
    }

    func queueStatus(_ name: String) throws -> QueueStatus {
        try rawDeclareQueue(QueueDeclaration(name: name), passive: true)
    }

    func bind(_ b: BindingDeclaration) throws {
        try rawBind(b, unbind: false)
        topology.record(.binding(b))
    }

    func unbind(_ b: BindingDeclaration) throws {
        try rawBind(b, unbind: true)
        topology.removeBinding(b)
    }

    func deleteQueue(_ name: String, ifUnused: Bool, ifEmpty: Bool) throws -> UInt32 {
        guard let conn = connection else { throw lostError() }
        let arena = CArena()
        let ok = amqp_queue_delete(conn, Self.controlChannel, arena.bytes(name), ifUnused ? 1 : 0, ifEmpty ? 1 : 0)
        try check(amqp_get_rpc_reply(conn), channel: Self.controlChannel, context: "cannot delete queue '\(name)'")
        topology.removeQueue(name)
        return ok?.pointee.message_count ?? 0
    }

    func deleteExchange(_ name: String, ifUnused: Bool) throws {
        guard let conn = connection else { throw lostError() }
        let arena = CArena()
        _ = amqp_exchange_delete(conn, Self.controlChannel, arena.bytes(name), ifUnused ? 1 : 0)
        try check(amqp_get_rpc_reply(conn), channel: Self.controlChannel, context: "cannot delete exchange '\(name)'")
        topology.removeExchange(name)
    }

    func purgeQueue(_ name: String) throws -> UInt32 {
        guard let conn = connection else { throw lostError() }
        let arena = CArena()
        let ok = amqp_queue_purge(conn, Self.controlChannel, arena.bytes(name))
        try check(amqp_get_rpc_reply(conn), channel: Self.controlChannel, context: "cannot purge queue '\(name)'")
        return ok?.pointee.message_count ?? 0
    }
}
