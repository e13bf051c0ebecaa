import Foundation
import Testing

@testable import AgentryCore

@Suite("JSON reader and writer")
struct JSONParserTests {
    @Test(
        "valid documents read as the values they denote",
        arguments: [
            (#"{"a": 1, "b": [true, false, null], "c": {"d": "e"}}"#, JSONValue.object(["a": 1, "b": [true, false, nil], "c": ["d": "e"]])),
            ("  [ ]  ", .array([])),
            ("{}", .object([:])),
            ("0", .int(0)),
            ("-12", .int(-12)),
            ("9223372036854775807", .int(Int64.max)),
            ("9223372036854775808", .double(9_223_372_036_854_775_808)),
            ("1.5", .double(1.5)),
            ("1e3", .double(1000)),
            ("-0.25E-2", .double(-0.0025)),
            (#""tab\there""#, .string("tab\there")),
            (#""\"\\\/\b\f\n\r\t""#, .string("\"\\/\u{08}\u{0C}\n\r\t")),
            (#""\u00e9\u4e2d""#, .string("é中")),
            (#""\ud83d\ude00""#, .string("😀")),
            ("\"héllo 世界\"", .string("héllo 世界")),
            (#"{"k": 1, "k": 2}"#, .object(["k": 2])),
        ])
    func valid(text: String, expected: JSONValue) throws {
        #expect(try JSON.parse(text) == expected)
    }

    @Test(
        "invalid documents are refused with what is wrong and where",
        arguments: [
            ("", "unexpected end of input"),
            ("not json", "invalid literal (expected null)"),
            ("hello", "unexpected character 'h'"),
            ("{\"a\" 1}", "expected ':'"),
            ("{\"a\": 1,}", "expected a string key"),
            ("[1, 2", "unexpected end of input in an array"),
            ("[1 2]", "expected ',' or ']'"),
            ("01", "leading zero"),
            ("1.", "expected a digit after '.'"),
            ("-", "expected a digit"),
            ("1e", "expected a digit in the exponent"),
            ("\"abc", "unterminated string"),
            ("\"a\u{01}b\"", "control character"),
            (#""\x""#, "invalid escape"),
            (#""\ud83d""#, "unpaired surrogate"),
            (#""\u12G4""#, "invalid hex digit"),
            ("tru", "invalid literal"),
            ("{} {}", "unexpected text after the JSON value"),
            ("NaN", "unexpected character 'N'"),
        ])
    func invalid(text: String, fragment: String) {
        #expect {
            _ = try JSON.parse(text)
        } throws: { error in
            "\(error)".contains(fragment) && "\(error)".contains("at byte")
        }
    }

    @Test("nesting deeper than the limit is refused, not a crash")
    func depthLimit() {
        let deep = String(repeating: "[", count: JSON.maxDepth + 1) + String(repeating: "]", count: JSON.maxDepth + 1)
        #expect(throws: JSON.SyntaxError.self) { try JSON.parse(deep) }
        let fine = String(repeating: "[", count: JSON.maxDepth) + String(repeating: "]", count: JSON.maxDepth)
        #expect(throws: Never.self) { try JSON.parse(fine) }
    }

    @Test("writing sorts keys, escapes what must be escaped, and reads back equal")
    func writeAndReadBack() throws {
        let value: JSONValue = [
            "z": 1, "a": ["quote\"back\\slash", "new\nline", "ctl\u{01}", "\"lead", "trail\\", "\n\t\u{1f}", "", "é😀"], "m": 1.5, "n": nil, "t": true,
            "d": 2.0,
        ]
        let text = JSON.serialize(value)
        #expect(text.hasPrefix(#"{"a":["#))
        #expect(text.contains(#""quote\"back\\slash""#))
        #expect(text.contains(#""ctl\u0001""#))
        #expect(text.contains(#""\"lead","trail\\","\n\t\u001f","","#), "escapes first, last, back to back; the empty string")
        #expect(text.contains(#""d":2.0"#), "a whole double stays a double")
        #expect(try JSON.parse(text) == value)
        #expect(JSON.serialize(try JSON.parse(text)) == text)
        // Foundation's parser reads the same strings and numbers from it.
        let foundation = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        #expect((foundation?["a"] as? [String])?.last == "é😀")
        #expect(foundation?["m"] as? Double == 1.5)
    }

    @Test("the indented form reads back as the same value, keys sorted, two spaces per level")
    func pretty() throws {
        let value: JSONValue = .object(["b": .array([.int(1), .object([:]), .array([])]), "a": .object(["x": .string("y\n")]), "c": .null])
        let text = JSON.serializePretty(value)
        #expect(try JSON.parse(text) == value)
        #expect(text == "{\n  \"a\": {\n    \"x\": \"y\\n\"\n  },\n  \"b\": [\n    1,\n    {},\n    []\n  ],\n  \"c\": null\n}")
    }
}
