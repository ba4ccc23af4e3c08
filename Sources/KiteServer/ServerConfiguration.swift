/// How `kite serve` listens and what it admits.
public struct ServerConfiguration: Sendable {
    /// The interface to bind: loopback unless told otherwise.
    public var host = "127.0.0.1"
    /// 0 picks a free port (tests); the bound port is reported by `onServerRunning`.
    public var port = 30000
    /// When set, every route needs `Authorization: Bearer <key>`.
    public var apiKey: String?
    /// Where the weights came from (reported by `/get_model_info`, replaced by `/update_weights_from_disk`).
    public var modelPath = ""
    public var tokenizerPath: String?
    /// The `model` name of the OpenAI API; the model path's last component when nil.
    public var servedModelName: String?
    /// Larger bodies get 413 before they are parsed.
    public var maxRequestBodyBytes = 32 << 20
    /// Prompts in one batch request at most.
    public var maxBatchSize = 4096
    /// On SIGTERM, in-flight requests may finish for this long; then they end with finish reason abort.
    public var shutdownTimeout: Double = 10
    /// Streamed chunks carry only what is new (SGLang's `--incremental-streaming-output`); by default each
    /// chunk carries the whole output so far, as SGLang's does.
    public var incrementalStreamingOutput = false
    /// `/health_generate` fails when one token takes longer than this.
    public var healthGenerateTimeout: Double = 20

    public init() {}

    var modelName: String {
        if let servedModelName { return servedModelName }
        let trimmed = modelPath.hasSuffix("/") ? String(modelPath.dropLast()) : modelPath
        return trimmed.split(separator: "/").last.map(String.init) ?? "kite"
    }
}
