import Dispatch
import KiteJSON
import KiteTensor
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `--custom-rm-cmd`: rewards computed by a long-running program in any language, speaking JSON lines.
///
/// Kite writes one line per request — `{"id": 7, "prompt": ..., "response": ..., "label": ..., "metadata": ...}`,
/// or with `--group-rm` `{"id": 7, "samples": [ ... ]}` — and reads lines `{"id": 7, "reward": 1.0}` (a number
/// or an object for `--reward-key`), or `{"id": 7, "rewards": [...]}` for a group, in any order.
///
/// Every request has a hard timeout (`--rm-timeout`): a reward that does not arrive in time scores
/// `--rm-timeout-reward`; a program that hangs or exits is killed and restarted for the next request. A bad
/// reward program therefore never blocks a training step for longer than the timeout.
public final class CommandReward: RewardFunction, @unchecked Sendable {
    public let command: String
    public let timeout: Double
    public let timeoutReward: JSONValue
    public let groupReward: Bool
    private let state = Mutex<State>(State())

    struct State {
        var process: WorkerProcess?
        var nextID = 0
        var pending: [Int: Pending] = [:]
        var timeouts = 0
        var restarts = 0
    }

    struct Pending {
        var generation: Int
        var continuation: CheckedContinuation<JSONValue?, Never>
    }

    /// How many requests scored the timeout reward, and how many times the program was (re)started.
    public var counters: (timeouts: Int, restarts: Int) { state.withLock { ($0.timeouts, $0.restarts) } }

    public init(command: String, timeout: Double, timeoutReward: JSONValue = .double(0), groupReward: Bool = false) throws(RLError) {
        guard !command.trimmingCharacters(in: \.isWhitespace).isEmpty else { throw .invalidOption(name: "--custom-rm-cmd", message: "the command is empty") }
        guard timeout > 0, timeout.isFinite else { throw .invalidOption(name: "--rm-timeout", message: "must be a positive number of seconds, got \(timeout)") }
        self.command = command
        self.timeout = timeout
        self.timeoutReward = timeoutReward
        self.groupReward = groupReward
    }

    deinit {
        let process = state.withLock { $0.process }
        process?.terminate()
    }

    public func rewards(for samples: [Sample]) async throws -> [JSONValue] {
        if groupReward {
            let payload: JSONObject = ["samples": .array(samples.map(Self.payload))]
            guard let answer = await request(payload), let rewards = answer["rewards"]?.arrayValue, rewards.count == samples.count else {
                return samples.map { _ in timeoutReward }
            }
            return rewards
        }
        return await withTaskGroup(of: (Int, JSONValue).self) { group in
            for (index, sample) in samples.enumerated() {
                group.addTask {
                    let answer = await self.request(Self.payload(sample).objectValue ?? JSONObject())
                    return (index, answer?["reward"] ?? self.timeoutReward)
                }
            }
            var rewards = [JSONValue](repeating: timeoutReward, count: samples.count)
            for await (index, reward) in group { rewards[index] = reward }
            return rewards
        }
    }

    static func payload(_ sample: Sample) -> JSONValue {
        [
            "prompt": sample.prompt, "response": .string(sample.response), "label": sample.label ?? .null,
            "metadata": .object(sample.metadata), "status": .string(sample.status.rawValue),
        ]
    }

    /// Sends one request; nil when it timed out or the program failed.
    func request(_ body: JSONObject) async -> JSONValue? {
        let answer: JSONValue? = await withCheckedContinuation { continuation in
            var line = body
            let (process, id): (WorkerProcess?, Int) = state.withLock { state in
                if state.process == nil || state.process?.isAlive == false {
                    state.process = WorkerProcess(command: command, owner: self)
                    state.restarts += 1
                }
                let id = state.nextID
                state.nextID += 1
                if let process = state.process {
                    state.pending[id] = Pending(generation: process.generation, continuation: continuation)
                }
                return (state.process, id)
            }
            guard let process else {
                continuation.resume(returning: nil)
                return
            }
            line["id"] = .int(id)
            process.send(JSONValue.object(line).serialized(.compact) + "\n")
            let deadline = DispatchTime.now() + timeout
            DispatchQueue.global().asyncAfter(deadline: deadline) { [weak self] in
                self?.expire(id: id)
            }
        }
        return answer
    }

    /// The program answered request `id`.
    func deliver(id: Int, answer: JSONValue) {
        let pending = state.withLock { $0.pending.removeValue(forKey: id) }
        pending?.continuation.resume(returning: answer)
    }

    /// The program of `generation` exited: its unanswered requests fail now instead of at their timeouts.
    func processEnded(generation: Int) {
        let failed = state.withLock { state -> [Pending] in
            let ids = state.pending.filter { $0.value.generation == generation }.map(\.key)
            state.timeouts += ids.count
            return ids.compactMap { state.pending.removeValue(forKey: $0) }
        }
        if !failed.isEmpty { Self.log("custom reward command exited; \(failed.count) request(s) scored the timeout reward") }
        for pending in failed { pending.continuation.resume(returning: nil) }
    }

