import Foundation
import KiteServer
import KiteTensor
import NIOCore
import NIOHTTP1
import Testing

extension ServerSuite {
    @Suite struct BadRequestTests {
        static let longPrompt = (0..<128).map { _ in "1" }.joined(separator: ",")

        /// Each malformed request gets a 4xx with `{"error": {"message", "type", "param", "code"}}`, and the
        /// server goes on serving.
        @Test func malformedRequestsGet4xxAndTheServerKeepsServing() async throws {
            try await withServer() { server in
                let cases: [(String, String, Int, String)] = [
                    ("/generate", "this is not json", 400, "request body:1:1"),
                    ("/generate", "", 400, "empty"),
                    ("/generate", "[]", 400, ""),
                    ("/generate", "null", 400, ""),
                    ("/generate", "42", 400, ""),
                    ("/generate", #"{"input_ids": "abc"}"#, 400, "input_ids"),
                    ("/generate", #"{"input_ids": [1, "a"]}"#, 400, "input_ids"),
                    ("/generate", #"{"input_ids": [1.5]}"#, 400, "does not fit"),
                    ("/generate", #"{"input_ids": []}"#, 400, "empty"),
                    ("/generate", #"{"input_ids": [[]]}"#, 400, "empty"),
                    ("/generate", #"{"input_ids": [[1], []]}"#, 400, "empty"),
                    ("/generate", #"{"input_ids": [1], "text": "x"}"#, 400, "not both"),
                    ("/generate", #"{}"#, 400, "missing the prompt"),
                    ("/generate", #"{"text": "hello"}"#, 400, "tokenizer"),
                    ("/generate", #"{"input_ids": [1, 72]}"#, 400, "outside the vocabulary"),
                    ("/generate", #"{"input_ids": [1], "return_routed_experts": true}"#, 400, "--enable-return-routed-experts"),
                    ("/generate", #"{"input_ids": [[1], [2]], "return_routed_experts": [true]}"#, 400, "return_routed_experts"),
                    ("/generate", #"{"input_ids": [-1]}"#, 400, "outside the vocabulary"),
                    ("/generate", #"{"input_ids": [99999999999]}"#, 400, "outside the vocabulary"),
                    ("/generate", #"{"input_ids": [1e400]}"#, 400, ""),
                    ("/generate", #"{"input_ids": [\#(Self.longPrompt)]}"#, 400, "context length is 128"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"max_new_tokens": -1}}"#, 400, "max_new_tokens"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"max_new_tokens": 1000000000000}}"#, 400, "max_new_tokens"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"max_new_tokens": 1.5}}"#, 400, "does not fit"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"max_new_tokens": 1e300}}"#, 400, "does not fit"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"temperature": -0.5}}"#, 400, "temperature"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"temperature": NaN}}"#, 400, ""),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"temperature": "hot"}}"#, 400, "temperature"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"temperature": 1e999}}"#, 400, ""),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"top_p": 0}}"#, 400, "top_p"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"top_p": 2}}"#, 400, "top_p"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"top_k": -5}}"#, 400, "top_k"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"min_p": 2}}"#, 400, "min_p"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"n": 0}}"#, 400, "'n'"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"n": 100000}}"#, 400, "'n'"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"stop_token_ids": [99999]}}"#, 400, "stop_token_ids"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"stop": ["x"]}}"#, 400, "tokenizer"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"temprature": 0}}"#, 400, "unknown field 'temprature'"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"frequency_penalty": 0.5}}"#, 400, "frequency_penalty"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": {"regex": "a+"}}"#, 400, "regex"),
                    ("/generate", #"{"input_ids": [1], "sampling_params": "greedy"}"#, 400, "sampling_params"),
                    ("/generate", #"{"input_ids": [1], "return_logprob": "yes"}"#, 400, "return_logprob"),
                    ("/generate", #"{"input_ids": [1], "return_logprob": true, "top_logprobs_num": -1}"#, 400, "top_logprobs_num"),
                    ("/generate", #"{"input_ids": [1], "logprob_start_len": 0}"#, 400, "logprob_start_len"),
                    ("/generate", #"{"input_ids": [1], "rid": ["a", "b"]}"#, 400, "rid"),
                    ("/generate", #"{"input_ids": [[1], [2]], "rid": "a"}"#, 400, "rid"),
                    ("/generate", #"{"input_ids": [[1], [2]], "sampling_params": [{}, {}, {}]}"#, 400, "sampling_params"),
                    ("/generate", #"{"input_ids": [[1], [2]], "rid": ["a", "a"]}"#, 400, "already running"),
                    ("/generate", #"{"input_ids": [1], "image_data": "http://x/y.png"}"#, 400, "image_data"),
                    ("/generate", #"{"input_ids": [1], "stream": "yes"}"#, 400, "stream"),
                    ("/generate", String(repeating: "[", count: 100_000), 400, ""),
                    ("/generate", #"{"input_ids": \#(String(repeating: "[", count: 5000))1\#(String(repeating: "]", count: 5000))}"#, 400, ""),
                    ("/abort_request", #"{}"#, 400, "rid"),
                    ("/abort_request", #"{"rid": 5}"#, 400, "rid"),
                    ("/update_weights_from_disk", #"{"model_path": "/nonexistent/model"}"#, 400, "cannot load"),
                    ("/update_weights_from_disk", #"{"model_path": 5}"#, 400, "model_path"),
                    ("/update_weights_from_disk", #"{"model_path": "\#(Fixtures.modelPath("llama"))"}"#, 400, "different architecture"),
                    ("/update_weights_from_disk", #"{}"#, 400, "model_path"),
                    ("/v1/completions", #"{"prompt": "hello"}"#, 400, "tokenizer"),
                    ("/v1/completions", #"{"prompt": [1, 2], "max_tokens": -4}"#, 400, "max_new_tokens"),
                    ("/v1/completions", #"{"prompt": [1, 2], "n": 5000}"#, 400, "'n'"),
                    ("/v1/completions", #"{"prompt": [1, 2], "logprobs": 50}"#, 400, "logprobs"),
                    ("/v1/completions", #"{"max_tokens": 3}"#, 400, "prompt"),
                    ("/v1/completions", #"{"prompt": [1, 2], "presence_penalty": 1}"#, 400, "presence_penalty"),
                    ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "hi"}]}"#, 400, "tokenizer"),
                    ("/v1/chat/completions", #"{"messages": "hi"}"#, 400, "messages"),
                    ("/v1/chat/completions", #"{"messages": [{"content": "hi"}]}"#, 400, "role"),
                    ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}"#, 400, "text content"),
                    ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}"#, 400, "response_format"),
                ]
                for (path, body, status, fragment) in cases {
                    let exchange = try await send(.POST, server.url + path, json: body)
                    #expect(exchange.status == status, "\(path) \(body.prefix(120)): \(exchange.status) \(exchange.body.prefix(300))")
                    #expect(exchange.errorType != nil && exchange.errorMessage != nil, "\(path) \(body.prefix(120)): \(exchange.body.prefix(300))")
                    if !fragment.isEmpty {
                        #expect(exchange.errorMessage?.contains(fragment) ?? false, "\(path) \(body.prefix(120)): \(exchange.errorMessage ?? exchange.body)")
                    }
                }
                // Wrong methods and unknown routes.
                for (method, path) in [(HTTPMethod.GET, "/generate"), (.POST, "/nope"), (.DELETE, "/health")] {
                    let exchange = try await send(method, server.url + path)
                    #expect((400..<500).contains(exchange.status) && exchange.errorType != nil, "\(method) \(path): \(exchange.status) \(exchange.body)")
                }
                // A rid already running is refused; the first request is not disturbed.
                async let first = send(.POST, server.url + "/generate", json: #"{"rid": "dup", "input_ids": [1, 2], "sampling_params": {"max_new_tokens": 100, "ignore_eos": true}, "stream": true}"#)
                try await Task.sleep(for: .milliseconds(5))
                let second = try await send(.POST, server.url + "/generate", json: #"{"rid": "dup", "input_ids": [1, 2]}"#)
                #expect(second.status == 400 || second.status == 200, "\(second.body)")
                #expect(try await first.status == 200)

                // Still serving.
                let health = try await send(.GET, server.url + "/health")
                #expect(health.status == 200)
                let ok = try await send(.POST, server.url + "/generate", json: #"{"input_ids": [1, 2, 3], "sampling_params": {"max_new_tokens": 4}}"#)
                #expect(ok.status == 200 && (ok.object?["output_ids"] as? [Int])?.count == 4, "\(ok.body)")
                _ = try await server.waitUntilIdle()
            }
        }

        /// A body over the limit gets 413 without being parsed; a 10 MB body of junk or of token ids gets 400.
        @Test func hugeBodiesAreRefused() async throws {
            try await withServer() { server in
                var huge = ByteBuffer()
                huge.writeRepeatingByte(UInt8(ascii: " "), count: 100 << 20)
                let exchange = try await send(.POST, server.url + "/generate", body: huge)
                #expect(exchange.status == 413 && exchange.errorType == "request_too_large", "\(exchange.status) \(exchange.body.prefix(200))")
                var junk = ByteBuffer()
                junk.writeRepeatingByte(UInt8(ascii: "x"), count: 10 << 20)
                #expect(try await send(.POST, server.url + "/generate", body: junk).status == 400)
                let ids = "{\"input_ids\": [" + [String](repeating: "7", count: 2_500_000).joined(separator: ",") + "]}"
                let long = try await send(.POST, server.url + "/generate", json: ids)
                #expect(long.status == 400 && (long.errorMessage ?? "").contains("context length"), "\(long.body.prefix(200))")
                let ok = try await send(.POST, server.url + "/generate", json: #"{"input_ids": [1, 2, 3], "sampling_params": {"max_new_tokens": 2}}"#)
                #expect(ok.status == 200)
            }
        }

        /// Thousands of generated bodies (mutations of valid requests: flipped, cut and inserted bytes,
        /// values of the wrong type or range): never a 5xx, never a crash.
        @Test func fuzzedBodiesNeverGet5xx() async throws {
            try await withServer() { server in
                let seeds = [
                    #"{"input_ids": [1, 2, 3], "sampling_params": {"max_new_tokens": 3, "temperature": 0.5, "top_p": 0.9, "top_k": 5, "n": 2}, "return_logprob": true, "top_logprobs_num": 2}"#,
                    #"{"input_ids": [[4, 5], [6]], "sampling_params": [{"max_new_tokens": 2}, {"max_new_tokens": 1, "stop_token_ids": [3]}], "rid": ["x", "y"]}"#,
                    #"{"input_ids": [9, 8, 7], "sampling_params": {"max_new_tokens": 2, "ignore_eos": true, "sampling_seed": 3}, "stream": true}"#,
                    #"{"prompt": [1, 2], "max_tokens": 2, "logprobs": 1, "n": 2, "temperature": 0}"#,
                ]
                let paths = ["/generate", "/generate", "/generate", "/v1/completions"]
                let palette = ["-1", "0", "1e9", "-1e9", "1.5", "null", "true", "\"s\"", "[]", "{}", "[1,[2]]", "99999999999999999999", "1e-300", "\"\\u0000\"", "72", "128"]
                var generator = SeededGenerator(seed: 2026)
                func random(_ bound: Int) -> Int { Int(generator.next() % UInt64(bound)) }
                var counts = [Int: Int]()
                let total = 3000
                var bodies: [(String, String)] = []
                for _ in 0..<total {
                    let which = random(seeds.count)
                    var bytes = Array(seeds[which].utf8)
                    for _ in 0..<(1 + random(3)) {
                        switch random(5) {
                        case 0: bytes[random(bytes.count)] = UInt8(32 + random(95))
                        case 1: bytes = Array(bytes.prefix(random(bytes.count + 1)))
                        case 2: bytes.insert(contentsOf: Array(palette[random(palette.count)].utf8), at: random(bytes.count + 1))
                        case 3:
                            // Replace one number with a value from the palette.
                            let digits = bytes.indices.filter { bytes[$0] >= UInt8(ascii: "0") && bytes[$0] <= UInt8(ascii: "9") }
                            if let at = digits.isEmpty ? nil : digits[random(digits.count)] {
                                bytes.replaceSubrange(at...at, with: Array(palette[random(palette.count)].utf8))
                            }
                        default: if !bytes.isEmpty { bytes.remove(at: random(bytes.count)) }
                        }
                        if bytes.isEmpty { break }
                    }
                    bodies.append((paths[which], String(decoding: bytes, as: UTF8.self)))
                }
                let statuses = try await withThrowingTaskGroup(of: [(Int, String)].self) { group in
                    for lane in 0..<8 {
                        let mine = stride(from: lane, to: bodies.count, by: 8).map { bodies[$0] }
                        group.addTask {
                            var seen: [(Int, String)] = []
                            for (path, body) in mine {
                                let exchange = try await send(.POST, server.url + path, json: body)
                                seen.append((exchange.status, exchange.status >= 500 ? body + " -> " + exchange.body : ""))
                            }
                            return seen
                        }
                    }
                    var all: [(Int, String)] = []
                    for try await part in group { all += part }
                    return all
                }
                for (status, detail) in statuses {
                    counts[status, default: 0] += 1
                    #expect(status < 500, "\(detail)")
                }
                #expect(statuses.count == total)
                #expect(counts[200, default: 0] > 100 && counts[400, default: 0] > 100, "\(counts)")
                let statistics = try await server.waitUntilIdle()
                #expect(statistics.freeBlocks + statistics.cachedBlocks == statistics.totalBlocks)
                #expect(try await send(.GET, server.url + "/health").status == 200)
            }
        }
    }
}
