import AgentryCore
import Foundation
import Testing

@Suite("Run feedback")
struct RunFeedbackTests {
    @Test("a rating, a label and a comment, or any one of them")
    func valid() throws {
        let all = try RunFeedback(rating: 4, label: "Correct", comment: "fine")
        #expect(all.rating == 4 && all.label == .correct && all.comment == "fine")
        #expect(try RunFeedback(rating: nil, label: "wrong", comment: nil).label == .wrong)
        #expect(try RunFeedback(rating: 1, label: nil, comment: nil).rating == 1)
        #expect(try RunFeedback(rating: nil, label: nil, comment: "only words").comment == "only words")
    }

    @Test(
        "refusals name what is wrong",
        arguments: [
            (Int?.none, String?.none, String?.none, "at least one of rating"),
            (0, nil, nil, "from 1 to 5, not 0"),
            (6, nil, nil, "from 1 to 5, not 6"),
            (nil, "maybe", nil, "label must be one of correct, wrong, partially, not 'maybe'"),
            (nil, nil, "   ", "at least one of rating"),
        ])
    func refused(rating: Int?, label: String?, comment: String?, expected: String) {
        #expect(throws: RunFeedback.Problem.self) { try RunFeedback(rating: rating, label: label, comment: comment) }
        do {
            _ = try RunFeedback(rating: rating, label: label, comment: comment)
        } catch {
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test("a comment over the limit is refused")
    func longComment() {
        let long = String(repeating: "x", count: RunFeedback.maxCommentLength + 1)
        #expect(throws: RunFeedback.Problem.self) { try RunFeedback(rating: nil, label: nil, comment: long) }
    }

    @Test("a run.feedback payload reads into the run, the feedback and who gave it")
    func fromEvent() throws {
        let run = UUID()
        let read = try RunFeedback.fromEvent([
            "run_id": .string(run.uuidString.lowercased()), "rating": .int(3), "label": .string("partially"), "comment": .string("half"),
            "by": .string("reviewer"),
        ]).get()
        #expect(read.runID == run && read.feedback.rating == 3 && read.feedback.label == .partially && read.by == "reviewer")
        let whole = try RunFeedback.fromEvent(["run_id": .string(run.uuidString), "rating": .double(5)]).get()
        #expect(whole.feedback.rating == 5 && whole.by == nil)
    }

    @Test(
        "a bad run.feedback payload says why",
        arguments: [
            (JSONObject(), "run_id must be"),
            (["run_id": .string("nope"), "rating": .int(3)], "is not a UUID"),
            (["run_id": .string(UUID().uuidString), "rating": .string("4")], "rating must be a whole number"),
            (["run_id": .string(UUID().uuidString), "rating": .double(4.5)], "rating must be a whole number"),
            (["run_id": .string(UUID().uuidString), "label": .int(1)], "label must be a string"),
            (["run_id": .string(UUID().uuidString)], "at least one of"),
        ] as [(JSONObject, String)])
    func badEvent(payload: JSONObject, expected: String) {
        switch RunFeedback.fromEvent(payload) {
        case .success(let read): Issue.record("read as \(read)")
        case .failure(let problem): #expect(problem.message.contains(expected), "\(problem.message)")
        }
    }
}
