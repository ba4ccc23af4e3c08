import AsyncHTTPClient
import Foundation
import KiteEngine
import KiteModels
import KiteServer
import KiteTensor
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Testing

/// Every server test, one at a time: they load the machine's two cores and some of them time things.
@Suite(.serialized) struct ServerSuite {}

enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func modelPath(_ name: String) -> String { root.appendingPathComponent("models/\(name)").path }

    /// The `kite` binary built beside the tests.
    static var kiteBinary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kite")
    }

    static func prompt(length: Int, seed: UInt64, vocabulary: Int) -> [Int] {
        var generator = SeededGenerator(seed: seed)
        return (0..<length).map { _ in Int(generator.next() % UInt64(vocabulary)) }
    }

    /// A small cache, so that tests do not allocate the default gigabyte.
    static func engineOptions(maxTotalTokens: Int = 16384, blockSize: Int = 4) -> EngineOptions {
        var options = EngineOptions()
        options.maxTotalTokens = maxTotalTokens
        options.blockSize = blockSize
        return options
    }
}

/// One HTTP client for all tests, with room for a thousand connections.
let testHTTP = SGLangClient.makeHTTPClient(maxConnections: 2048, connectTimeout: .seconds(60))

/// A real server on loopback, in this process, around a real engine and fixture model.
final class TestServer: Sendable {
    let frontend: EngineFrontend
    let port: Int
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    var url: String { "http://127.0.0.1:\(port)" }
    var engine: InferenceEngine { frontend.engine }
    var client: SGLangClient { SGLangClient(baseURL: url, apiKey: frontend.configuration.apiKey, httpClient: testHTTP) }

    private init(frontend: EngineFrontend, port: Int, group: ServiceGroup, task: Task<Void, any Error>) {
        self.frontend = frontend
        self.port = port
        self.group = group
        self.task = task
    }

    static func start(
        model: String = "qwen3", options: EngineOptions = Fixtures.engineOptions(), threads: Int = 2,
        configure: (inout ServerConfiguration) -> Void = { _ in }
    ) async throws -> TestServer {
        let transformer = try Transformer.load(directory: Fixtures.modelPath(model), backend: CPUBackend(threads: threads))
        var settings = ServerConfiguration()
        settings.modelPath = Fixtures.modelPath(model)
        configure(&settings)
        let modelPath = settings.modelPath
        return try await start(engine: try InferenceEngine(model: transformer, options: options)) {
            configure(&$0)
            $0.modelPath = modelPath
        }
    }

    static func start(engine: InferenceEngine, chatRenderer: (any ChatPromptRenderer)? = nil, configure: (inout ServerConfiguration) -> Void = { _ in }) async throws -> TestServer {
        var configuration = ServerConfiguration()
        configuration.port = 0
        configure(&configuration)
        let frontend = EngineFrontend(engine: engine, chatRenderer: chatRenderer, configuration: configuration)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "test.server")
        logger.logLevel = .critical
        let group = KiteServer.makeServiceGroup(frontend: frontend, logger: logger) { port in
            continuation.yield(port)
            continuation.finish()
        }
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestFailure("the server did not start") }
        return TestServer(frontend: frontend, port: port, group: group, task: task)
    }

    /// Graceful shutdown, waiting until the server is gone.
    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }

    /// Waits until the engine is idle (nothing running or waiting), or fails after `timeout` seconds.
    func waitUntilIdle(timeout: Double = 5) async throws -> EngineStatistics {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let statistics = await engine.statistics()
            if statistics.runningSequences == 0 && statistics.waitingSequences == 0 { return statistics }
            if Date() > deadline { throw TestFailure("the engine is still busy: \(statistics)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// Runs `body` against a fresh server and stops it afterwards, also when `body` throws.
func withServer<T>(
    model: String = "qwen3", options: EngineOptions = Fixtures.engineOptions(),
    configure: (inout ServerConfiguration) -> Void = { _ in }, _ body: (TestServer) async throws -> T
) async throws -> T {
    try await run(try await TestServer.start(model: model, options: options, configure: configure), body)
}

/// Runs `body` against a server around `engine`, stopping it afterwards.
func withServer<T>(engine: InferenceEngine, chatRenderer: (any ChatPromptRenderer)? = nil, configure: (inout ServerConfiguration) -> Void = { _ in }, _ body: (TestServer) async throws -> T) async throws -> T {
    try await run(try await TestServer.start(engine: engine, chatRenderer: chatRenderer, configure: configure), body)
}

private func run<T>(_ server: TestServer, _ body: (TestServer) async throws -> T) async throws -> T {
    do {
        let value = try await body(server)
        await server.stop()
        return value
    } catch {
        await server.stop()
        throw error
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

import Logging

/// A raw HTTP exchange, for status codes and bodies exactly as sent.
struct HTTPExchange {
    var status: Int
    var body: String
    var headers: HTTPHeaders

    var json: Any? { try? JSONSerialization.jsonObject(with: Data(body.utf8), options: [.fragmentsAllowed]) }
    var object: [String: Any]? { json as? [String: Any] }
    var errorMessage: String? { (object?["error"] as? [String: Any])?["message"] as? String }
    var errorType: String? { (object?["error"] as? [String: Any])?["type"] as? String }
}

func send(_ method: HTTPMethod = .POST, _ url: String, body: ByteBuffer? = nil, headers: [(String, String)] = [], timeout: TimeAmount = .seconds(120)) async throws -> HTTPExchange {
    var request = HTTPClientRequest(url: url)
    request.method = method
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let body {
        request.body = .bytes(body)
        request.headers.add(name: "Content-Type", value: "application/json")
    }
    let response = try await testHTTP.execute(request, timeout: timeout)
    let bytes = try await response.body.collect(upTo: 1 << 28)
    return HTTPExchange(status: Int(response.status.code), body: String(buffer: bytes), headers: response.headers)
}

func send(_ method: HTTPMethod = .POST, _ url: String, json: String, headers: [(String, String)] = [], timeout: TimeAmount = .seconds(120)) async throws -> HTTPExchange {
    try await send(method, url, body: ByteBuffer(string: json), headers: headers, timeout: timeout)
}

/// The `data:` payloads of a server-sent event stream, in order.
func ssePayloads(_ text: String) -> [String] {
    text.components(separatedBy: "\n\n").compactMap { event in
        event.hasPrefix("data: ") ? String(event.dropFirst(6)) : nil
    }
}

func jsonObject(_ text: String) -> [String: Any]? {
    try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
}

/// Runs the `kite` binary and returns its standard output.
func runKite(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
    let process = Process()
    process.executableURL = Fixtures.kiteBinary
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

/// Resident memory of this process in bytes.
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}
