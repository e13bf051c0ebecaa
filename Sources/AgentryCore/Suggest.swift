import Foundation

/// "Did you mean" for unknown keys and values.
enum Suggest {
    /// The known word closest to `word`: the same word ignoring case, a known word that `word` begins, an edit
    /// distance of at most 2 (transpositions count 1), or a shared beginning of at least 4 characters.
    static func closest(to word: String, among known: [String]) -> String? {
        let lower = word.lowercased()
        if lower.isEmpty { return nil }
        // The same word in another case; a word the typed one begins (`max_parallel` → `max_parallel_tasks`).
        if let same = known.first(where: { $0.lowercased() == lower }) { return same }
        if lower.count >= 3, let longer = known.first(where: { $0.lowercased().hasPrefix(lower) }) { return longer }
        // A typo: an edit distance of at most 2 that leaves something of the word.
        let scored = known.map { ($0, distance(lower, $0.lowercased())) }
        if let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2, best.1 < lower.count, best.1 < best.0.count {
            return best.0
        }
        // A long shared beginning (`timeout` → `timeout_seconds`, `approval_for` → `approval_required_for`).
        let prefixed = known.map { ($0, commonPrefix(lower, $0.lowercased())) }
        if let best = prefixed.max(by: { $0.1 < $1.1 }), best.1 >= 4 { return best.0 }
        return nil
    }

    static func didYouMean(_ word: String, among known: [String]) -> String? {
        closest(to: word, among: known).map { "did you mean '\($0)'?" }
    }

    /// Optimal string alignment distance.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }

    static func commonPrefix(_ a: String, _ b: String) -> Int {
        zip(a, b).prefix(while: { $0 == $1 }).count
    }
}
