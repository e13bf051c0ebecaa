import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OpenAPIRuntime

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
        // A handler's error, or one in turning its answer into a response.
        case let error as ServerError where error.operationInput != nil: return from(error.underlyingError)
        // The request does not match the contract (openapi.yaml): a parameter, the body, or its content type.
        case let error as ServerError: return contractViolation(error)
        case let error as HTTPError:
            switch error.status {
            case .notFound: return notFound(error.body ?? "no such route")
            case .contentTooLarge:
                return AdminError(status: .contentTooLarge, code: "payload_too_large", message: error.body ?? "the request body is too large")
            case .methodNotAllowed:
                return AdminError(status: .methodNotAllowed, code: "method_not_allowed", message: error.body ?? "method not allowed on this path")
            default: return AdminError(status: error.status, code: "http_\(error.status.code)", message: error.body ?? error.status.reasonPhrase)
            }
        case let error as StoreError where error.code == .notFound: return notFound(error.message)
        case let error as StoreError where error.code == .conflict: return conflict(error.message)
        case let error as StoreError: return unavailable(error.message)
        case let error as RegistryError where error.code == .notFound: return notFound(error.message)
        case let error as RegistryError where error.code == .publishedImmutable || error.code == .conflict: return conflict(error.message)
        case let error as RegistryError where error.code == .invalid:
            return AdminError(status: .unprocessableContent, code: "invalid_agent", message: error.message)
        case let error as RegistryError: return unavailable(error.message)
        case let error as ApprovalControl.Refusal:
            switch error {
            case .notFound: return notFound(error.description)
            case .decided: return conflict(error.description)
            }
        default: return internalError("\(error)")
        }
    }
}

extension AdminError {
    /// The answer to a request that the generated code refused before any handler ran, naming what does not match.
    static func contractViolation(_ error: ServerError) -> AdminError {
        let code: String
        switch error.httpStatus {
        case .badRequest: code = "bad_request"
        case .unsupportedMediaType: code = "unsupported_media_type"
        case .notAcceptable: code = "not_acceptable"
        default: code = "http_\(error.httpStatus.code)"
        }
        guard let decoding = error.underlyingError as? DecodingError else {
            // A required body that is missing says so in the runtime's words; ours name the fix.
            let missingBody = AdminRequest.current.body.readableBytes == 0 && error.causeDescription.lowercased().contains("request body")
            return AdminError(
                status: error.httpStatus, code: code,
                message: missingBody ? "the request body is empty: send a JSON object" : error.causeDescription)
        }
        let message: String
        switch decoding {
        case .keyNotFound(let key, let context):
            message = "'\(name(context.codingPath + [key]))' is required"
        case .typeMismatch(_, let context) where !context.codingPath.isEmpty, .valueNotFound(_, let context) where !context.codingPath.isEmpty,
            .dataCorrupted(let context) where !context.codingPath.isEmpty:
            message = "'\(name(context.codingPath))': \(context.debugDescription)"
        default:
            // The body as a whole, or a query parameter (the decoder names neither): what our parser says of the body
            // tells which.
            let body = AdminRequest.current.body
            if body.readableBytes > 0 {
                do {
                    let value = try JSON.parse(Array(buffer: body))
                    if value.objectValue == nil {
                        message = "the request body must be a JSON object, not \(value.kindName)"
                        break
                    }
                } catch {
                    message = "the request body is not JSON: \(error)"
                    break
                }
            }
            let query = error.request.path.flatMap { $0.split(separator: "?", maxSplits: 1).dropFirst().first } ?? ""
            message =
                body.readableBytes > 0
                ? "a field of the request body\(query.isEmpty ? "" : " or a query parameter") is not what the API takes: \(detail(decoding))"
                : "a query parameter is not what the API takes (?\(query)): \(detail(decoding))"
        }
        return AdminError(status: error.httpStatus, code: code, message: message)
    }

    private static func detail(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context), .dataCorrupted(let context):
            return context.underlyingError.map { "\($0)" } ?? context.debugDescription
        @unknown default:
            return "\(error)"
        }
    }

    /// A body field's dotted path (`payload`, `ids.0`).
    private static func name(_ path: [any CodingKey]) -> String {
        path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }
}

enum JSONResponse {
    static func make(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var buffer = ByteBuffer(string: JSON.serialize(value))
        buffer.writeString("\n")
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: buffer))
    }
}
