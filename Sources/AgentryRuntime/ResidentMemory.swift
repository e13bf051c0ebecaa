import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// This process's resident memory (RSS), which a worker records with each heartbeat so that operators see one that
/// grows. Read from `/proc/self/statm` (its second field counts resident pages): one small read, no allocation
/// beyond it. Nil where there is no such file (not Linux).
public enum ResidentMemory {
    public static func bytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        #if canImport(Glibc)
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
        let pageSize = Int(getpagesize())
        #endif
        return pages * max(pageSize, 1)
    }
}
