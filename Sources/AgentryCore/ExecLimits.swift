/// Resource limits an exec handler runs under (`handler.exec.limits`), applied with `setrlimit` between fork and
/// exec. A limit that is not set takes the worker's default (see ``ExecLimits/defaults(timeoutSeconds:)``).
public struct ExecLimits: Sendable, Hashable {
    /// Address space (`RLIMIT_AS`), in MiB. Default: not limited (runtimes such as the JVM, Go and Node reserve far
    /// more address space than they use, so a default cap would break them for no gain).
    public var memoryMB: Int?
    /// CPU time (`RLIMIT_CPU`), in seconds; the handler gets SIGXCPU, then SIGKILL. Default: `config.timeout_seconds`
    /// (a single-threaded handler cannot use more before its timeout anyway).
    public var cpuSeconds: Int?
    /// Open descriptors (`RLIMIT_NOFILE`). Default: 1024.
    public var openFiles: Int?
    /// Processes and threads of the handler's user (`RLIMIT_NPROC`). Default: not limited: the count is per user,
    /// not per handler, so it includes the worker's own threads and every other handler's processes, and the kernel
    /// does not apply it to root; any fixed default would either fail ordinary handlers or do nothing.
    public var processes: Int?

    public init(memoryMB: Int? = nil, cpuSeconds: Int? = nil, openFiles: Int? = nil, processes: Int? = nil) {
        self.memoryMB = memoryMB
        self.cpuSeconds = cpuSeconds
        self.openFiles = openFiles
        self.processes = processes
    }

    /// The default number of open descriptors.
    public static let defaultOpenFiles = 1024

    /// These limits with every unset one filled with its default.
    public func withDefaults(timeoutSeconds: Int) -> ExecLimits {
        ExecLimits(
            memoryMB: memoryMB, cpuSeconds: cpuSeconds ?? timeoutSeconds,
            openFiles: openFiles ?? Self.defaultOpenFiles, processes: processes)
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case memoryMB = "memory_mb"
        case cpuSeconds = "cpu_seconds"
        case openFiles = "open_files"
        case processes
    }
}
