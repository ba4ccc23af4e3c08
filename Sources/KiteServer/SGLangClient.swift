import AsyncHTTPClient
import FoundationEssentials
import NIOCore
import NIOHTTP1

/// Why a call to an SGLang-compatible server failed.
public enum SGLangClientError: Error, CustomStringConvertible, Sendable {
    /// The server answered with an error status; `message` is its error message when it sent one.
    case status(code: Int, message: String)
    /// The server could not be reached, or the connection broke before the answer was complete.
    case connection(String)
    /// The answer was not the JSON expected.
    case malformed(String)

    public var description: String {
        switch self {
        case .status(let code, let message): "HTTP \(code): \(message)"
        case .connection(let detail): "connection failed: \(detail)"
        case .malformed(let detail): "malformed answer: \(detail)"
        }
    }

    /// Whether another worker may succeed where this one failed (the worker is down or overloaded).
    public var isRetryable: Bool {
        switch self {
        case .connection: true
        case .status(let code, _): code == 502 || code == 503 || code == 504
        case .malformed: false
        }
    }
}

/// A client of SGLang's native HTTP API (a `kite serve` engine, a `kite router`, or SGLang itself), for the
/// router, `kite bench serve` and a rollout manager whose engines live in other processes.
public struct SGLangClient: Sendable {
    public let baseURL: String
    public let apiKey: String?
    public let httpClient: HTTPClient
    /// Longest wait for a whole answer (a long generation included).
    public var timeout: TimeAmount

