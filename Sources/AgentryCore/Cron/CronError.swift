/// Why a cron expression was refused: which field, where in the text, what was expected there and what was found.
///
/// ```
/// field minute at position 1: expected a number 0-59; found '61'
/// expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first; found 4
/// at position 1: expected one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every <duration>; found '@dayly'; did you mean '@daily'?
/// ```
public struct CronError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The whole expression, trimmed, as given to ``CronExpression/init(_:)``.
    public var text: String
    /// The field the problem is in: `second`, `minute`, `hour`, `day of month`, `month`, `day of week`; nil when it
    /// concerns the whole expression (field count, macros, `@every`).
    public var field: String?
    /// 1-based character offset into ``text`` where the problem starts.
    public var position: Int
    /// What was expected there, e.g. `a number 0-59, '*', a range a-b, a step /n, or a list`.
    public var expected: String
    /// What was there: the offending text (empty for nothing), or for a wrong field count, the count.
    public var found: String
    /// A likely fix, e.g. `did you mean 'MON'?`; nil when nothing is close.
    public var suggestion: String?
    /// Whether ``found`` is a count (the number of fields), written bare rather than quoted.
    var foundIsCount = false

    public init(text: String, field: String?, position: Int, expected: String, found: String, suggestion: String? = nil) {
        self.text = text
        self.field = field
        self.position = position
        self.expected = expected
        self.found = found
        self.suggestion = suggestion
    }

    /// `field minute at position 4: expected a number 0-59; found '61'`: where, what was expected, what was found, and a
    /// suggestion when there is one. A wrong field count reads `expected 5 fields (…) or 6 with seconds first; found 4`.
    public var description: String {
        guard let suggestion else { return problem }
        return "\(problem); \(suggestion)"
    }

    /// ``description`` without the suggestion.
    var problem: String {
        var message: String
        if let field {
            message = "field \(field) at position \(position): "
        } else if foundIsCount {
            message = ""
        } else {
            message = "at position \(position): "
        }
        message += "expected \(expected); found "
        if found.isEmpty {
            message += "nothing"
        } else if foundIsCount {
            message += found
        } else {
            message += "'\(found)'"
        }
        return message
    }

}
