import Foundation
import Testing

@testable import AgentryCore

@Suite("EventID")
struct EventIDTests {
    /// The character at `offset` of the id's text.
    private func character(_ id: EventID, at offset: Int) -> Character {
        id.rawValue[id.rawValue.index(id.rawValue.startIndex, offsetBy: offset)]
    }

    @Test("generate() gives a lowercase UUIDv7 with the RFC variant")
    func generatedIsUUIDv7() throws {
        let id = EventID.generate()
        let uuid = try #require(id.uuid)
        #expect(id.rawValue == uuid.uuidString.lowercased())
        #expect(id.rawValue.count == 36)
        #expect(character(id, at: 14) == "7")
        #expect("89ab".contains(character(id, at: 19)))
    }

    @Test("UUID.version7() (run ids) shares the generator: version 7, RFC variant, ordered with event ids")
    func runIDsAreUUIDv7() {
        let first = EventID.generate()
        let run = EventID(uuid: UUID.version7())
        let last = EventID.generate()
        #expect(character(run, at: 14) == "7")
        #expect("89ab".contains(character(run, at: 19)))
        #expect(first < run && run < last)
    }

    @Test("generate() puts the current Unix milliseconds in the first 48 bits")
    func generatedCarriesTime() throws {
        let before = UInt64(Date().timeIntervalSince1970 * 1000)
        let id = EventID.generate()
        let after = UInt64(Date().timeIntervalSince1970 * 1000)
        let hex = id.rawValue.replacingOccurrences(of: "-", with: "").prefix(12)
        let millis = try #require(UInt64(hex, radix: 16))
        // The generator may borrow a few milliseconds ahead when many ids are made at once.
        #expect(millis >= before)
        #expect(millis <= after + 1000)
    }

    @Test("10,000 generated ids are unique and increase in the order they were made")
    func generatedAreMonotonic() {
        let ids = (0..<10_000).map { _ in EventID.generate() }
        #expect(Set(ids).count == ids.count)
        var outOfOrder = 0
        for i in 1..<ids.count where !(ids[i - 1].rawValue < ids[i].rawValue) {
            outOfOrder += 1
        }
        #expect(outOfOrder == 0)
        #expect(ids.sorted() == ids)
    }

    @Test("init accepts 1…255 bytes")
    func lengthLimits() {
        #expect(EventID("") == nil)
        #expect(EventID(String(repeating: "x", count: 256)) == nil)
        #expect(EventID(String(repeating: "x", count: 255))?.rawValue == String(repeating: "x", count: 255))
        #expect(EventID("m-1")?.rawValue == "m-1")
        // The limit counts UTF-8 bytes, not characters: 128 × "é" is 256 bytes.
        #expect(EventID(String(repeating: "é", count: 128)) == nil)
        #expect(EventID(String(repeating: "é", count: 127)) != nil)
    }

    @Test("a non-UUID id has no uuid")
    func nonUUID() {
        #expect(EventID("evt_1")?.uuid == nil)
    }

    @Test("derived(from:) is deterministic")
    func derivedDeterministic() {
        let parts: [[UInt8]] = [Array("alert.blackscreen".utf8), Array("{\"device_id\":\"tv-1\"}".utf8), Array("0".utf8)]
        #expect(EventID.derived(from: parts) == EventID.derived(from: parts))
    }

    @Test("derived(from:) changes when any part changes")
    func derivedDiffers() {
        let parts: [[UInt8]] = [Array("alert.blackscreen".utf8), Array("{\"device_id\":\"tv-1\"}".utf8), Array("0".utf8)]
        let base = EventID.derived(from: parts)
        for index in parts.indices {
            var changed = parts
            changed[index].append(UInt8(ascii: "x"))
            #expect(EventID.derived(from: changed) != base, "changing part \(index) must change the id")
            var flipped = parts
            flipped[index][0] ^= 1
            #expect(EventID.derived(from: flipped) != base, "changing a byte of part \(index) must change the id")
        }
        #expect(EventID.derived(from: parts + [[]]) != base, "an extra empty part must change the id")
    }

    @Test("derived(from:) keeps part boundaries: [ab, c] ≠ [a, bc]")
    func derivedSeparatesParts() {
        let a = EventID.derived(from: [Array("ab".utf8), Array("c".utf8)])
        let b = EventID.derived(from: [Array("a".utf8), Array("bc".utf8)])
        #expect(a != b)
    }

    @Test("derived(from:) gives a UUID version 8 with the RFC variant")
    func derivedIsUUIDv8() throws {
        let id = EventID.derived(from: [Array("t.x".utf8), Array("{}".utf8)])
        _ = try #require(id.uuid)
        #expect(id.rawValue == id.rawValue.lowercased())
        #expect(character(id, at: 14) == "8")
        #expect("89ab".contains(character(id, at: 19)))
    }

    @Test("Codable writes the raw string and refuses an empty id")
    func codable() throws {
        let id = try #require(EventID("evt_1"))
        let data = try JSONEncoder().encode([id])
        #expect(String(decoding: data, as: UTF8.self) == "[\"evt_1\"]")
        #expect(try JSONDecoder().decode([EventID].self, from: data) == [id])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([EventID].self, from: Data("[\"\"]".utf8)) }
    }
}
