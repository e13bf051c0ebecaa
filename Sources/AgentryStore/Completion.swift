import NIOConcurrencyHelpers

/// A value that arrives once, from any thread, for any number of tasks to await: a statement's answer, a group
/// commit's reply, a child process's exit or output.
package final class Completion<Value: Sendable>: Sendable {
    private let state = NIOLockedValueBox<(value: Value?, waiters: [CheckedContinuation<Value, Never>])>((nil, []))

    package init() {}

    package var isComplete: Bool { state.withLockedValue { $0.value != nil } }

    /// Sets the value and wakes the waiters; later calls are ignored.
    @Sendable package func complete(_ value: Value) {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Value, Never>] in
            guard state.value == nil else { return [] }
            state.value = value
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    package var value: Value {
        get async {
            await withCheckedContinuation { continuation in
                let done = state.withLockedValue { state -> Value? in
                    if let value = state.value { return value }
                    state.waiters.append(continuation)
                    return nil
                }
                if let done { continuation.resume(returning: done) }
            }
        }
    }
}
