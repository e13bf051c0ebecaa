/// Whether a worker's own heartbeats have gone through long enough for it to judge other workers' heartbeats.
///
/// When PostgreSQL was unreachable for this worker, it may have been unreachable for every worker: their heartbeats
/// look old only because they could not write them either. So a worker declares others lost only once its own
/// heartbeats have succeeded without a break for a whole expiry interval: by then every live worker has had the
/// same chance to write one.
struct HeartbeatHealth: Sendable {
    /// The first of the heartbeats that have succeeded since the last failure (or since the start).
    private(set) var healthySince: ContinuousClock.Instant?

    mutating func succeeded(at now: ContinuousClock.Instant) {
        if healthySince == nil { healthySince = now }
    }

    mutating func failed() {
        healthySince = nil
    }

    func maySweep(at now: ContinuousClock.Instant, expiry: Duration) -> Bool {
        guard let healthySince else { return false }
        return now - healthySince >= expiry
    }
}
