import AsyncHTTPClient
import FoundationEssentials
import Logging
import NIOCore
import Synchronization

/// The engines behind a router, and how a request picks one: by outstanding requests, with affinity for
/// requests that share a prompt prefix (so they meet their cached prefix), skipping workers that failed
/// their health checks and re-admitting them when they pass again.
///
/// Usable in process (a rollout manager that talks to remote engines) or behind `kite router`.
public final class WorkerPool: Sendable {
    public struct Options: Sendable {
        /// Seconds between health checks of every worker.
        public var healthCheckInterval: Double = 5
        /// A check failing within this many seconds counts as a failure.
        public var healthCheckTimeout: Double = 5
        /// Consecutive failed checks (or failed requests) that take a worker out of rotation.
        public var failureThreshold = 2
        /// Other workers tried after the first one fails a request.
        public var maxRetries = 3
        /// Affinity yields to balance when the preferred worker has this many more requests than the least
        /// loaded one and `balanceRelativeThreshold` times as many.
        public var balanceAbsoluteThreshold = 16
        public var balanceRelativeThreshold = 1.5
        /// Leading prompt tokens (or 4x as many characters) that decide affinity.
        public var affinityPrefixTokens = 256
        /// Key the workers expect (`--api-key` of `kite serve`).
        public var workerAPIKey: String?

        public init() {}
    }

    /// A worker as `/workers` lists it.
    public struct WorkerStatus: Codable, Sendable, Equatable {
        public var id: String
        public var url: String
        public var healthy: Bool
        public var outstanding: Int
        public var consecutiveFailures: Int

        enum CodingKeys: String, CodingKey {
            case id, url
            case healthy = "is_healthy"
            case outstanding = "load"
            case consecutiveFailures = "consecutive_failures"
        }
    }

    public let options: Options
    public let httpClient: HTTPClient
    let logger: Logger
    private let state = Mutex<State>(State())

    private struct State {
        var workers: [WorkerStatus] = []
        var rotation = 0
    }

    public init(urls: [String] = [], options: Options = Options(), httpClient: HTTPClient, logger: Logger = Logger(label: "kite.router")) {
        self.options = options
        self.httpClient = httpClient
        self.logger = logger
        for url in urls { addWorker(url: url) }
    }

    // MARK: Membership

    /// Adds a worker (healthy until a check says otherwise); an already known URL keeps its id.
    @discardableResult
    public func addWorker(url: String) -> String {
        let normalized = url.hasSuffix("/") ? String(url.dropLast()) : url
        return state.withLock { state in
            if let existing = state.workers.first(where: { $0.url == normalized }) { return existing.id }
            let id = String(EngineFrontend.newRequestID().prefix(12))
            state.workers.append(WorkerStatus(id: id, url: normalized, healthy: true, outstanding: 0, consecutiveFailures: 0))
            return id
        }
    }

    /// Removes a worker by id or URL; false if unknown.
    @discardableResult
    public func removeWorker(_ idOrURL: String) -> Bool {
        state.withLock { state in
            let before = state.workers.count
            state.workers.removeAll { $0.id == idOrURL || $0.url == idOrURL || $0.url + "/" == idOrURL }
            return state.workers.count != before
        }
    }

    public var workers: [WorkerStatus] { state.withLock { $0.workers } }
    public var healthyWorkers: [WorkerStatus] { workers.filter(\.healthy) }

    public func client(for worker: WorkerStatus) -> SGLangClient {
        SGLangClient(baseURL: worker.url, apiKey: options.workerAPIKey, httpClient: httpClient)
    }

    // MARK: Selection

    /// A worker for a request with this affinity key (nil: the least loaded), not one of `excluding`.
    /// Counts the request as outstanding until `release`.
    func acquire(key: UInt64?, excluding: Set<String> = []) -> WorkerStatus? {
        state.withLock { state in
            let candidates = state.workers.indices.filter { state.workers[$0].healthy && !excluding.contains(state.workers[$0].id) }
            guard !candidates.isEmpty else { return nil }
            let least = candidates.min { state.workers[$0].outstanding < state.workers[$1].outstanding } ?? candidates[0]
            var chosen: Int
            if let key {
                // Rendezvous hashing: each key prefers one worker, and only its share moves when workers change.
                chosen = candidates.max { Self.mix(key, state.workers[$0].id) < Self.mix(key, state.workers[$1].id) } ?? least
                let load = Double(state.workers[chosen].outstanding), minimum = Double(state.workers[least].outstanding)
                if load > minimum + Double(options.balanceAbsoluteThreshold) && load > minimum * options.balanceRelativeThreshold {
                    chosen = least
                }
            } else {
                // Among the least loaded, take turns.
                let minimum = state.workers[least].outstanding
                let tied = candidates.filter { state.workers[$0].outstanding == minimum }
                chosen = tied[state.rotation % tied.count]
                state.rotation &+= 1
            }
            state.workers[chosen].outstanding += 1
            return state.workers[chosen]
        }
    }

