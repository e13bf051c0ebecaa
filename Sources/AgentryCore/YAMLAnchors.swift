import Yams

/// Finds YAML anchors (`&name`) and aliases (`*name`), which agent definitions do not accept.
///
/// An alias repeats the node its anchor names, so a few lines of anchors that each repeat the previous one ten times
/// (a "billion laughs") stand for 10⁹ nodes; reading, hashing or validating them would take minutes and gigabytes.
/// The text is scanned for anchors before it is composed (so that nothing is expanded), and the composed tree is
/// checked again, stopping at the first anchored node (an alias resolves to its anchor's node, which carries the
/// anchor), so that whatever the scan misses is refused before any walk of the whole tree.
enum YAMLAnchors {
    /// An anchor or alias, where it starts (1-based line and column, as libyaml reports them).
    struct Found: Equatable {
        var text: String
        var line: Int
        var column: Int
        var isAlias: Bool
    }

    /// The first anchor in `yaml` at a place a node can start, outside comments, quoted scalars and block scalars.
    static func firstAnchor(in yaml: String) -> Found? {
        var quote: Character?  // inside a quoted scalar that may span lines
        var blockIndent: Int?  // inside a block scalar: lines indented more than this belong to it
        var lineNumber = 0
        var flowDepth = 0
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let chars = Array(line)
            let indent = chars.prefix { $0 == " " }.count
            if let block = blockIndent {
                if chars.allSatisfy({ $0 == " " || $0 == "\r" }) || indent > block { continue }
                blockIndent = nil
            }
            var i = 0
            var previous: Character = " "  // the last character that is not a space, or " " at line start
            var afterSpace = true
            while i < chars.count {
                let c = chars[i]
                if let q = quote {
                    if q == "'" && c == "'" {
                        if i + 1 < chars.count, chars[i + 1] == "'" {
                            i += 2
                            continue
                        }
                        quote = nil
                    } else if q == "\"" && c == "\\" {
                        i += 2
                        continue
                    } else if q == "\"" && c == "\"" {
                        quote = nil
                    }
                    i += 1
                    afterSpace = false
                    previous = c
                    continue
                }
                if c == " " || c == "\t" {
                    afterSpace = true
                    i += 1
                    continue
                }
                let nodeStart =
                    previous == " " || ((previous == "-" || previous == "?" || previous == ":") && afterSpace)
                    || (flowDepth > 0 && (previous == "[" || previous == "{" || previous == ","))
                if c == "#" && afterSpace { break }
                if nodeStart && (c == "'" || c == "\"") {
                    quote = c
                } else if nodeStart && (c == "[" || c == "{") {
                    flowDepth += 1
                } else if flowDepth > 0 && (c == "]" || c == "}") {
                    flowDepth -= 1
                } else if nodeStart && c == "&", i + 1 < chars.count, !" \t,[]{}".contains(chars[i + 1]) {
                    // Only anchors are looked for in the text: without one, an alias is the parser's error.
                    let name = String(chars[i...].prefix { !" \t,[]{}".contains($0) })
                    return Found(text: name, line: lineNumber, column: i + 1, isAlias: false)
                } else if nodeStart && flowDepth == 0 && (c == "|" || c == ">") {
                    let rest = chars[(i + 1)...].prefix { $0 != "#" }
                    if rest.allSatisfy({ $0 == " " || $0 == "\r" || $0 == "+" || $0 == "-" || $0.isNumber }) {
                        blockIndent = indent
                        break
                    }
                } else if nodeStart && c == "!" {
                    // A tag: the node starts after it.
                    while i < chars.count, chars[i] != " " { i += 1 }
                    afterSpace = true
                    continue
                }
                previous = c
                afterSpace = false
                i += 1
            }
        }
        return nil
    }

    /// The first node with an anchor (an alias's node carries its anchor), in document order, without walking what
    /// lies beyond it.
    static func firstAnchored(_ node: Node) -> Node? {
        if node.anchor != nil { return node }
        switch node {
        case .scalar, .alias: return nil
        case .sequence(let sequence):
            for item in sequence { if let found = firstAnchored(item) { return found } }
        case .mapping(let mapping):
            for (key, value) in mapping {
                if let found = firstAnchored(key) ?? firstAnchored(value) { return found }
            }
        }
        return nil
    }
}
