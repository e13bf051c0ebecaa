public import AgentryCore
public import AgentryStore
import Foundation

/// People's holds (`lock_holds`), as the API answers them and `agentry locks acquire --json` prints them.
extension Representation {
    public static func hold(_ record: LockHoldRecord) -> JSONValue {
        .object([
            "hold_id": id(record.id), "resource": .string(record.resource.description), "owner": .string(record.owner.id),
            "owner_type": .string(record.owner.kind.rawValue), "priority": .string(record.priority.name),
            "hold_seconds": .double(record.holdFor.inSeconds), "state": .string(record.state.rawValue),
            "requested_at": time(record.requestedAt), "requested_by": string(record.requestedBy), "wait_until": time(record.waitUntil),
            "acquired_at": time(record.acquiredAt), "hold_until": time(record.holdUntil),
            "fencing_token": record.fencingToken.map { .int($0) } ?? .null, "keeper_id": string(record.keeperID),
            "ended_at": time(record.endedAt), "message": string(record.message),
        ])
    }
}
