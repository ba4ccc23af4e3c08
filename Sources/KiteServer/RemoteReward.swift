import AsyncHTTPClient
import KiteJSON
import KiteRL
import NIOCore

/// `--rm-type remote_rm`: each sample is POSTed to `--rm-url` as `{"prompt", "response", "label"}` and the
/// answer's JSON is its reward (a number, or an object read with `--reward-key`), as slime's `remote_rm`.
///
/// Like slime, a failed call is retried (connection errors, 5xx and 429) with exponential backoff capped at
/// 30 s, up to `attempts` tries, with at most `concurrency` calls in flight; a 4xx answer, or the last
/// failure, fails the rollout with the URL, the status and the start of the body.
public struct RemoteReward: RewardFunction {
    public let url: String
    public var attempts = 10
    public var concurrency = 64
    public var timeout: TimeAmount = .seconds(120)
    /// The first retry's wait in seconds; doubled each time, at most 30.
    public var initialBackoff = 1.0
    let httpClient: HTTPClient

    public init(url: String, httpClient: HTTPClient = .shared) throws(RLError) {
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw .invalidOption(name: "--rm-url", message: "'\(url)' is not an http:// or https:// URL")
        }
        self.url = url
        self.httpClient = httpClient
    }

    public func rewards(for samples: [Sample]) async throws -> [JSONValue] {
        var rewards = [JSONValue](repeating: .null, count: samples.count)
        try await withThrowingTaskGroup(of: (Int, JSONValue).self) { group in
            var next = 0
            func launch() {
                let index = next
                let sample = samples[index]
                group.addTask { (index, try await reward(for: sample)) }
                next += 1
            }
            while next < min(concurrency, samples.count) { launch() }
            for try await (index, reward) in group {
                rewards[index] = reward
                if next < samples.count { launch() }
            }
        }
        return rewards
    }

    func reward(for sample: Sample) async throws -> JSONValue {
        let payload = JSONValue.object(JSONObject([
            ("prompt", sample.prompt), ("response", .string(sample.response)), ("label", sample.label ?? .null),
        ])).serialized()
        var wait = initialBackoff
        var lastFailure = ""
        for attempt in 1...max(attempts, 1) {
            do {
                var request = HTTPClientRequest(url: url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: payload))
                let response = try await httpClient.execute(request, timeout: timeout)
                let body = try await response.body.collect(upTo: 16 << 20)
                let text = String(buffer: body)
                guard (200..<300).contains(Int(response.status.code)) else {
                    lastFailure = "HTTP \(response.status.code): \(text.prefix(200))"
                    guard response.status.code >= 500 || response.status.code == 429 else {
                        throw RLError.invalidReward(sample: sample.index.map(String.init) ?? "?", message: "remote reward \(url) refused the sample: \(lastFailure)")
                    }
                    throw RemoteRewardRetry()
                }
                do {
                    return try JSONValue(parsing: text, source: url)
                } catch {
                    throw RLError.invalidReward(sample: sample.index.map(String.init) ?? "?", message: "\(url) answered \(text.prefix(200)), not JSON: \(error)")
                }
            } catch let error as RLError {
                throw error
            } catch {
                if !(error is RemoteRewardRetry) { lastFailure = "\(error)" }
                if attempt < attempts {
                    try await Task.sleep(for: .milliseconds(Int(wait * 1000)))
                    wait = min(wait * 2, 30)
                }
            }
        }
        throw RLError.invalidReward(sample: sample.index.map(String.init) ?? "?", message: "remote reward \(url) failed after \(attempts) tries: \(lastFailure)")
    }
}

private struct RemoteRewardRetry: Error {}
