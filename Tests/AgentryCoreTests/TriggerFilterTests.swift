import Foundation
import Testing

@testable import AgentryCore

@Suite("TriggerFilter")
struct TriggerFilterTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var filters: JSONObject?
        var payload: JSONObject
        var matches: Bool

        init(_ name: String, _ filters: JSONObject?, _ payload: JSONObject, _ matches: Bool) {
            self.name = name
            self.filters = filters
            self.payload = payload
            self.matches = matches
        }

        var testDescription: String { name }
    }

    static let payload: JSONObject = [
        "severity": "major",
        "count": 3,
        "ratio": 1.0,
        "ok": true,
        "note": nil,
        "device": ["id": "tv-7", "model": ["vendor": "acme", "year": 2021]],
        "tags": ["prod", "eu"],
        "items": [["name": "a"], ["name": "b"]],
    ]

    static let cases: [Case] = [
        // No filters.
        Case("nil filters match", nil, payload, true),
        Case("empty filters match", [:], payload, true),
        Case("empty filters match an empty payload", [:], [:], true),
        // Scalar equality.
        Case("string equal", ["severity": "major"], payload, true),
        Case("string not equal", ["severity": "minor"], payload, false),
        Case("string is case-sensitive", ["severity": "Major"], payload, false),
        Case("int equal", ["count": 3], payload, true),
        Case("int not equal", ["count": 4], payload, false),
        Case("int filter equals double payload 1.0", ["ratio": 1], payload, true),
        Case("double filter 3.0 equals int payload 3", ["count": 3.0], payload, true),
        Case("double 3.5 does not equal int 3", ["count": 3.5], payload, false),
        Case("a string never equals a number", ["count": "3"], payload, false),
        Case("a number never equals a string", ["severity": 1], ["severity": "1"], false),
        Case("bool equal", ["ok": true], payload, true),
        Case("bool not equal", ["ok": false], payload, false),
        Case("true is not 1", ["ok": 1], payload, false),
        Case("null equals null", ["note": nil], payload, true),
        Case("null does not equal a missing value", ["absent": nil], payload, false),
        Case("null does not equal a string", ["severity": nil], payload, false),
        // Paths.
        Case("nested dotted path", ["device.id": "tv-7"], payload, true),
        Case("deeper dotted path", ["device.model.vendor": "acme"], payload, true),
        Case("deeper dotted path, other value", ["device.model.year": 2020], payload, false),
        Case("array index", ["tags.0": "prod"], payload, true),
        Case("array index, second element", ["tags.1": "prod"], payload, false),
        Case("array index out of range is missing", ["tags.5": ["exists": false]], payload, true),
        Case("index then key", ["items.1.name": "b"], payload, true),
        Case("missing path does not match", ["device.serial": "x"], payload, false),
        Case("path through a scalar is missing", ["severity.level": "x"], payload, false),
        Case("payload. prefix is stripped", ["payload.device.id": "tv-7"], payload, true),
        Case("payload. prefix, no match", ["payload.severity": "minor"], payload, false),
        Case("a key named payload is a payload field", ["payload": 1], ["payload": 1], true),
        Case("payload.payload reaches a field named payload", ["payload.payload.x": 1], ["payload": ["x": 1]], true),
        // Any-of lists.
        Case("any-of list matches one", ["severity": ["minor", "major"]], payload, true),
        Case("any-of list matches none", ["severity": ["minor", "info"]], payload, false),
        Case("any-of list compares numbers numerically", ["count": [1, 3.0]], payload, true),
        Case("any-of list with a missing value", ["absent": ["a", nil]], payload, false),
        Case("empty any-of list matches nothing", ["severity": []], payload, false),
        Case("a list does not match a payload array as a whole", ["tags": ["prod", "eu"]], payload, false),
        // exists.
        Case("exists true, present", ["severity": ["exists": true]], payload, true),
        Case("exists true, missing", ["absent": ["exists": true]], payload, false),
        Case("exists true, null counts as present", ["note": ["exists": true]], payload, true),
        Case("exists false, missing", ["absent": ["exists": false]], payload, true),
        Case("exists false, present", ["severity": ["exists": false]], payload, false),
        Case("exists false, null counts as present", ["note": ["exists": false]], payload, false),
        Case("exists on a nested path", ["device.model.year": ["exists": true]], payload, true),
        // not.
        Case("not equal, different value", ["severity": ["not": "minor"]], payload, true),
        Case("not equal, same value", ["severity": ["not": "major"]], payload, false),
        Case("not equal, missing value", ["absent": ["not": "x"]], payload, true),
        Case("not equal compares numbers numerically", ["count": ["not": 3.0]], payload, false),
        Case("not any-of, excluded", ["severity": ["not": ["major", "critical"]]], payload, false),
        Case("not any-of, allowed", ["severity": ["not": ["minor", "info"]]], payload, true),
        Case("not null, null", ["note": ["not": nil]], payload, false),
        Case("not exists true means absent", ["absent": ["not": ["exists": true]]], payload, true),
        Case("not in", ["severity": ["not": ["in": ["major"]]]], payload, false),
        // in.
        Case("in matches", ["severity": ["in": ["major", "critical"]]], payload, true),
        Case("in does not match", ["severity": ["in": ["minor"]]], payload, false),
        Case("in matches a payload array as a whole", ["tags": ["in": [["prod", "eu"]]]], payload, true),
        Case(
            "in values are literal, not operators", ["flag": ["in": [["exists": true]]]],
            ["flag": ["exists": true]], true),
        Case("exists and not together", ["note": ["exists": true, "not": nil]], payload, false),
        Case("exists and not together, non-null", ["severity": ["exists": true, "not": nil]], payload, true),
        // Structural object equality.
        Case("object equals object", ["device.model": ["vendor": "acme", "year": 2021]], payload, true),
        Case(
            "object equality compares numbers numerically", ["device.model": ["vendor": "acme", "year": 2021.0]],
            payload, true),
        Case("object with a missing key is unequal", ["device.model": ["vendor": "acme"]], payload, false),
        Case(
            "object with an extra key is unequal", ["device.model": ["vendor": "acme", "year": 2021, "x": 1]],
            payload, false),
        Case("object does not equal a string", ["severity": ["level": "major"]], payload, false),
        Case("an object in an any-of list", ["items.0": [["name": "z"], ["name": "a"]]], payload, true),
        // AND.
        Case("several keys all match", ["severity": "major", "device.id": "tv-7", "ok": true], payload, true),
        Case("several keys, one fails", ["severity": "major", "device.id": "tv-8", "ok": true], payload, false),
        Case(
            "several keys with operators",
            [
                "severity": ["in": ["major"]], "absent": ["exists": false],
                "tags.0": ["not": "dev"],
            ], payload, true),
        // Invalid definitions never match.
        Case("exists with a non-boolean never matches", ["severity": ["exists": "yes"]], payload, false),
        Case("in with a non-list never matches", ["severity": ["in": "major"]], payload, false),
        Case(
            "an unknown operator next to a known one never matches", ["severity": ["exists": true, "exits": true]],
            payload, false),
        Case("an empty path segment never matches", ["device..id": ["exists": false]], payload, false),
        Case(
            "a misspelt operator alone is structural equality", ["severity": ["exits": true]],
            ["severity": ["exits": true]], true),
    ]

    @Test("filters against payloads", arguments: cases)
    func table(_ c: Case) {
        let filter = TriggerFilter(c.filters)
        let event = Event(type: "alert.test", payload: c.payload)
        #expect(filter.matches(event) == c.matches)
        // explain() agrees with matches().
        #expect((filter.explain(event) == nil) == c.matches)
    }

    @Test("the table covers at least 30 cases")
    func tableSize() {
        #expect(Self.cases.count >= 30)
    }

    // MARK: explain

    func explain(_ filters: JSONObject, _ payload: JSONObject = payload) throws -> String {
        try #require(TriggerFilter(filters).explain(Event(type: "alert.test", payload: payload)))
    }

    @Test("explain names the path, the value and the allowed values of a failing any-of")
    func explainAnyOf() throws {
        let text = try explain(["severity": ["major", "critical"]], ["severity": "minor"])
        #expect(text == "payload.severity is 'minor', not one of 'major', 'critical'")
    }

    @Test("explain says a path is missing")
    func explainMissing() throws {
        #expect(try explain(["device.serial": "x"]) == "payload.device.serial is missing")
        #expect(try explain(["payload.device.serial": ["exists": true]]) == "payload.device.serial is missing")
    }

    @Test("explain of an unequal value names both values")
    func explainEquality() throws {
        let text = try explain(["count": 4])
        #expect(text == "payload.count is 3, not 4")
        let object = try explain(["device.model": ["vendor": "acme"]])
        #expect(object.contains("payload.device.model"))
        #expect(object.contains(#"{"vendor":"acme"}"#))
        #expect(object.contains(#"{"vendor":"acme","year":2021}"#))
    }

    @Test("explain of exists false and not")
    func explainExistsFalseAndNot() throws {
        let present = try explain(["note": ["exists": false]])
        #expect(present == "payload.note is null, expected it to be missing")
        let excluded = try explain(["severity": ["not": ["major", "critical"]]])
        #expect(excluded == "payload.severity is 'major', expected none of 'major', 'critical'")
        let notEqual = try explain(["tags.0": ["not": "prod"]])
        #expect(notEqual == "payload.tags.0 is 'prod', expected anything but 'prod'")
    }

    @Test("explain names the first failing key in key order")
    func explainFirstFailing() throws {
        let text = try explain(["severity": "minor", "count": 9, "ok": true])
        #expect(text == "payload.count is 3, not 9")
    }

    @Test("explain of an invalid filter says it is invalid")
    func explainInvalid() throws {
        let text = try explain(["severity": ["exists": "yes"]])
        #expect(text.contains("payload.severity"))
        #expect(text.contains("invalid"))
        #expect(text.contains("'exists' needs true or false"))
    }

    @Test("explain is nil when the event matches")
    func explainMatch() {
        let filter = TriggerFilter(["severity": ["major", "critical"], "device.id": "tv-7"])
        #expect(filter.explain(Event(type: "alert.test", payload: Self.payload)) == nil)
        #expect(TriggerFilter(nil).isEmpty)
        #expect(!filter.isEmpty)
    }

    // MARK: problems

    @Test("sound definitions have no problems")
    func noProblems() {
        let filters: JSONObject = [
            "severity": ["major", "critical"], "device.id": 42, "payload.site": ["exists": true],
            "tags.0": ["not": ["test", "dev"]], "kind": ["in": ["a"]], "device.model": ["vendor": "acme"],
            "note": nil, "flag": ["notes": "free text"], "id": ["id": 7],
        ]
        #expect(TriggerFilter.problems(filters) == [])
    }

    @Test("a misspelt operator is reported with a suggestion")
    func misspeltOperator() {
        #expect(
            TriggerFilter.problems(["severity": ["exits": true]])
                == ["'severity': unknown operator 'exits' (did you mean 'exists'?)"])
        #expect(
            TriggerFilter.problems(["severity": ["Exists": false]])
                == ["'severity': unknown operator 'Exists' (did you mean 'exists'?)"])
        #expect(
            TriggerFilter.problems(["severity": ["$in": ["a"]]])
                == ["'severity': unknown operator '$in' (did you mean 'in'?)"])
        #expect(
            TriggerFilter.problems(["severity": ["$nin": ["a"]]])
                == ["'severity': unknown operator '$nin' (did you mean 'not'?)"])
    }

    @Test("an unknown key beside an operator is reported")
    func unknownBesideOperator() {
        let problems = TriggerFilter.problems(["severity": ["exists": true, "exits": true, "foo": 1]])
        #expect(problems.count == 2)
        #expect(problems.contains("'severity': unknown operator 'exits' (did you mean 'exists'?)"))
        #expect(problems.contains { $0.contains("unknown operator 'foo'") })
    }

    @Test("exists with a non-boolean and in with a non-list are reported")
    func badOperands() {
        #expect(TriggerFilter.problems(["a": ["exists": "yes"]]) == ["'a': 'exists' needs true or false, found a string"])
        #expect(TriggerFilter.problems(["a": ["in": "x"]]) == ["'a': 'in' needs a list of values, found a string"])
        #expect(
            TriggerFilter.problems(["a": ["not": ["exists": 1]]])
                == ["'a': 'exists' needs true or false, found a number"])
    }

    @Test("empty paths and path segments are reported", arguments: ["", "a..b", ".a", "a.", "payload."])
    func emptySegments(key: String) {
        let problems = TriggerFilter.problems([key: 1])
        #expect(problems.count == 1)
        #expect(problems.first?.contains("empty") == true)
    }

    @Test("empty lists and duplicate paths are reported")
    func emptyListsAndDuplicates() {
        #expect(TriggerFilter.problems(["a": []]) == ["'a': an empty list matches no value"])
        #expect(TriggerFilter.problems(["a": ["in": []]]) == ["'a': an empty list matches no value"])
        #expect(TriggerFilter.problems(["a": ["not": []]]) == ["'a': an empty list under 'not' excludes nothing"])
        let duplicate = TriggerFilter.problems(["severity": "a", "payload.severity": "b"])
        #expect(duplicate.count == 1)
        #expect(duplicate.first?.contains("same path") == true)
    }
}

@Suite("Trigger filters in definitions")
struct TriggerFilterValidationTests {
    @Test("a broken filter is reported at the trigger's filters with its line")
    func brokenFilterReported() throws {
        let yaml = """
            metadata:
              id: filter-check
              name: Filter check
              version: 1.0.0
              author: tests
              description: Checks filters.
            goal:
              type: continuous
              description: Check.
            triggers:
              - type: alert.blackscreen
                priority: high
                filters:
                  severity:
                    exits: true
            """
        #expect {
            _ = try AgentDefinition.parse(yaml: yaml, file: "f.yaml")
        } throws: { error in
            guard let problems = (error as? AgentDefinitionError)?.problems, problems.count == 1, let problem = problems.first else { return false }
            return problem.path == "triggers[0].filters" && problem.line == 14 && problem.message.contains("did you mean 'exists'")
        }
    }
}
