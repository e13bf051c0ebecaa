public import Foundation

/// Feedback on a finished run: a rating from 1 to 5, a label, a comment; at least one of them. The CLI
/// (`agentry runs feedback`), the admin API and `run.feedback` events all read it through ``init(rating:label:comment:)``.
public struct RunFeedback: Sendable, Hashable {
    /// What the run's result was judged to be.
    public enum Label: String, Sendable, Hashable, CaseIterable {
        case correct, wrong, partially
    }

    /// Why feedback is refused, in words that name the field.
    public struct Problem: Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    /// The longest comment kept, in characters.
    public static let maxCommentLength = 10_000

    public var rating: Int?
    public var label: Label?
    /// Nil when none was given (a blank comment counts as none).
    public var comment: String?

    /// Checks the parts: a rating from 1 to 5, a label among ``Label``, a comment of at most ``maxCommentLength``
    /// characters, and at least one of the three.
    public init(rating: Int?, label: String?, comment: String?) throws(Problem) {
        if let rating, !(1...5).contains(rating) {
            throw Problem("rating must be a whole number from 1 to 5, not \(rating)")
        }
        var parsedLabel: Label?
        if let label {
            guard let known = Label(rawValue: label.lowercased()) else {
                throw Problem("label must be one of \(Label.allCases.map(\.rawValue).joined(separator: ", ")), not '\(label)'")
            }
            parsedLabel = known
        }
        let trimmed = comment?.trimmingCharacters(in: .whitespacesAndNewlines)
        let kept = trimmed?.isEmpty == false ? comment : nil
        if let kept, kept.count > Self.maxCommentLength {
            throw Problem("comment must be at most \(Self.maxCommentLength) characters, not \(kept.count)")
        }
        if let kept, kept.utf8.contains(0) {
            throw Problem("comment must not contain NUL characters")
        }
        guard rating != nil || parsedLabel != nil || kept != nil else {
            throw Problem("give at least one of rating (1-5), label (\(Label.allCases.map(\.rawValue).joined(separator: ", "))) or comment")
        }
        self.rating = rating
        self.label = parsedLabel
        self.comment = kept
    }

    /// What a `run.feedback` event carries: `{"run_id", "rating", "label", "comment", "by"}`.
    public struct FromEvent: Sendable, Hashable {
        public var runID: UUID
        public var feedback: RunFeedback
        /// The payload's `by`, when it names who gave it.
        public var by: String?
    }

    /// Reads a `run.feedback` event's payload, or says what is wrong with it.
    public static func fromEvent(_ payload: JSONObject) -> Result<FromEvent, Problem> {
        guard let text = payload["run_id"]?.stringValue else {
            return .failure(Problem("run_id must be the run's id (a UUID string), not \(payload["run_id"]?.kindName ?? "missing")"))
        }
        guard let runID = UUID(uuidString: text) else { return .failure(Problem("run_id '\(text)' is not a UUID")) }
        var rating: Int?
        switch payload["rating"] {
        case nil, .null?: rating = nil
        case .int(let value)?: rating = Int(clamping: value)
        case .double(let value)? where value.rounded() == value && abs(value) < 1e9: rating = Int(value)
        case let other?: return .failure(Problem("rating must be a whole number from 1 to 5, not \(other.kindName)"))
        }
        func optionalString(_ key: String) -> Result<String?, Problem> {
            switch payload[key] {
            case nil, .null?: return .success(nil)
            case .string(let value)?: return .success(value)
            case let other?: return .failure(Problem("\(key) must be a string, not \(other.kindName)"))
            }
        }
        let label: String?, comment: String?, by: String?
        switch (optionalString("label"), optionalString("comment"), optionalString("by")) {
        case (.success(let l), .success(let c), .success(let b)): (label, comment, by) = (l, c, b)
        case (.failure(let problem), _, _), (_, .failure(let problem), _), (_, _, .failure(let problem)): return .failure(problem)
        }
        do {
            let feedback = try RunFeedback(rating: rating, label: label, comment: comment)
            let giver = by.flatMap { $0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : String($0.prefix(255)) }
            return .success(FromEvent(runID: runID, feedback: feedback, by: giver))
        } catch {
            return .failure(error)
        }
    }
}