    private func expire(id: Int) {
        let (pending, process) = state.withLock { state -> (Pending?, WorkerProcess?) in
            guard let pending = state.pending.removeValue(forKey: id) else { return (nil, nil) }
            state.timeouts += 1
            return (pending, state.process)
        }
        guard let pending else { return }
        Self.log("custom reward request \(id) timed out after \(timeout) s; restarting '\(command)'")
        // A program that misses a deadline is presumed hung: replace it for the requests that follow.
        if let process, process.generation == pending.generation { process.terminate() }
        pending.continuation.resume(returning: nil)
    }

    static func log(_ message: String) {
        var bytes = Array(("kite: " + message + "\n").utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

/// One running reward program: its pipes, a thread writing requests, a thread reading answers.
final class WorkerProcess: @unchecked Sendable {
    private static let generations = Mutex(0)
    let generation: Int
    private let pid: pid_t
    private let input: Int32
    private let output: Int32
    private let outbox = Mutex<(lines: [String], closed: Bool)>(([], false))
    private let wake = DispatchSemaphore(value: 0)
    private let alive = Mutex(true)
    private weak var owner: CommandReward?

    var isAlive: Bool { alive.withLock { $0 } }

    init?(command: String, owner: CommandReward) {
        generation = Self.generations.withLock { value in
            value += 1
            return value
        }
        self.owner = owner
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0 else { return nil }
        guard pipe(&fromChild) == 0 else {
            close(toChild[0]); close(toChild[1])
            return nil
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        for fd in [toChild[0], toChild[1], fromChild[0], fromChild[1]] { posix_spawn_file_actions_addclose(&actions, fd) }
        let arguments: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup(command), nil]
        defer { arguments.forEach { free($0) } }
        var child = pid_t()
        let spawned = posix_spawn(&child, "/bin/sh", &actions, nil, arguments, environ)
        close(toChild[0])
        close(fromChild[1])
        guard spawned == 0 else {
            close(toChild[1]); close(fromChild[0])
            return nil
        }
        pid = child
        input = toChild[1]
        output = fromChild[0]
        // A program that dies must not kill Kite with SIGPIPE when it is written to.
        signal(SIGPIPE, SIG_IGN)
        Thread.start { [self] in self.writeLoop() }
        Thread.start { [self] in self.readLoop() }
    }

    func send(_ line: String) {
        outbox.withLock { $0.lines.append(line) }
        wake.signal()
    }

    /// Kills the program (it is reaped by the reader when its output closes).
    func terminate() {
        guard alive.withLock({ value -> Bool in
            defer { value = false }
            return value
        }) else { return }
        kill(pid, SIGKILL)
        outbox.withLock { $0.closed = true }
        wake.signal()
    }

    private func writeLoop() {
        while true {
            wake.wait()
            let (lines, closed) = outbox.withLock { box -> ([String], Bool) in
                defer { box.lines = [] }
                return (box.lines, box.closed)
            }
            for line in lines {
                var bytes = Array(line.utf8)[...]
                while !bytes.isEmpty {
                    let written = bytes.withUnsafeBytes { Glibc.write(input, $0.baseAddress, $0.count) }
                    if written < 0 {
                        if errno == EINTR { continue }
                        break
                    }
                    bytes = bytes.dropFirst(written)
                }
            }
            if closed { break }
        }
        close(input)
    }

    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var pendingLine: [UInt8] = []
        while true {
            let count = buffer.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            for byte in buffer[0..<count] {
                if byte == UInt8(ascii: "\n") {
                    handle(pendingLine)
                    pendingLine.removeAll(keepingCapacity: true)
                } else if pendingLine.count < 16 << 20 {
                    pendingLine.append(byte)
                }
            }
        }
        close(output)
        terminate()
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        owner?.processEnded(generation: generation)
    }

    private func handle(_ line: [UInt8]) {
        guard let value = try? JSONValue(parsing: line, source: "custom reward output"), let id = value["id"]?.intValue else {
            CommandReward.log("ignored a line from the custom reward command that is not {\"id\": n, ...}: \(String(decoding: line.prefix(200), as: UTF8.self))")
            return
        }
        owner?.deliver(id: id, answer: value)
    }
}

/// A detached POSIX thread for blocking I/O that must not occupy Swift's cooperative threads.
enum Thread {
    static func start(_ body: @escaping @Sendable () -> Void) {
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body))
        let created = pthread_create(&thread, nil, { argument in
            guard let argument else { return nil }
            let box = Unmanaged<Box>.fromOpaque(argument).takeRetainedValue()
            box.body()
            return nil
        }, box.toOpaque())
        if created == 0 {
            pthread_detach(thread)
        } else {
            box.release()
        }
    }
}
