import AgentryAdmin
import AgentryCore
import AgentryStore
import ArgumentParser
import Foundation

extension Agentry.Runs {
    struct Feedback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give feedback on a finished run (a rating, a label, a comment), or list the feedback it got.",
            discussion: """
                With --rating, --label or --comment (at least one), records feedback on the run, given by \
                "$USER (agentry runs feedback)"; without them, lists the feedback the run got. The run must exist \
                and have finished, and its agent version must collect feedback (config.feedback_collection).
                """)
        @OptionGroup var options: GlobalOptions

        @Argument(help: "Run id.")
        var id: String

        @Option(help: "A rating from 1 (bad) to 5 (good).")
        var rating: Int?

        @Option(help: "correct, wrong or partially.")
        var label: String?

        @Option(help: "A comment.")
        var comment: String?

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            if UUID(uuidString: id) == nil { throw ValidationError("'\(id)' is not a run id (a UUID); `agentry runs list` shows them") }
            if rating != nil || label != nil || comment != nil {
                do {
                    _ = try RunFeedback(rating: rating, label: label, comment: comment)
                } catch {
                    throw ValidationError(error.message)
                }
            }
        }

        func run() async throws {
            let runID = UUID(uuidString: id)!
            guard rating != nil || label != nil || comment != nil else { return try await list(runID) }
            let feedback = try RunFeedback(rating: rating, label: label, comment: comment)
            let by = "\(ProcessInfo.processInfo.environment["USER"] ?? "an operator") (agentry runs feedback)"
            let record = try await withRuntime(options) { _, store in
                try await store.feedback.record(feedback, runID: runID, by: by)
            }
            guard let record else { throw Failure("the feedback on run \(id) was not recorded") }
            if json {
                printJSON(Representation.feedback(record))
            } else {
                print("feedback recorded on run \(id) (\(record.agentID) \(record.agentVersion)): \(Self.summary(record))")
            }
        }

        private func list(_ runID: UUID) async throws {
            let records = try await withRuntime(options) { _, store in
                try await store.feedback.feedback(onRun: runID)
            }
            if json {
                printJSON(.object(["feedback": .array(records.map(Representation.feedback)), "count": .int(Int64(records.count))]))
                return
            }
            guard !records.isEmpty else {
                print("no feedback on run \(id) yet; give some with `agentry runs feedback \(id) --rating 4 --label correct --comment ...`")
                return
            }
            printTable(
                header: ["GIVEN", "BY", "RATING", "LABEL", "COMMENT"],
                rows: records.map { record in
                    [
                        Timestamp.format(record.createdAt), record.by, record.rating.map(String.init) ?? "-", record.label?.rawValue ?? "-",
                        String((record.comment ?? "-").prefix(80)),
                    ]
                })
        }

        static func summary(_ record: FeedbackRecord) -> String {
            var parts: [String] = []
            if let rating = record.rating { parts.append("rating \(rating)") }
            if let label = record.label { parts.append(label.rawValue) }
            if let comment = record.comment { parts.append("\"\(comment.prefix(60))\"") }
            return parts.joined(separator: ", ")
        }
    }
}