    public init(baseURL: String, apiKey: String? = nil, httpClient: HTTPClient = .shared, timeout: TimeAmount = .hours(4)) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.httpClient = httpClient
        self.timeout = timeout
    }

    /// An HTTP client that keeps up to `maxConnections` connections per server (AsyncHTTPClient's default
    /// of 8 would serialise a concurrent load). Shut it down with `shutdown()` when done.
    ///
    /// `retryConnectionEstablishment: false` fails a request at once when its server cannot be reached
    /// (a router then tries another worker; with retries the pool backs off for up to a minute, and a worker
    /// that came back would look dead for that long).
    public static func makeHTTPClient(maxConnections: Int = 1024, connectTimeout: TimeAmount = .seconds(10), retryConnectionEstablishment: Bool = true) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnections)
        configuration.connectionPool.retryConnectionEstablishment = retryConnectionEstablishment
        configuration.timeout = .init(connect: connectTimeout)
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    // MARK: Generation

    /// `/generate`, not streamed: one answer per sample (a single prompt with `n` 1 gives one).
    public func generate(_ body: GenerateRequestBody) async throws -> [GenerateResponseBody] {
        var request = body
        request.stream = false
        let answer = try await send(.POST, "/generate", body: JSONBody.encode(request))
        do {
            let data = Data(answer.readableBytesView)
            if answer.readableBytesView.first == UInt8(ascii: "[") {
                return try JSONDecoder().decode([GenerateResponseBody].self, from: data)
            }
            return [try JSONDecoder().decode(GenerateResponseBody.self, from: data)]
        } catch {
            throw SGLangClientError.malformed("\(error)")
        }
    }

    /// `/generate` streamed: every chunk as it arrives.
    public func generateStream(_ body: GenerateRequestBody) -> AsyncThrowingStream<GenerateResponseBody, any Error> {
        var request = body
        request.stream = true
        let buffer = JSONBody.encode(request)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await event in try await events(.POST, "/generate", body: buffer) {
                        continuation.yield(try JSONDecoder().decode(GenerateResponseBody.self, from: Data(event.utf8)))
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    // MARK: Control

    public func abort(rid: String) async throws {
        _ = try await send(.POST, "/abort_request", body: JSONBody.encode(AbortRequestBody(rid: rid)))
    }

    public func abortAll() async throws {
        _ = try await send(.POST, "/abort_request", body: JSONBody.encode(AbortRequestBody(abortAll: true)))
    }

    /// `/health`: true on 200 within `timeout`.
    public func health(timeout: TimeAmount = .seconds(5)) async -> Bool {
        (try? await send(.GET, "/health", timeout: timeout)) != nil
    }

    /// `/health_generate`: the engine generated a token within `timeout`.
    public func healthGenerate(timeout: TimeAmount = .seconds(30)) async -> Bool {
        (try? await send(.GET, "/health_generate", timeout: timeout)) != nil
    }

    public func updateWeightsFromDisk(modelPath: String, weightVersion: String? = nil) async throws -> String? {
        let answer = try await send(.POST, "/update_weights_from_disk", body: JSONBody.encode(UpdateWeightsFromDiskBody(modelPath: modelPath, weightVersion: weightVersion)))
        return try? JSONDecoder().decode(SuccessBody.self, from: Data(answer.readableBytesView)).weightVersion
    }

    public func flushCache() async throws {
        _ = try await send(.POST, "/flush_cache")
    }

    public func modelInfo() async throws -> ModelInfoBody {
        try decode(ModelInfoBody.self, try await send(.GET, "/get_model_info"))
    }

    public func serverInfo() async throws -> ServerInfoBody {
        try decode(ServerInfoBody.self, try await send(.GET, "/get_server_info"))
    }

    public func loads() async throws -> LoadsBody {
        try decode(LoadsBody.self, try await send(.GET, "/v1/loads"))
    }

    // MARK: Transport

    /// One call with a whole answer; a non-2xx status throws with the server's error message.
    public func send(_ method: HTTPMethod, _ path: String, body: ByteBuffer? = nil, timeout: TimeAmount? = nil) async throws -> ByteBuffer {
        let response = try await execute(method, path, body: body, timeout: timeout)
        let answer: ByteBuffer
        do {
            answer = try await response.body.collect(upTo: 1 << 30)
        } catch {
            throw SGLangClientError.connection("\(error)")
        }
        guard (200..<300).contains(response.status.code) else {
            throw SGLangClientError.status(code: Int(response.status.code), message: Self.errorMessage(answer))
        }
        return answer
    }

    /// The response head and its body still to be read (the router passes bodies through as they come).
    public func execute(_ method: HTTPMethod, _ path: String, body: ByteBuffer? = nil, headers: HTTPHeaders = [:], timeout: TimeAmount? = nil) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers = headers
        if let apiKey { request.headers.replaceOrAdd(name: "Authorization", value: "Bearer \(apiKey)") }
        if let body {
            request.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
            request.body = .bytes(body)
        }
        do {
            return try await httpClient.execute(request, timeout: timeout ?? self.timeout)
        } catch {
            throw SGLangClientError.connection("\(baseURL): \(error)")
        }
    }

    /// The `data:` payloads of a server-sent event stream, up to `[DONE]`; an `{"error": ...}` event throws.
    func events(_ method: HTTPMethod, _ path: String, body: ByteBuffer) async throws -> AsyncThrowingStream<String, any Error> {
        let response = try await execute(method, path, body: body)
        guard response.status.code == 200 else {
            let answer = (try? await response.body.collect(upTo: 1 << 24)) ?? ByteBuffer()
            throw SGLangClientError.status(code: Int(response.status.code), message: Self.errorMessage(answer))
        }
        return AsyncThrowingStream { continuation in
            let task = Task {
                var parser = ServerSentEventParser()
                do {
                    for try await buffer in response.body {
                        for payload in parser.push(buffer) {
                            if payload == "[DONE]" {
                                continuation.finish()
                                return
                            }
                            if payload.hasPrefix(#"{"error""#) {
                                continuation.finish(throwing: SGLangClientError.status(code: 500, message: Self.errorMessage(ByteBuffer(string: payload))))
                                return
                            }
                            continuation.yield(payload)
                        }
                    }
                    continuation.finish(throwing: SGLangClientError.connection("the stream ended before [DONE]"))
                } catch {
                    continuation.finish(throwing: SGLangClientError.connection("\(error)"))
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private func decode<T: Decodable>(_ type: T.Type, _ buffer: ByteBuffer) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(buffer.readableBytesView))
        } catch {
            throw SGLangClientError.malformed("\(error)")
        }
    }

    static func errorMessage(_ buffer: ByteBuffer) -> String {
        if let body = try? JSONDecoder().decode(ErrorBody.self, from: Data(buffer.readableBytesView)) { return body.error.message }
        return String(buffer: buffer)
    }
}

/// Splits a byte stream into server-sent events' `data:` payloads.
struct ServerSentEventParser {
    private var pending: [UInt8] = []

    mutating func push(_ buffer: ByteBuffer) -> [String] {
        pending.append(contentsOf: buffer.readableBytesView)
        var payloads: [String] = []
        var start = 0
        var index = 0
        while index + 1 < pending.count {
            if pending[index] == UInt8(ascii: "\n") && pending[index + 1] == UInt8(ascii: "\n") {
                let event = String(decoding: pending[start..<index], as: UTF8.self)
                for line in event.split(separator: "\n") where line.hasPrefix("data:") {
                    payloads.append(String(line.dropFirst(5).drop { $0 == " " }))
                }
                index += 2
                start = index
            } else {
                index += 1
            }
        }
        pending.removeFirst(start)
        return payloads
    }
}
