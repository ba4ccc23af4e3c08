import Foundation
import Testing
import KiteJSON

/// `kite logprobs` end to end against transformers' values (scripts/reference/dense_models.py), 1e-4 absolute.
struct LogprobsCommandTests {
    @Test(arguments: ["llama", "llama_linear_tied", "qwen2", "qwen3", "qwen3_moe", "deepseek_v3", "deepseek_v2"])
    func printsTransformersLogprobsAndEntropy(model: String) throws {
        let directory = KiteCommand.fixtures.appendingPathComponent("models/\(model)").path
        let reference = try JSONValue(parsing: String(contentsOfFile: directory + "/reference.json", encoding: .utf8))
        let sequence = try #require(reference["sequences"]?.arrayValue?[3].arrayValue).compactMap(\.intValue)
        let expectedLogprobs = try #require(reference["logprobs"]?.arrayValue?[3].arrayValue).compactMap(\.doubleValue)
        let expectedEntropy = try #require(reference["entropy"]?.arrayValue?[3].arrayValue).compactMap(\.doubleValue)
        let temperature = try #require(reference["temperature"]?.doubleValue)

        let output = try KiteCommand.run(["logprobs", "--model", directory, "--input-ids", sequence.map(String.init).joined(separator: ","), "--temperature", "\(temperature)"])
        #expect(output.status == 0, "\(output.standardError)")
        let printed = try JSONValue(parsing: output.standardOutput)
        let logprobs = try #require(printed["logprobs"]?.arrayValue).compactMap(\.doubleValue)
        let entropy = try #require(printed["entropy"]?.arrayValue).compactMap(\.doubleValue)
        #expect(logprobs.count == sequence.count - 1 && entropy.count == sequence.count - 1)
        #expect(zip(logprobs, expectedLogprobs).allSatisfy { abs($0 - $1) < 1e-4 })
        #expect(zip(entropy, expectedEntropy).allSatisfy { abs($0 - $1) < 1e-4 })
    }

    @Test func badInputsExitNonZeroWithOneLineErrors() throws {
        let directory = KiteCommand.fixtures.appendingPathComponent("models/qwen3").path
        let cases: [([String], String)] = [
            (["--input-ids", "1,5,x"], "item 2 ('x') is not an integer token id"),
            (["--input-ids", "1,72"], "token id 72 at position 1 is outside the vocabulary (0..<72)"),
            (["--input-ids", "7"], "needs at least two ids"),
            (["--input-ids", "1,2", "--temperature", "0"], "--temperature must be a positive number"),
        ]
        for (arguments, expected) in cases {
            let output = try KiteCommand.run(["logprobs", "--model", directory] + arguments)
            #expect(output.status != 0)
            #expect(output.standardError.contains(expected), "\(arguments): \(output.standardError)")
            #expect(output.standardOutput.isEmpty)
        }
        let missing = try KiteCommand.run(["logprobs", "--model", "/nonexistent-model", "--input-ids", "1,2"])
        #expect(missing.status != 0 && missing.standardError.contains("/nonexistent-model/config.json: cannot open"))
    }
}
