import AgentryCore
import Foundation
import Yams

/// What the endpoint serves from files compiled into the binary (Package.swift's `embedInCode` resources), so that it
/// runs from any directory: the status page and this API's OpenAPI document.
enum AdminDocuments {
    /// The status page (Resources/status.html) as one document: its stylesheet and script are put in place of the
    /// `<link>` and `<script src>` that name them, so the page needs no other request.
    static let statusPage: String = {
        let html = String(decoding: PackageResources.status_html, as: UTF8.self)
        let css = String(decoding: PackageResources.status_css, as: UTF8.self)
        let js = String(decoding: PackageResources.status_js, as: UTF8.self)
        let link = "<link rel=\"stylesheet\" href=\"status.css\">\n", script = "<script src=\"status.js\"></script>\n"
        precondition(html.contains(link) && html.contains(script), "status.html must link status.css and status.js")
        return html.replacingOccurrences(of: link, with: "<style>\n\(css)</style>\n")
            .replacingOccurrences(of: script, with: "<script>\n\(js)</script>\n")
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
