import HTTPTypes
import Hummingbird

/// `--api-key`: every route, the health checks and weight, memory and abort controls included, needs
/// `Authorization: Bearer <key>` (or `X-API-Key: <key>`). Compared in constant time.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: [UInt8]

    init(key: String) {
        self.key = Array(key.utf8)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard authorized(request.headers) else {
            throw APIError(status: .unauthorized, message: "missing or wrong API key: send 'Authorization: Bearer <key>'")
        }
        return try await next(request, context)
    }

    func authorized(_ headers: HTTPFields) -> Bool {
        if let value = headers[.authorization] {
            let parts = value.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer", equal(Array(parts[1].utf8)) { return true }
        }
        if let name = HTTPField.Name("X-API-Key"), let value = headers[name], equal(Array(value.utf8)) { return true }
        return false
    }

    private func equal(_ candidate: [UInt8]) -> Bool {
        guard !key.isEmpty else { return false }
        var difference = UInt8(truncatingIfNeeded: candidate.count ^ key.count)
        for index in 0..<candidate.count {
            difference |= candidate[index] ^ key[index % key.count]
        }
        return difference == 0
    }
}
