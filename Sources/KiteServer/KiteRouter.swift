import AsyncHTTPClient
import FoundationEssentials
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import UnixSignals

/// `kite router`: one address in front of several `kite serve` engines (or SGLang servers), with SGLang
/// router's API. Generation requests go to one worker (least outstanding, prefix affinity) and are retried
/// on another when their worker is down; control requests (abort, flush, weights, memory) go to all.
public enum KiteRouter {
    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        public var port = 30000
        /// Key that clients of the router must send (every route).
        public var apiKey: String?
        public var maxRequestBodyBytes = 32 << 20

        public init() {}
    }

    public static func makeRouter(pool: WorkerPool, configuration: Configuration) -> Router<KiteRequestContext> {
        let router = Router(context: KiteRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        if let key = configuration.apiKey { router.add(middleware: APIKeyMiddleware(key: key)) }
        let handlers = RouterHandlers(pool: pool, maxBodyBytes: configuration.maxRequestBodyBytes)
        for path in ["/generate", "/v1/completions", "/v1/chat/completions"] {
            router.post(RouterPath(path)) { request, context in try await handlers.proxy(request, path: path) }
        }
        for path in ["/get_model_info", "/model_info", "/get_server_info", "/server_info", "/v1/models", "/health_generate"] {
            router.get(RouterPath(path)) { request, context in try await handlers.forwardToOne(.GET, path) }
        }
        for path in ["/abort_request", "/flush_cache", "/update_weights_from_disk", "/release_memory_occupation", "/resume_memory_occupation"] {
            router.post(RouterPath(path)) { request, context in try await handlers.broadcast(request, path: path) }
        }
        router.get("/health") { _, _ in
            guard !pool.healthyWorkers.isEmpty else { throw APIError.unavailable("no healthy worker") }
            return Response(status: .ok)
        }
        router.get("/workers") { _, _ in jsonResponse(WorkerList(workers: pool.workers, total: pool.workers.count)) }
        router.post("/workers") { request, _ in
            let body = try JSONBody.decode(WorkerURLBody.self, from: try await request.body.collect(upTo: 1 << 16))
            let id = pool.addWorker(url: try checkedURL(body.url))
            return jsonResponse(WorkerAdded(id: id, url: body.url), status: .ok)
        }
        router.delete("/workers/:id") { _, context in
            guard let id = context.parameters.get("id"), pool.removeWorker(id) else { throw APIError(status: .notFound, message: "no such worker") }
            return Response(status: .ok)
        }
        router.post("/add_worker") { request, _ in
            guard let url = request.uri.queryParameters.get("url") else { throw APIError.badRequest("missing query parameter 'url'", param: "url") }
            pool.addWorker(url: try checkedURL(url))
            return Response(status: .ok)
        }
        router.post("/remove_worker") { request, _ in
            guard let url = request.uri.queryParameters.get("url"), pool.removeWorker(url) else { throw APIError(status: .notFound, message: "no such worker") }
            return Response(status: .ok)
        }
        router.get("/list_workers") { _, _ in jsonResponse(["urls": pool.workers.map(\.url)]) }
        return router
    }

    /// Serves until SIGTERM/SIGINT, checking worker health in the background.
    public static func run(pool: WorkerPool, configuration: Configuration, logger: Logger = Logger(label: "kite.router"), onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try await makeServiceGroup(pool: pool, configuration: configuration, logger: logger, signals: [.sigterm, .sigint], onServerRunning: onServerRunning).run()
    }

    /// The router and its health checks as one service group.
    public static func makeServiceGroup(
        pool: WorkerPool, configuration: Configuration, logger: Logger = Logger(label: "kite.router"), signals: [UnixSignal] = [],
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> ServiceGroup {
        let application = Application(
            router: makeRouter(pool: pool, configuration: configuration),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "kite-router"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
            logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: application), .init(service: HealthCheckService(pool: pool))],
            gracefulShutdownSignals: signals, logger: logger))
        return group
    }

    static func checkedURL(_ url: String) throws(APIError) -> String {
        guard url.hasPrefix("http://") || url.hasPrefix("https://"), url.count < 2048 else {
            throw APIError.badRequest("'\(url)' is not an http(s) URL", param: "url")
        }
        return url
    }
}

/// Checks the workers' health every interval until graceful shutdown.
public struct HealthCheckService: Service, CustomStringConvertible {
    let pool: WorkerPool
    public var description: String { "HealthCheckService" }

    public init(pool: WorkerPool) { self.pool = pool }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await pool.runHealthChecks() }
    }
}

struct WorkerList: Encodable {
    var workers: [WorkerPool.WorkerStatus]
    var total: Int
}

struct WorkerURLBody: Codable {
    var url: String
}

struct WorkerAdded: Encodable {
    var id: String
    var url: String
}

/// What the router reads of a generation request to choose a worker: the start of its prompt.
struct AffinityProbe: Decodable {
    var key: UInt64?