    /// Ends a request on `worker`; a failure that says the worker is down takes it out of rotation.
    func release(_ worker: WorkerStatus, failure: SGLangClientError?) {
        state.withLock { state in
            guard let index = state.workers.firstIndex(where: { $0.id == worker.id }) else { return }
            state.workers[index].outstanding = max(0, state.workers[index].outstanding - 1)
            if let failure, failure.isRetryable {
                state.workers[index].consecutiveFailures += 1
                if case .connection = failure { state.workers[index].healthy = false }
                if state.workers[index].consecutiveFailures >= options.failureThreshold { state.workers[index].healthy = false }
            } else if failure == nil {
                state.workers[index].consecutiveFailures = 0
            }
        }
    }

    static func mix(_ key: UInt64, _ id: String) -> UInt64 {
        var hash = key ^ 0x9E37_79B9_7F4A_7C15
        for byte in id.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        hash ^= hash >> 33
        hash &*= 0xFF51_AFD7_ED55_8CCD
        hash ^= hash >> 33
        return hash
    }

    /// FNV-1a of the leading tokens of a prompt.
    public func affinityKey(tokens: some Collection<Int>) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for token in tokens.prefix(options.affinityPrefixTokens) {
            hash = (hash ^ UInt64(truncatingIfNeeded: token)) &* 0x100_0000_01B3
        }
        return hash
    }

    /// FNV-1a of the leading characters of a text prompt.
    public func affinityKey(text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ 1
        for byte in text.utf8.prefix(options.affinityPrefixTokens * 4) { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        return hash
    }

    // MARK: Requests

    /// Runs `body` on a worker, and on another when that one is down or overloaded, up to `maxRetries` more.
    public func withWorker<T: Sendable>(key: UInt64?, _ body: (SGLangClient) async throws -> T) async throws -> T {
        var tried = Set<String>()
        var lastError: (any Error)?
        for _ in 0...options.maxRetries {
            guard let worker = acquire(key: key, excluding: tried) else { break }
            tried.insert(worker.id)
            do {
                let value = try await body(client(for: worker))
                release(worker, failure: nil)
                return value
            } catch let error as SGLangClientError where error.isRetryable {
                release(worker, failure: error)
                logger.warning("worker \(worker.url) failed (\(error)); trying another")
                lastError = error
            } catch {
                release(worker, failure: error as? SGLangClientError)
                throw error
            }
        }
        throw lastError ?? SGLangClientError.status(code: 503, message: "no healthy worker")
    }

    /// `/generate` on the best worker for its prompt, retried on another if that worker dies.
    public func generate(_ request: GenerateRequestBody) async throws -> [GenerateResponseBody] {
        let key: UInt64? = request.inputIDs.map { affinityKey(tokens: $0.values.first ?? []) } ?? request.text.map { affinityKey(text: $0.values.first ?? "") }
        return try await withWorker(key: key) { client in try await client.generate(request) }
    }

    // MARK: Health

    /// Checks every worker once: `/health` within the timeout marks it healthy, `failureThreshold`
    /// consecutive failures mark it unhealthy.
    public func checkHealth() async {
        let workers = self.workers
        let timeout = TimeAmount.milliseconds(Int64(options.healthCheckTimeout * 1000))
        await withTaskGroup(of: (String, Bool).self) { group in
            for worker in workers {
                let client = client(for: worker)
                group.addTask { (worker.id, await client.health(timeout: timeout)) }
            }
            for await (id, passed) in group {
                state.withLock { state in
                    guard let index = state.workers.firstIndex(where: { $0.id == id }) else { return }
                    if passed {
                        if !state.workers[index].healthy { logger.info("worker \(state.workers[index].url) is back") }
                        state.workers[index].healthy = true
                        state.workers[index].consecutiveFailures = 0
                    } else {
                        state.workers[index].consecutiveFailures += 1
                        if state.workers[index].consecutiveFailures >= options.failureThreshold, state.workers[index].healthy {
                            logger.warning("worker \(state.workers[index].url) failed \(state.workers[index].consecutiveFailures) health checks; out of rotation")
                            state.workers[index].healthy = false
                        }
                    }
                }
            }
        }
    }

    /// Checks health every `healthCheckInterval` seconds until cancelled.
    public func runHealthChecks() async {
        while !Task.isCancelled {
            await checkHealth()
            try? await Task.sleep(for: .milliseconds(Int(options.healthCheckInterval * 1000)))
        }
    }
}
