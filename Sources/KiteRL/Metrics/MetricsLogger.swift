import KiteJSON
import KiteModels
import KiteTensor
#if canImport(Glibc)
import Glibc
#endif

/// Where a run's numbers go: one progress line per step on the console, one JSON object per record in
/// `metrics.jsonl`, and TensorBoard scalars when a directory is given.
public final class MetricsLogger: @unchecked Sendable {
    public let jsonlPath: String?
    private let jsonl: UnsafeMutablePointer<FILE>?
    private let tensorboard: TensorBoardWriter?
    private let console: @Sendable (String) -> Void

    public init(directory: String?, tensorboardDirectory: String?, console: @escaping @Sendable (String) -> Void) throws {
        if let directory {
            try FileText.makeDirectory(directory)
            let path = directory + "/metrics.jsonl"
            guard let file = fopen(path, "a") else { throw ModelError.io(path: path, detail: "cannot open: \(String(cString: strerror(errno)))") }
            jsonl = file
            jsonlPath = path
        } else {
            jsonl = nil
            jsonlPath = nil
        }
        tensorboard = try tensorboardDirectory.map { try TensorBoardWriter(directory: $0) }
        self.console = console
    }

    deinit { if let jsonl { fclose(jsonl) } }

    /// Records `metrics` of kind `kind` ("rollout", "train", "eval") at `step`.
    public func record(kind: String, rolloutID: Int, step: Int, metrics: [(name: String, value: Double)]) {
        var object: JSONObject = ["kind": .string(kind), "rollout_id": .int(rolloutID), "step": .int(step), "time": .double(TensorBoardWriter.wallTime())]
        for (name, value) in metrics { object[name] = value.isFinite ? .double(value) : .null }
        if let jsonl {
            let line = JSONValue.object(object).serialized(.compact) + "\n"
            _ = line.withCString { fputs($0, jsonl) }
            fflush(jsonl)
        }
        tensorboard?.scalars(metrics.map { ($0.name, $0.value) }, step: step)
    }

    public func say(_ line: String) { console(line) }
}
