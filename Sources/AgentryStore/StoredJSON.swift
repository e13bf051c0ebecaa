import AgentryCore

/// JSON the store keeps in PostgreSQL (`jsonb`, read back as text), read with the project's parser: a value that does
/// not have the shape the store wrote fails the read, saying what it is, instead of standing in as empty.
enum StoredJSON {
    /// A JSON object (an event's payload, a worker's labels).
    static func object(_ text: String, _ what: @autoclosure () -> String) throws -> JSONObject {
        guard case .object(let object) = try value(text, what()) else {
            throw StoreError(.query, "\(what()) is not a JSON object: \(text.prefix(200))")
        }
        return object
    }

    /// A JSON array of strings (an agent's bound patterns).
    static func strings(_ text: String, _ what: @autoclosure () -> String) throws -> [String] {
        guard case .array(let items) = try value(text, what()) else {
            throw StoreError(.query, "\(what()) is not a JSON array: \(text.prefix(200))")
        }
        return try items.map { item in
            guard let string = item.stringValue else { throw StoreError(.query, "\(what()) holds \(item.jsonText), not a string") }
            return string
        }
    }

    /// An array of strings as JSON text, for a `jsonb` parameter.
    static func text(_ strings: [String]) -> String {
        JSON.serialize(.array(strings.map { .string($0) }))
    }

    private static func value(_ text: String, _ what: String) throws -> JSONValue {
        do {
            return try JSON.parse(text)
        } catch {
            throw StoreError(.query, "\(what) is not JSON: \(error)")
        }
    }
}
