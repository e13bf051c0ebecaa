import Logging
import NIOConcurrencyHelpers

/// Keeps what a logger writes, for a test to check what the component under test reported to the operator.
final class LogCapture: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let entries = NIOLockedValueBox<[Entry]>([])

    /// A logger at `level` whose entries this capture keeps.
    func logger(level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: "agentry.test.capture") { _ in Handler(capture: self) }
        logger.logLevel = level
        return logger
    }

    var all: [Entry] { entries.withLockedValue { $0 } }

    func entries(_ message: String) -> [Entry] { all.filter { $0.message == message } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            let entry = Entry(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" })
            capture.entries.withLockedValue { $0.append(entry) }
        }
    }
}
