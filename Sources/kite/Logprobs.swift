import ArgumentParser
import KiteJSON
import KiteModels
import KiteTensor

struct Logprobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the log-probability of each next token and each position's entropy, as JSON.",
        discussion: """
            logprobs[i] = log p(ids[i+1] | ids[0...i]) under log_softmax(logits / T); entropy[i] is the entropy \
            of that distribution. Both have one entry fewer than the ids.
            """
    )

    @Option(help: "A Hugging Face model directory (config.json + safetensors) or a .gguf file.")
    var model: String

    @Option(name: .customLong("input-ids"), help: "Comma-separated token ids, at least two.")
    var inputIDs: String

    @Option(help: "Temperature T of the distribution.")
    var temperature: Float = 1

    @OptionGroup var deviceOptions: DeviceOptions

    func run() async throws {
        let ids = try parseIDs(inputIDs)
        guard temperature > 0, temperature.isFinite else { throw ValidationError("--temperature must be a positive number, got \(temperature)") }
        let backend = try deviceOptions.makeBackend()
        let transformer = try Transformer.load(path: model, backend: backend)
        let result = try computeLogprobs(transformer, ids: ids, temperature: temperature)
        print(result.serialized(.compact))
    }
}

/// Parses "1,2,3" into token ids, naming the bad item on error.
func parseIDs(_ text: String) throws -> [Int32] {
    let items = text.split(separator: ",", omittingEmptySubsequences: false)
    var ids: [Int32] = []
    for (position, item) in items.enumerated() {
        let trimmed = item.trimmingCharacters(in: " ")
        guard let id = Int32(trimmed) else {
            throw ValidationError("--input-ids: item \(position) ('\(trimmed)') is not an integer token id")
        }
        ids.append(id)
    }
    guard ids.count >= 2 else { throw ValidationError("--input-ids needs at least two ids to score a next token") }
    return ids
}

/// `{"logprobs": [...], "entropy": [...]}` for the next-token predictions of one sequence.
func computeLogprobs(_ model: Transformer, ids: [Int32], temperature: Float) throws -> JSONValue {
    let result = try model.forward(tokens: ids, sequences: PackedSequences(lengths: [ids.count]), temperature: temperature, keepActivations: false)
    let count = ids.count - 1
    // Shortest decimal of each fp32 value, so printed numbers read back to the same float.
    let logprobs = try model.backend.download(result.logprobs).toFloats().prefix(count).map { JSONValue.double(Double("\($0)") ?? Double($0)) }
    let entropy = try model.backend.download(result.entropy).toFloats().prefix(count).map { JSONValue.double(Double("\($0)") ?? Double($0)) }
    return ["logprobs": .array(Array(logprobs)), "entropy": .array(Array(entropy))]
}

extension Substring {
    func trimmingCharacters(in character: Character) -> String {
        String(drop { $0 == character }.reversed().drop { $0 == character }.reversed())
    }
}
