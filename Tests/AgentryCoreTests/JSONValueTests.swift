import Foundation
import Testing

@testable import AgentryCore

@Suite("JSONValue")
struct JSONValueTests {
    static let document: JSONValue = [
        "device": ["id": "tv-1", "room": ["floor": 2]],
        "items": [["name": "first"], ["name": "second"]],
        "flag": true,
        "empty": nil,
    ]

    @Test("subscript(path:) follows dotted paths into objects and arrays")
    func pathLookup() {
        let doc = Self.document
        #expect(doc[path: "device.id"] == .string("tv-1"))
        #expect(doc[path: "device.room.floor"] == .int(2))
        #expect(doc[path: "items.0.name"] == .string("first"))
        #expect(doc[path: "items.1.name"] == .string("second"))
        #expect(doc[path: "items.1"] == .object(["name": "second"]))
        #expect(doc[path: "flag"] == .bool(true))
        #expect(doc[path: "empty"] == .null)
    }

    @Test("subscript(path:) is nil where nothing is")
    func pathMissing() {
        let doc = Self.document
        #expect(doc[path: "device.name"] == nil)
        #expect(doc[path: "nothing"] == nil)
        #expect(doc[path: "items.2.name"] == nil)
        #expect(doc[path: "items.-1"] == nil)
        #expect(doc[path: "items.x"] == nil)
        #expect(doc[path: "device.id.more"] == nil)  // into a string
        #expect(doc[path: "flag.x"] == nil)
        #expect(doc[path: "device..id"] == nil)
    }

    private func decode(_ text: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    @Test("decoding keeps integers as integers and fractions as doubles")
    func numberKinds() throws {
        #expect(try decode("1") == .int(1))
        #expect(try decode("-42") == .int(-42))
        #expect(try decode("1.5") == .double(1.5))
        #expect(try decode("-0.25") == .double(-0.25))
        // Beyond 2^53 a detour through Double would lose the last digit.
        #expect(try decode("9007199254740993") == .int(9_007_199_254_740_993))
    }

    @Test("decoding tells booleans, null, strings, arrays and objects apart")
    func otherKinds() throws {
        #expect(try decode("true") == .bool(true))
        #expect(try decode("false") == .bool(false))
        #expect(try decode("null") == .null)
        #expect(try decode("\"1\"") == .string("1"))
        #expect(try decode("[1, \"a\", null]") == .array([.int(1), .string("a"), .null]))
        #expect(try decode("{\"a\": {\"b\": [true]}}") == .object(["a": .object(["b": .array([.bool(true)])])]))
    }

    @Test("jsonText is compact with sorted keys and decodes back")
    func jsonText() throws {
        let value: JSONValue = ["b": 1, "a": ["x", 2.5, false, nil], "c": "é/☕️"]
        #expect(value.jsonText == #"{"a":["x",2.5,false,null],"b":1,"c":"é/☕️"}"#)
        #expect(try decode(value.jsonText) == value)
    }

    @Test("kindName and accessors")
    func accessors() {
        #expect(JSONValue.string("x").stringValue == "x")
        #expect(JSONValue.int(1).stringValue == nil)
        #expect(JSONValue.object(["a": 1]).objectValue == ["a": 1])
        #expect(JSONValue.array([]).objectValue == nil)
        #expect(JSONValue.array([]).kindName == "an array")
        #expect(JSONValue.double(1).kindName == "a number")
    }
}
