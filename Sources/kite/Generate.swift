import ArgumentParser
import KiteEngine
import KiteJSON

struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate continuations of token-id prompts with the in-process engine; one JSON line per prompt.",
        discussion: "All prompts run concurrently in one engine (continuous batching), as the server runs them.")

    @OptionGroup var engine: EngineFlags

    @Option(name: .customLong("input-ids"), help: "Comma-separated prompt token ids; repeat the option for more prompts.")
    var inputIDs: [String]

    @Option(help: "Output tokens per prompt at most.")
    var maxNewTokens = 32

    @Option(help: "0 is greedy.")
    var temperature = 0.0

    @Option(help: "Nucleus sampling threshold.")
    var topP = 1.0

    @Option(help: "Keep the k most likely tokens (-1: all).")
    var topK = -1

    @Option(help: "Seed of the sampler.")
    var seed: UInt64?

    @Flag(help: "Do not stop at end-of-sequence tokens.")
    var ignoreEOS = false

    func run() async throws {
        let prompts = try inputIDs.enumerated().map { index, text in try parsePrompt(text, index: index) }
        let engine = try self.engine.makeEngine()
        defer { engine.shutdown() }
        var sampling = SamplingParameters()
        sampling.maxNewTokens = maxNewTokens
        sampling.temperature = temperature
        sampling.topP = topP
        sampling.topK = topK
        sampling.seed = seed
        sampling.ignoreEOS = ignoreEOS
        let parameters = sampling
        let results = try await withThrowingTaskGroup(of: (Int, GenerationResult?).self) { group in
            for (index, prompt) in prompts.enumerated() {
                group.addTask {
                    (index, try await engine.generate(GenerationRequest(id: "prompt-\(index)", promptTokens: prompt, sampling: parameters, returnLogprob: true)).first)
                }
            }
            var collected = [Int: GenerationResult]()
            for try await (index, result) in group { collected[index] = result }
            return collected
        }
        for index in prompts.indices {
            guard let result = results[index] else { continue }
            let line: JSONValue = [
                "output_ids": .array(result.outputTokens.map { .int(Int($0)) }),
                "output_logprobs": .array(result.outputLogprobs.map { .double(Double("\($0)") ?? Double($0)) }),
                "finish_reason": .string(finishReasonText(result.finishReason)),
            ]
            print(line.serialized(.compact))
        }
    }

    func parsePrompt(_ text: String, index: Int) throws -> [Int32] {
        var ids: [Int32] = []
        for (position, item) in text.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            let trimmed = item.trimmingCharacters(in: " ")
            guard let id = Int32(trimmed) else {
                throw ValidationError("--input-ids #\(index): item \(position) ('\(trimmed)') is not an integer token id")
            }
            ids.append(id)
        }
        return ids
    }

    func finishReasonText(_ reason: FinishReason) -> String {
        switch reason {
        case .stopToken, .stopString: "stop"
        case .length: "length"
        case .abort: "abort"
        }
    }
}
