import AgentryCore
public import Foundation
import PostgresNIO

/// Where a listing of events or runs goes on: the keyset (time, id) of the last row of the page before. Listings are
/// newest first and the next page holds the rows strictly before it in that order, so a page costs the same at any
/// depth (an offset would read and throw away every row above it), and rows written between two pages neither repeat
/// nor push others off a page.
///
/// Its token is opaque to clients: base64url (no padding) of a kind byte (`e` events, `r` runs), the time in
/// microseconds since 1970 (8 bytes, big-endian; PostgreSQL keeps microseconds) and the row's UUID (16 bytes).
public struct SearchCursor: Sendable, Hashable {
    public enum Kind: UInt8, Sendable {
        case events = 0x65
        case runs = 0x72

        var name: String { self == .events ? "events" : "runs" }
    }

    public var kind: Kind
    /// Microseconds since 1970, as PostgreSQL keeps the row's time.
    public var micros: Int64
    public var id: UUID

    public init(kind: Kind, micros: Int64, id: UUID) {
        self.kind = kind
        self.micros = micros
        self.id = id
    }

    /// The cursor after a row with this time and id. A `Date` read from PostgreSQL holds its microseconds within
    /// a fraction of one (a double's precision), so rounding gives them back exactly.
    public init(kind: Kind, time: Date, id: UUID) {
        self.init(kind: kind, micros: Int64((time.timeIntervalSince1970 * 1_000_000).rounded()), id: id)
    }

    /// Reads a token this server gave for listings of `kind`.
    /// - Throws: ``Problem`` saying what is wrong with it.
    public init(token: String, kind: Kind) throws(Problem) {
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard token.count == 34, let data = Data(base64Encoded: base64), data.count == 25 else {
            throw Problem("cursor '\(token.prefix(80))' is not a cursor this server gave: pass the next_cursor of the page before, unchanged")
        }
        let bytes = [UInt8](data)
        guard let found = Kind(rawValue: bytes[0]) else {
            throw Problem("cursor '\(token.prefix(80))' is not a cursor this server gave: pass the next_cursor of the page before, unchanged")
        }
        guard found == kind else { throw Problem("cursor '\(token)' pages through \(found.name), not \(kind.name)") }
        let micros = bytes[1..<9].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let u = Array(bytes[9..<25])
        self.init(
            kind: kind, micros: Int64(bitPattern: micros),
            id: UUID(uuid: (u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15])))
    }

    /// The opaque token clients pass back.
    public var token: String {
        var bytes: [UInt8] = [kind.rawValue]
        let value = UInt64(bitPattern: micros)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
        withUnsafeBytes(of: id.uuid) { bytes.append(contentsOf: $0) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Why a token cannot be read.
    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}

/// One page of a listing and the cursor to the next (nil on the last page).
public struct SearchPage<Item: Sendable>: Sendable {
    public var items: [Item]
    public var next: SearchCursor?
}

/// Which event types a search keeps: one type, or a topic pattern as in triggers and bindings (`*` one word, `#`
/// zero or more words: `alert.*`, `agent.task.#`).
public enum TypeMatch: Sendable, Hashable {
    case exact(String)
    case pattern(String)

    /// A type, or a pattern when it has a `*` or `#` word. Returns what is wrong with it otherwise.
    public static func parse(_ text: String) -> Result<TypeMatch, SearchCursor.Problem> {
        let words = text.split(separator: ".", omittingEmptySubsequences: false)
        if words.contains(where: { $0 == "*" || $0 == "#" }) {
            if let problem = EventType.patternProblem(with: text) { return .failure(.init(problem)) }
            return .success(.pattern(text))
        }
        if let problem = EventType.problem(with: text) { return .failure(.init(problem)) }
        return .success(.exact(text))
    }
}

/// A search's SQL: its conditions and their bound values, numbered as they are added.
struct SearchSQL {
    var conditions: [String] = []
    var bindings = PostgresBindings()
    private var count = 0

    /// Binds `value` and returns its placeholder (`$3`).
    mutating func bind(_ value: some PostgresNonThrowingEncodable) -> String {
        bindings.append(value)
        count += 1
        return "$\(count)"
    }

    var whereClause: String { conditions.isEmpty ? "true" : conditions.joined(separator: " AND ") }

    /// The condition under which the event log's trigram index (migration 0030) holds a row: a text search without
    /// a type adds it, so that it reads the index; Agentry's own agent.* events are left out of it.
    static let textIndexed = "event_type NOT LIKE 'agent.%'"

    /// `text` as a case-insensitive substring pattern for ILIKE: its `%`, `_` and `\` match themselves.
    static func substring(_ text: String) -> String {
        var escaped = ""
        for character in text {
            if character == "%" || character == "_" || character == "\\" { escaped.append("\\") }
            escaped.append(character)
        }
        return "%" + escaped + "%"
    }

    /// The keyset condition for rows after `cursor`, newest first, over `time` and `id`.
    /// What a search reads from `table` (the event log, or the runs), narrowed to `types` when given, `order` being
    /// its ORDER BY and LIMIT: one type through its (type, time, id) index; up to ``mergedTypes`` types, a page of
    /// each through that index, merged in order (`event_type = ANY(...)` would sort every row of those types, as
    /// PostgreSQL 15 does not read it in order, and a join with the list of types is planned without knowing them,
    /// so it reads the table in time order instead); more types, `ANY`. Call it after every other condition.
    mutating func source(_ table: String, types: [String]?, order: String) -> String {
        guard let types, types.count > 1 else {
            if let type = types?.first { conditions.append("event_type = \(bind(type))") }
            return "\(table) WHERE \(whereClause)"
        }
        guard types.count <= Self.mergedTypes else {
            conditions.append("event_type = ANY(\(bind(types))::text[])")
            return "\(table) WHERE \(whereClause)"
        }
        let conditions = whereClause
        var branches: [String] = []
        for type in types { branches.append("(SELECT * FROM \(table) WHERE event_type = \(bind(type)) AND \(conditions) \(order))") }
        return "(\(branches.joined(separator: " UNION ALL "))) AS \(table)"
    }

    mutating func after(_ cursor: SearchCursor?, time: String, id: String) {
        guard let cursor else { return }
        let micros = bind(cursor.micros)
        let uuid = bind(cursor.id)
        conditions.append("(\(time), \(id)) < (timestamptz 'epoch' + \(micros)::int8 * interval '1 microsecond', \(uuid)::uuid)")
    }

    /// The distinct values of a column, read through an index that leads with it (one probe per value; a
    /// `SELECT DISTINCT` would read every row).
    static func distinct(_ column: String, in table: String) -> PostgresQuery {
        PostgresQuery(
            unsafeSQL: """
                WITH RECURSIVE v(value) AS (
                    (SELECT \(column) FROM \(table) ORDER BY \(column) LIMIT 1)
                    UNION ALL
                    SELECT (SELECT \(column) FROM \(table) WHERE \(column) > v.value ORDER BY \(column) LIMIT 1) FROM v WHERE v.value IS NOT NULL
                )
                SELECT value FROM v WHERE value IS NOT NULL
                """)
    }

    /// The most types a pattern's search reads one by one (each through its (type, time, id) index, merged); a
    /// pattern that matches more reads them all at once.
    static let mergedTypes = 64
}
