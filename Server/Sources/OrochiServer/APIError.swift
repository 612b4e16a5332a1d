import Foundation
import Hummingbird
import Orochi

/// An error answered as OpenAI answers it: `{"error": {"message", "type", "param", "code"}}`
/// with the HTTP status.
public struct APIError: Error, CustomStringConvertible, Equatable {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?
    /// Seconds, for 429.
    public var retryAfter: Int?

    public var description: String { "\(status.code) \(message)" }

    public init(_ status: HTTPResponse.Status, _ message: String, type: String? = nil, param: String? = nil,
                code: String? = nil, retryAfter: Int? = nil) {
        self.status = status
        self.message = message
        self.type = type ?? APIError.defaultType(status)
        self.param = param
        self.code = code
        self.retryAfter = retryAfter
    }

    static func defaultType(_ status: HTTPResponse.Status) -> String {
        switch status.code {
        case 401: return "authentication_error"
        case 429: return "rate_limit_error"
        case 503: return "service_unavailable"
        case 500...: return "server_error"
        default: return "invalid_request_error"
        }
    }

    /// A request field that is missing, of the wrong type or out of range.
    static func field(_ name: String, _ message: String) -> APIError {
        APIError(.badRequest, message, param: name, code: "invalid_value")
    }

    public var json: JSON {
        .object([("error", .object([
            ("message", .string(message)),
            ("type", .string(type)),
            ("param", param.map(JSON.string) ?? .null),
            ("code", code.map(JSON.string) ?? .null),
        ]))])
    }

    public var response: Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json.serialized() + "\n")))
    }

    /// The engine's refusals, as HTTP errors.
    static func from(_ error: EngineError) -> APIError {
        switch error {
        case .queueFull:
            return APIError(.tooManyRequests, error.description + "; retry later", code: "queue_full", retryAfter: 1)
        case .shuttingDown:
            return APIError(.serviceUnavailable, error.description, code: "shutting_down")
        case .promptTooLong:
            return APIError(.badRequest, error.description, param: "prompt", code: "context_length_exceeded")
        case .emptyPrompt:
            return APIError(.badRequest, error.description, param: "prompt", code: "invalid_value")
        case .badRequest:
            return APIError(.badRequest, error.description, code: "invalid_value")
        }
    }
}
