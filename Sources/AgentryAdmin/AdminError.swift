import AgentryCore
import AgentryStore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An answer of the admin API that is an error: `{"error": {"code", "message"}}` with its status.
struct AdminError: Error, Sendable {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var extra: JSONObject = [:]
    var headers: HTTPFields = [:]

    static func badRequest(_ message: String) -> AdminError { AdminError(status: .badRequest, code: "bad_request", message: message) }
    static func notFound(_ message: String) -> AdminError { AdminError(status: .notFound, code: "not_found", message: message) }
    static func conflict(_ message: String) -> AdminError { AdminError(status: .conflict, code: "conflict", message: message) }
    static func unavailable(_ message: String) -> AdminError { AdminError(status: .serviceUnavailable, code: "unavailable", message: message) }
    static func internalError(_ message: String) -> AdminError { AdminError(status: .internalServerError, code: "internal", message: message) }
    static func tooLarge(_ limit: Int) -> AdminError {
        AdminError(status: .contentTooLarge, code: "payload_too_large", message: "the request body is larger than the limit of \(limit) bytes")
    }

    var response: Response {
        var error: JSONObject = ["code": .string(code), "message": .string(message)]
        for (key, value) in extra { error[key] = value }
        var response = JSONResponse.make(.object(["error": .object(error)]), status: status)
        for field in headers { response.headers.append(field) }
        return response
    }

    /// The API's view of an error thrown below it.
    static func from(_ error: any Error) -> AdminError {
        switch error {
        case let error as AdminError: return error
        case let error as HTTPError:
            switch error.status {
            case .notFound: return notFound(error.body ?? "no such route")
            case .contentTooLarge: return AdminError(status: .contentTooLarge, code: "payload_too_large", message: error.body ?? "the request body is too large")
            case .methodNotAllowed: return AdminError(status: .methodNotAllowed, code: "method_not_allowed", message: error.body ?? "method not allowed on this path")
            default: return AdminError(status: error.status, code: "http_\(error.status.code)", message: error.body ?? error.status.reasonPhrase)
            }
        case let error as StoreError where error.code == .notFound: return notFound(error.message)
        case let error as StoreError: return unavailable(error.message)
        case let error as RegistryError where error.code == .notFound: return notFound(error.message)
        case let error as RegistryError where error.code == .publishedImmutable: return conflict(error.message)
        case let error as RegistryError where error.code == .invalid:
            return AdminError(status: .unprocessableContent, code: "invalid_agent", message: error.message)
        case let error as RegistryError: return unavailable(error.message)
        default: return internalError("\(error)")
        }
    }
}

enum JSONResponse {
    static func make(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var buffer = ByteBuffer(string: JSON.serialize(value))
        buffer.writeString("\n")
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: buffer))
    }
}
