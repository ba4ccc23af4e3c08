import FoundationEssentials
import HTTPTypes
import Hummingbird
import KiteEngine
import NIOCore

/// Every error the HTTP API answers with, mapped to a status in one place. The body is
/// `{"error": {"message", "type", "param", "code"}}`, as OpenAI, vLLM and SGLang answer.
public struct APIError: Error, Sendable, CustomStringConvertible, HTTPResponseError {
    public var status: HTTPResponse.Status
    public var message: String
    /// The request field at fault, when one is (`sampling_params.temperature`).
    public var param: String?

    public init(status: HTTPResponse.Status, message: String, param: String? = nil) {
        self.status = status
        self.message = message
        self.param = param
    }

    public var description: String { "\(status.code) \(message)" }

    /// OpenAI's names for the kinds of error.
    public var type: String {
        switch status.code {
        case 400, 422: "invalid_request_error"
        case 401: "authentication_error"
        case 404: "not_found_error"
        case 405: "method_not_allowed"
        case 413: "request_too_large"
        case 503: "service_unavailable"
        case 500..<600: "internal_error"
        default: "invalid_request_error"
        }
    }

    public var headers: HTTPFields { [:] }

    static func badRequest(_ message: String, param: String? = nil) -> APIError {
        APIError(status: .badRequest, message: message, param: param)
    }

    static func unavailable(_ message: String) -> APIError {
        APIError(status: .serviceUnavailable, message: message)
    }

    /// An engine error: invalid input is the client's fault, a full queue or a stopped engine is 503,
    /// anything else is ours.
    init(_ error: EngineError) {
        switch error {
        case .invalidRequest(let field, _): self.init(status: .badRequest, message: error.description, param: field)
        case .tokenizerRequired: self.init(status: .badRequest, message: error.description)
        case .notFound: self.init(status: .notFound, message: error.description)
        case .overloaded, .shutDown: self.init(status: .serviceUnavailable, message: error.description)
        case .internalFailure: self.init(status: .internalServerError, message: error.description)
        }
    }

    /// A body that is not the JSON expected: names the path of the offending field.
    static func decoding(_ error: DecodingError) -> APIError {
        func path(_ codingPath: [any CodingKey]) -> String {
            var text = ""
            for key in codingPath {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += text.isEmpty ? key.stringValue : "." + key.stringValue
                }
            }
            return text
        }
        switch error {
        case .typeMismatch(let type, let context):
            let field = path(context.codingPath)
            let detail = context.debugDescription.hasPrefix("expected") ? context.debugDescription : "expected \(describe(type))"
            return .badRequest("invalid '\(field.isEmpty ? "body" : field)': \(detail)", param: field.isEmpty ? nil : field)
        case .valueNotFound(let type, let context):
            let field = path(context.codingPath)
            return .badRequest("invalid '\(field)': expected \(describe(type)), found null", param: field)
        case .keyNotFound(let key, let context):
            let field = path(context.codingPath + [key])
            return .badRequest("missing required field '\(field)'", param: field)
        case .dataCorrupted(let context):
            let field = path(context.codingPath)
            if field.isEmpty {
                var detail = context.debugDescription
                if let underlying = context.underlyingError { detail += " (\(underlying))" }
                return .badRequest("the request body is not valid JSON: \(detail)")
            }
            return .badRequest("invalid '\(field)': \(context.debugDescription)", param: field)
        @unknown default:
            return .badRequest("the request body could not be read: \(error)")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int32.Type, is Int64.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        case is [Int].Type: "a list of integers"
        case is [String].Type: "a list of strings"
        default: "a value of type \(type)"
        }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: JSONBody.encode(body)))
        if status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer" }
        return response
    }

    var body: ErrorBody {
        ErrorBody(error: .init(message: message, type: type, param: param, code: Int(status.code)))
    }
}

/// `{"error": {...}}`.
struct ErrorBody: Codable, Sendable {
    struct Detail: Codable, Sendable {
        var message: String
        var type: String
        var param: String?
        var code: Int

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(message, forKey: .message)
            try container.encode(type, forKey: .type)
            try container.encode(param, forKey: .param)
            try container.encode(code, forKey: .code)
        }
    }

    var error: Detail
}

/// Turns whatever a handler or the framework throws into the JSON error shape; errors the API does not
/// know (a bug) are a 500 with the same shape, and the server goes on.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch let error as EngineError {
            return try APIError(error).response(from: request, context: context)
        } catch is NIOTooManyBytesError {
            return try APIError(status: .contentTooLarge, message: "the request body is larger than the limit").response(from: request, context: context)
        } catch let error as HTTPError {
            let message = error.body ?? (error.status == .notFound ? "no route for \(request.method) \(request.uri.path)" : "\(error.status)")
            return try APIError(status: error.status, message: message).response(from: request, context: context)
        } catch let error as any HTTPResponseError {
            return try APIError(status: error.status, message: "\(error)").response(from: request, context: context)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            context.logger.error("unexpected error: \(error)")
            return try APIError(status: .internalServerError, message: "internal error: \(error)").response(from: request, context: context)
        }
    }
}