    enum CodingKeys: String, CodingKey {
        case text, prompt, messages
        case inputIDs = "input_ids"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        func add(_ text: String) {
            for byte in text.utf8.prefix(1024) { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        }
        if let ids = try? container.decode(OneOrMany<[Int]>.self, forKey: .inputIDs) ?? container.decode(OneOrMany<[Int]>.self, forKey: .prompt) {
            for token in (ids.values.first ?? []).prefix(256) { hash = (hash ^ UInt64(truncatingIfNeeded: token)) &* 0x100_0000_01B3 }
            key = hash
        } else if let text = try? container.decode(OneOrMany<String>.self, forKey: .text) ?? container.decode(OneOrMany<String>.self, forKey: .prompt) {
            add(text.values.first ?? "")
            key = hash
        } else if let messages = try? container.decode([AnyJSON].self, forKey: .messages) {
            for message in messages.prefix(4) { add(message["content"]?.stringValue ?? "") }
            key = hash
        }
    }
}

struct RouterHandlers: Sendable {
    let pool: WorkerPool
    let maxBodyBytes: Int

    static let routingKeyHeaders = ["X-SMG-Routing-Key", "X-Session-ID"].compactMap { HTTPField.Name($0) }

    /// A generation request to one worker; a worker that is down or answers 502/503/504 before any byte
    /// of the answer was passed on is replaced by another.
    func proxy(_ request: Request, path: String) async throws -> Response {
        let body = try await request.body.collect(upTo: maxBodyBytes)
        var key = (try? JSONDecoder().decode(AffinityProbe.self, from: Data(body.readableBytesView)))?.key
        for name in Self.routingKeyHeaders {
            if let value = request.headers[name] { key = pool.affinityKey(text: value) }
        }
        var tried = Set<String>()
        var lastFailure: SGLangClientError?
        for _ in 0...pool.options.maxRetries {
            guard let worker = pool.acquire(key: key, excluding: tried) else { break }
            tried.insert(worker.id)
            let client = pool.client(for: worker)
            let response: HTTPClientResponse
            do {
                response = try await client.execute(.POST, path, body: body)
            } catch let error as SGLangClientError {
                pool.release(worker, failure: error)
                lastFailure = error
                continue
            }
            let status = HTTPResponse.Status(code: Int(response.status.code))
            let contentType = response.headers.first(name: "Content-Type") ?? "application/json"
            if contentType.hasPrefix("text/event-stream") && status == .ok {
                return Response(status: status, headers: SGLangHandlers.eventStreamHeaders, body: ResponseBody { writer in
                    var failure: SGLangClientError?
                    defer { pool.release(worker, failure: failure) }
                    do {
                        for try await chunk in response.body { try await writer.write(chunk) }
                    } catch {
                        // The worker died mid-stream: what was sent cannot be taken back, so the stream ends with an error.
                        failure = .connection("\(error)")
                        let message = APIError(status: .badGateway, message: "the worker \(worker.url) failed during the stream: \(error)")
                        try await writer.write(ServerSentEvents.event(message.body))
                        try await writer.write(ServerSentEvents.done)
                    }
                    try await writer.finish(nil)
                })
            }
            let answer: ByteBuffer
            do {
                answer = try await response.body.collect(upTo: 1 << 30)
            } catch {
                pool.release(worker, failure: .connection("\(error)"))
                lastFailure = .connection("\(error)")
                continue
            }
            if [502, 503, 504].contains(status.code) {
                let failure = SGLangClientError.status(code: status.code, message: SGLangClient.errorMessage(answer))
                pool.release(worker, failure: failure)
                lastFailure = failure
                continue
            }
            pool.release(worker, failure: nil)
            return Response(status: status, headers: [.contentType: contentType], body: .init(byteBuffer: answer))
        }
        throw APIError.unavailable("no worker could serve the request" + (lastFailure.map { ": \($0)" } ?? ""))
    }

    /// An information request to any healthy worker.
    func forwardToOne(_ method: NIOHTTP1.HTTPMethod, _ path: String) async throws -> Response {
        do {
            let answer = try await pool.withWorker(key: nil) { client in try await client.send(method, path) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: answer))
        } catch let error as SGLangClientError {
            throw Self.apiError(error)
        }
    }

    /// A control request to every healthy worker; succeeds when all of them do.
    func broadcast(_ request: Request, path: String) async throws -> Response {
        let body = try await request.body.collect(upTo: maxBodyBytes)
        let workers = pool.healthyWorkers
        guard !workers.isEmpty else { throw APIError.unavailable("no healthy worker") }
        let failures = await withTaskGroup(of: SGLangClientError?.self) { group in
            for worker in workers {
                let client = pool.client(for: worker)
                group.addTask {
                    do {
                        _ = try await client.send(.POST, path, body: body.readableBytes > 0 ? body : nil)
                        return nil
                    } catch {
                        return (error as? SGLangClientError) ?? .connection("\(error)")
                    }
                }
            }
            var failures: [SGLangClientError] = []
            for await failure in group { if let failure { failures.append(failure) } }
            return failures
        }
        if let first = failures.first { throw Self.apiError(first) }
        return Response(status: .ok)
    }

    static func apiError(_ error: SGLangClientError) -> APIError {
        switch error {
        case .status(let code, let message): APIError(status: HTTPResponse.Status(code: code), message: message)
        case .connection(let detail): APIError(status: .badGateway, message: detail)
        case .malformed(let detail): APIError(status: .badGateway, message: detail)
        }
    }
}
