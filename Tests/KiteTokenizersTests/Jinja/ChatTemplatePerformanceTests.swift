import Foundation
import KiteJSON
import Testing
@testable import KiteTokenizers

/// Rendering must be cheap next to tokenization: a 20-turn conversation well under a millisecond.
struct ChatTemplatePerformanceTests {
    static func twentyTurns() -> [JSONValue] {
        var messages: [JSONValue] = [["role": "system", "content": "You are a helpful assistant."]]
        for turn in 0..<10 {
            messages.append(["role": "user", "content": .string("Question \(turn): what is \(turn) squared? Please explain in detail, step by step.")])
            messages.append(["role": "assistant", "content": .string("<think>\n\(turn) times \(turn) is \(turn * turn).\n</think>\n\nThe answer is \(turn * turn).")])
        }
        return messages
    }

    @Test(arguments: ["qwen3", "deepseek_r1", "llama3_3", "smollm2"])
    func twentyTurnConversationRendersInWellUnderAMillisecond(name: String) throws {
        let template = try ChatTemplateReferenceTests.template(name)
        let messages = Self.twentyTurns()
        let tools = try ChatTemplateReferenceTests.json("conversations.json")["tools_offered"]?["tools"]?.arrayValue
        let context = JSONObject([("date_string", "26 Jul 2024")])
        let special = ["bos_token": "<s>", "eos_token": "</s>"]
        var output = ""
        for _ in 0..<20 { output = try template.render(messages: messages, tools: tools, addGenerationPrompt: true, extraContext: context, specialTokens: special) }
        var timings: [Double] = []
        for _ in 0..<200 {
            let start = ContinuousClock.now
            output = try template.render(messages: messages, tools: tools, addGenerationPrompt: true, extraContext: context, specialTokens: special)
            let elapsed = ContinuousClock.now - start
            timings.append(Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6)
        }
        timings.sort()
        let median = timings[timings.count / 2]
        print("\(name): 20-turn render median \(String(format: "%.1f", median)) µs, \(output.utf8.count) bytes")
        #expect(output.utf8.count > 1000)
        // The machine is shared and noisy; the bound leaves a wide margin over the typical time.
        #expect(median < 1000, "median \(median) µs")
    }
}
