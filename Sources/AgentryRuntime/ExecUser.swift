#if canImport(Glibc)
import Glibc
#endif

/// The user exec handlers run as (`--exec-user`): another user than the worker's cannot read the worker's
/// `/proc/<pid>/environ` (its credentials), even when the worker runs as root, where the worker being non-dumpable
/// is not enough.
public struct ExecUser: Sendable, Hashable {
    public var name: String
    public var uid: UInt32
    public var gid: UInt32

    public init(name: String, uid: UInt32, gid: UInt32) {
        self.name = name
        self.uid = uid
        self.gid = gid
    }

    /// The account named `name` (or a numeric uid), from the system's user database.
    public static func lookUp(_ name: String) throws(ExecUserError) -> ExecUser {
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let rc: Int32
        if let uid = UInt32(name) {
            rc = getpwuid_r(uid, &entry, &buffer, buffer.count, &found)
        } else {
            rc = getpwnam_r(name, &entry, &buffer, buffer.count, &found)
        }
        guard rc == 0, found != nil else {
            throw ExecUserError(description: "--exec-user \(name): no such user on this host (see /etc/passwd)")
        }
        return ExecUser(name: String(cString: entry.pw_name), uid: entry.pw_uid, gid: entry.pw_gid)
    }

    /// Whether this process runs as root.
    public static var workerIsRoot: Bool { geteuid() == 0 }
}

public struct ExecUserError: Error, Sendable, CustomStringConvertible {
    public var description: String
}
