import AgentryCore
import Foundation
import Yams

/// What the endpoint serves from files compiled into the binary (Package.swift's `embedInCode` resources), so that it
/// runs from any directory: the status page and this API's OpenAPI document.
enum AdminDocuments {
    /// The console's scripts (Resources/console/), in the order status.html loads them: core.js first (the API the
    /// views use), then each view's. SwiftPM embeds a directory as one constant per file but gives no list of them,
    /// so a new view's file gets a line here too.
    static let consoleScripts: [(name: String, bytes: [UInt8])] = [
        ("core.js", PackageResources.core_js),
        ("overview.js", PackageResources.overview_js),
        ("approvals.js", PackageResources.approvals_js),
        ("run-parts.js", PackageResources.run_parts_js),
        ("run.js", PackageResources.run_js),
        ("search.js", PackageResources.search_js),
        ("svgchart.js", PackageResources.svgchart_js),
        ("charts.js", PackageResources.charts_js),
        ("workers.js", PackageResources.workers_js),
        ("dead.js", PackageResources.dead_js),
        ("holds.js", PackageResources.holds_js),
        ("addagent.js", PackageResources.addagent_js),
        ("addcatalog.js", PackageResources.addcatalog_js),
    ]

    /// The status page (Resources/status.html) as one document: its stylesheet and scripts are put in place of the
    /// `<link>` and `<script src>` that name them, so the page needs no other request.
    static let statusPage: String = {
        var html = String(decoding: PackageResources.status_html, as: UTF8.self)
        let css = String(decoding: PackageResources.status_css, as: UTF8.self)
        let link = "<link rel=\"stylesheet\" href=\"status.css\">\n"
        precondition(html.contains(link), "status.html must link status.css")
        html = html.replacingOccurrences(of: link, with: "<style>\n\(css)</style>\n")
        for script in consoleScripts {
            let tag = "<script src=\"console/\(script.name)\"></script>\n"
            precondition(html.contains(tag), "status.html must load console/\(script.name)")
            html = html.replacingOccurrences(of: tag, with: "<script>\n\(String(decoding: script.bytes, as: UTF8.self))</script>\n")
        }
        precondition(!html.contains("<script src="), "status.html loads a script that AdminDocuments.consoleScripts does not list")
        return html
    }()

    /// openapi.yaml, the API's contract, as JSON.
    static let openAPIJSON: String = {
        do {
            guard let root = try Yams.compose(yaml: String(decoding: PackageResources.openapi_yaml, as: UTF8.self)) else {
                preconditionFailure("openapi.yaml is empty")
            }
            return JSON.serialize(try json(root))
        } catch {
            preconditionFailure("openapi.yaml is not YAML: \(error)")
        }
    }()

    /// A YAML node as JSON: scalars by their resolved tag (`null`, booleans, numbers), everything else as strings.
    static func json(_ node: Node) throws -> JSONValue {
        switch node {
        case .scalar(let scalar):
            switch Tag.Name(rawValue: node.tag.rawValue) {
            case .null: return .null
            case .bool: return node.bool.map(JSONValue.bool) ?? .string(scalar.string)
            case .int: return node.int.map { .int(Int64($0)) } ?? .string(scalar.string)
            case .float: return node.float.map(JSONValue.double) ?? .string(scalar.string)
            default: return .string(scalar.string)
            }
        case .mapping(let mapping):
            var object: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard let name = key.string else { throw YamlError.representer(problem: "a mapping key that is not a string: \(key)") }
                object[name] = try json(value)
            }
            return .object(object)
        case .sequence(let sequence):
            return .array(try sequence.map(json))
        case .alias:
            throw YamlError.representer(problem: "an alias (openapi.yaml uses none)")
        }
    }
}
