import Hummingbird
import KiteEngine
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// Each request's context: Hummingbird's, plus the connection, so that a request whose client has gone
/// is aborted in the engine rather than computed for nobody.
public struct KiteRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// `kite serve`: the engine behind SGLang's native API and OpenAI's, as one Hummingbird application.
///
/// The engine computes on its own thread; handlers only submit, await and write. SIGTERM (or
/// `ServiceGroup.triggerGracefulShutdown`) refuses new requests, lets in-flight ones finish for
/// `shutdownTimeout`, aborts the rest (they end with finish reason abort), then stops the listener.
public enum KiteServer {
    /// The routes, for `Application(router:)` or a test.
    public static func makeRouter(frontend: EngineFrontend) -> Router<KiteRequestContext> {
        let router = Router(context: KiteRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        if let key = frontend.configuration.apiKey { router.add(middleware: APIKeyMiddleware(key: key)) }
        let native = SGLangHandlers(frontend: frontend)
        router.post("/generate", use: native.generate)
        router.get("/health", use: native.health)
        router.get("/health_generate", use: native.healthGenerate)
        router.get("/get_model_info", use: native.modelInfo)
        router.get("/model_info", use: native.modelInfo)
        router.get("/get_server_info", use: native.serverInfo)
        router.get("/server_info", use: native.serverInfo)
        router.get("/v1/loads", use: native.loads)
        router.get("/get_load", use: native.loads)
        router.post("/flush_cache", use: native.flushCache)
        router.get("/flush_cache", use: native.flushCache)
        router.post("/abort_request", use: native.abortRequest)
        router.post("/update_weights_from_disk", use: native.updateWeightsFromDisk)
        router.post("/release_memory_occupation", use: native.releaseMemory)
        router.post("/resume_memory_occupation", use: native.resumeMemory)
        let openAI = OpenAIHandlers(frontend: frontend, native: native)
        router.get("/v1/models", use: openAI.models)
        router.post("/v1/completions", use: openAI.completions)
        router.post("/v1/chat/completions", use: openAI.chatCompletions)
        return router
    }

    /// The application serving `frontend`; `onServerRunning` receives the bound port.
    public static func makeApplication(
        frontend: EngineFrontend, logger: Logger = Logger(label: "kite.serve"),
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let configuration = frontend.configuration
        return Application(
            router: makeRouter(frontend: frontend),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "kite"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                frontend.port = port
                await onServerRunning(port)
            },
            logger: logger)
    }

    /// The server and the engine's lifetime as one service group; `triggerGracefulShutdown()` (or one of
    /// `signals`) shuts down as described above.
    public static func makeServiceGroup(
        frontend: EngineFrontend, logger: Logger = Logger(label: "kite.serve"), signals: [UnixSignal] = [],
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> ServiceGroup {
        let application = makeApplication(frontend: frontend, logger: logger, onServerRunning: onServerRunning)
        return ServiceGroup(configuration: .init(
            services: [.init(service: application), .init(service: EngineService(frontend: frontend, logger: logger))],
            gracefulShutdownSignals: signals, logger: logger))
    }

    /// Serves until SIGTERM or SIGINT, then shuts down as described above.
    public static func run(frontend: EngineFrontend, logger: Logger = Logger(label: "kite.serve"), onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try await makeServiceGroup(frontend: frontend, logger: logger, signals: [.sigterm, .sigint], onServerRunning: onServerRunning).run()
    }
}

/// Owns the engine's lifetime in the service group. Listed after the HTTP server, so graceful shutdown
/// reaches it first: it drains or aborts what is in flight while the listener still answers (503 to new
/// requests), then the listener closes.
public struct EngineService: Service, CustomStringConvertible {
    let frontend: EngineFrontend
    let logger: Logger

    public init(frontend: EngineFrontend, logger: Logger) {
        self.frontend = frontend
        self.logger = logger
    }

    public var description: String { "EngineService" }

    public func run() async throws {
        try? await gracefulShutdown()
        frontend.beginDraining()
        let timeout = frontend.configuration.shutdownTimeout
        logger.info("shutting down: \(frontend.inFlightRequests) requests in flight, waiting up to \(timeout) s")
        if !(await frontend.waitUntilIdle(timeout: timeout)) {
            logger.info("shutdown timeout: aborting \(frontend.inFlightRequests) requests")
            frontend.engine.abortAll()
            _ = await frontend.waitUntilIdle(timeout: 5)
        }
        frontend.engine.shutdown()
    }
}
