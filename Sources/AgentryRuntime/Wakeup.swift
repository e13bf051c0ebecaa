import NIOConcurrencyHelpers

/// A one-slot wake-up signal for a waiter: `signal()` before `wait` is not lost.
final class Wakeup: Sendable {
    private let state = NIOLockedValueBox<(pending: Bool, continuation: CheckedContinuation<Void, Never>?)>((false, nil))

    func signal() {
        let continuation = state.withLockedValue { s -> CheckedContinuation<Void, Never>? in
            if let c = s.continuation {
                s.continuation = nil
                return c
            }
            s.pending = true
            return nil
        }
        continuation?.resume()
    }

    /// Returns on a signal, after `timeout`, or when the task is cancelled.
    func wait(for timeout: Duration) async {
        let timer = Task {
            do {
                try await Task.sleep(for: timeout)
                self.signal()
            } catch {}
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLockedValue { s -> Bool in
                    if s.pending {
                        s.pending = false
                        return true
                    }
                    s.continuation = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            self.signal()
        }
    }
}
