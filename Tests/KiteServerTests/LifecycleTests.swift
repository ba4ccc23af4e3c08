import Foundation
import KiteEngine
import KiteModels
import KiteServer
import KiteTensor
import NIOCore
import NIOHTTP1
import Testing

extension ServerSuite {
    @Suite struct LifecycleTests {
        /// `kite serve` under SIGTERM: new requests are refused, running ones finish until the shutdown
        /// timeout and the rest end with finish reason abort, then the process exits 0.
        @Test func sigtermDrainsThenAbortsAndExits() async throws {
            let process = Process()
            process.executableURL = Fixtures.kiteBinary
            process.arguments = [
                "serve", "--model", Fixtures.modelPath("qwen3"), "--port", "0", "--shutdown-timeout", "0.5",
                "--max-running-requests", "1", "--max-total-tokens", "4096", "--page-size", "4", "--threads", "1",
            ]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
            defer { if process.isRunning { process.terminate() } }
            let port = try await Self.announcedPort(output)
            let url = "http://127.0.0.1:\(port)"
            let count = 300
            let streams = Task {
                try await withThrowingTaskGroup(of: String?.self) { group in
                    for index in 0..<count {
                        let prompt = Fixtures.prompt(length: 8, seed: UInt64(index), vocabulary: 72)
                        group.addTask {
                            let exchange = try await send(.POST, url + "/generate", json: LoadTests.body(prompt, maxNewTokens: 110, stream: true))
                            let payloads = ssePayloads(exchange.body)
                            if exchange.status == 503 { return "refused" }
                            guard payloads.last == "[DONE]", let last = payloads.dropLast().last.flatMap(jsonObject) else { return "no [DONE]: \(exchange.status)" }
                            return ((last["meta_info"] as? [String: Any])?["finish_reason"] as? [String: Any])?["type"] as? String
                        }
                    }
                    var reasons: [String?] = []
                    for try await reason in group { reasons.append(reason) }
                    return reasons
                }
            }
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                let loads = try await send(.GET, url + "/v1/loads")
                let load = (loads.object?["loads"] as? [[String: Any]])?.first
                if (load?["num_total_reqs"] as? Int ?? 0) >= count * 3 / 4 { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            kill(process.processIdentifier, SIGTERM)
            let signalled = Date()
            try await Task.sleep(for: .milliseconds(100))
            let late = try? await send(.POST, url + "/generate", json: #"{"input_ids": [1, 2], "sampling_params": {"max_new_tokens": 2}}"#)
            #expect(late == nil || late?.status == 503, "a request after SIGTERM: \(late?.status ?? 0)")
            let reasons = try await streams.value
            let ended = Date().timeIntervalSince(signalled)
            while process.isRunning && Date() < signalled.addingTimeInterval(10) { try await Task.sleep(for: .milliseconds(20)) }
            let exited = Date().timeIntervalSince(signalled)
            let aborted = reasons.filter { $0 == "abort" }.count, finished = reasons.filter { $0 == "length" }.count
            let refused = reasons.filter { $0 == "refused" }.count
            print("SIGTERM with \(count) streams: \(finished) finished, \(aborted) aborted at the 0.5 s timeout, \(refused) arrived after SIGTERM and got 503; streams ended after \(String(format: "%.2f", ended)) s, process exited after \(String(format: "%.2f", exited)) s")
            #expect(aborted + finished + refused == count, "\(reasons.filter { $0 != "abort" && $0 != "length" && $0 != "refused" })")
            #expect(aborted > 0, "the timeout must cut some requests short")
            #expect(!process.isRunning)
            #expect(process.terminationStatus == 0)
            #expect(ended < 5)
        }

        static func announcedPort(_ pipe: Pipe) async throws -> Int {
            let handle = pipe.fileHandleForReading
            return try await Task.detached {
                var text = ""
                while true {
                    let data = handle.availableData
                    if data.isEmpty { throw TestFailure("kite serve exited before listening: \(text)") }
                    text += String(decoding: data, as: UTF8.self)
                    if let range = text.range(of: "listening on http://127.0.0.1:") {
                        let digits = text[range.upperBound...].prefix { $0.isNumber }
                        if let port = Int(digits), text[range.upperBound...].contains("\n") { return port }
                    }
                }
            }.value
        }

        /// Graceful shutdown with time to spare: every running request completes normally.
        @Test func gracefulShutdownDrainsRunningRequests() async throws {
            let server = try await TestServer.start { $0.shutdownTimeout = 30 }
            // The engine holds every request (its cache released) until all 20 are in flight and shutdown began.
            await server.engine.releaseMemory()
            let requests = Task {
                try await withThrowingTaskGroup(of: String?.self) { group in
                    for index in 0..<20 {
                        let prompt = Fixtures.prompt(length: 6, seed: UInt64(index), vocabulary: 72)
                        group.addTask {
                            let exchange = try await send(.POST, server.url + "/generate", json: LoadTests.body(prompt, maxNewTokens: 40))
                            return ((exchange.object?["meta_info"] as? [String: Any])?["finish_reason"] as? [String: Any])?["type"] as? String
                        }
                    }
                    var reasons: [String?] = []
                    for try await reason in group { reasons.append(reason) }
                    return reasons
                }
            }
            let deadline = Date().addingTimeInterval(10)
            while server.frontend.inFlightRequests < 20 && Date() < deadline { try await Task.sleep(for: .milliseconds(1)) }
            #expect(server.frontend.inFlightRequests == 20)
            let stopping = Task { await server.stop() }
            try await Task.sleep(for: .milliseconds(50))
            #expect(server.frontend.isDraining)
            let refused = try? await send(.POST, server.url + "/generate", json: #"{"input_ids": [1], "sampling_params": {"max_new_tokens": 1}}"#)
            #expect(refused == nil || refused?.status == 503)
            try await server.engine.resumeMemory()
            let reasons = try await requests.value
            await stopping.value
            #expect(reasons.count == 20 && reasons.allSatisfy { $0 == "length" }, "\(reasons)")
            // The engine has stopped; calls on it still return (a late /get_server_info must not hang the listener).
            _ = await server.engine.statistics()
            #expect(await server.engine.flushCache())
        }

        /// `--api-key` guards every route: health, information, generation, weights, memory and abort.
        @Test func apiKeyCoversEveryRoute() async throws {
            try await withServer(configure: { $0.apiKey = "s3cret" }) { server in
                let routes: [(HTTPMethod, String, String?)] = [
                    (.GET, "/health", nil), (.GET, "/health_generate", nil), (.GET, "/get_model_info", nil), (.GET, "/get_server_info", nil),
                    (.GET, "/v1/models", nil), (.GET, "/v1/loads", nil), (.POST, "/flush_cache", nil),
                    (.POST, "/generate", #"{"input_ids": [1], "sampling_params": {"max_new_tokens": 1}}"#),
                    (.POST, "/abort_request", #"{"abort_all": true}"#),
                    (.POST, "/update_weights_from_disk", #"{"model_path": "\#(Fixtures.modelPath("qwen3"))"}"#),
                    (.POST, "/release_memory_occupation", "{}"), (.POST, "/resume_memory_occupation", "{}"),
                    (.POST, "/v1/completions", #"{"prompt": [1], "max_tokens": 1}"#),
                    (.POST, "/v1/chat/completions", #"{"messages": [{"role": "user", "content": "hi"}]}"#),
                    (.GET, "/no_such_route", nil),
                ]
                for (method, path, body) in routes {
                    let bodyBuffer = body.map { ByteBuffer(string: $0) }
                    let anonymous = try await send(method, server.url + path, body: bodyBuffer)
                    #expect(anonymous.status == 401 && anonymous.errorType == "authentication_error", "\(path) without a key: \(anonymous.status)")
                    let wrong = try await send(method, server.url + path, body: bodyBuffer, headers: [("Authorization", "Bearer s3cre")])
                    #expect(wrong.status == 401, "\(path) with a wrong key: \(wrong.status)")
                    let keyed = try await send(method, server.url + path, body: bodyBuffer, headers: [("Authorization", "Bearer s3cret")])
                    #expect(keyed.status != 401, "\(path) with the key: \(keyed.status)")
                }
            }
        }

        /// Health, information, cache, memory and weight controls behave as SGLang's.
        @Test func controlEndpoints() async throws {
            try await withServer() { server in
                #expect(try await send(.GET, server.url + "/health").status == 200)
                #expect(try await send(.GET, server.url + "/health_generate").status == 200)
                #expect(try await server.client.serverInfo().port == server.port)
                let info = try await server.client.modelInfo()
                #expect(info.vocabSize == 72 && info.contextLength == 128 && info.isGeneration && info.weightVersion == "0")
                let models = try await send(.GET, server.url + "/v1/models")
                #expect(((models.object?["data"] as? [[String: Any]])?.first?["id"] as? String) == "qwen3")
                #expect(try await send(.POST, server.url + "/flush_cache").status == 200)

                // Released memory holds requests until it is resumed.
                #expect(try await send(.POST, server.url + "/release_memory_occupation", json: #"{"tags": ["kv_cache"]}"#).status == 200)
                let held = Task { try await send(.POST, server.url + "/generate", json: #"{"input_ids": [1, 2], "sampling_params": {"max_new_tokens": 3}}"#) }
                try await Task.sleep(for: .milliseconds(200))
                #expect(try await server.client.serverInfo().internalStates.first?.numWaitingReqs == 1)
                #expect(try await send(.POST, server.url + "/resume_memory_occupation").status == 200)
                #expect(try await held.value.status == 200)

                // New weights from disk: a checkpoint whose output layer is changed answers differently, exactly as
                // `kite generate` on that checkpoint does, and carries the new weight version.
                let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kite-weights-\(UUID().uuidString)")
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: directory) }
                try FileManager.default.copyItem(atPath: Fixtures.modelPath("qwen3") + "/config.json", toPath: directory.path + "/config.json")
                let original = try Transformer.load(directory: Fixtures.modelPath("qwen3"), backend: CPUBackend(threads: 1))
                let changed = original.parameters.entries.map { entry -> (name: String, tensor: Tensor) in
                    guard entry.name == "lm_head.weight" else { return entry }
                    let values = entry.tensor.toFloats()
                    return (entry.name, Tensor(values.indices.map { values[($0 + 1) % values.count] }, shape: entry.tensor.shape))
                }
                try SafetensorsWriter.write(changed, to: directory.path + "/model.safetensors")
                let prompt = #"{"input_ids": [5, 6, 7], "sampling_params": {"max_new_tokens": 12, "temperature": 0, "ignore_eos": true}}"#
                let before = try await send(.POST, server.url + "/generate", json: prompt).object?["output_ids"] as? [Int]
                let update = try await send(.POST, server.url + "/update_weights_from_disk", json: #"{"model_path": "\#(directory.path)", "weight_version": "v2"}"#)
                #expect(update.status == 200 && update.object?["success"] as? Bool == true, "\(update.body)")
                let after = try await send(.POST, server.url + "/generate", json: prompt)
                let reference = try runKite(["generate", "--model", directory.path, "--input-ids", "5,6,7", "--max-new-tokens", "12", "--ignore-eos"])
                let expected = jsonObject(reference.output.trimmingCharacters(in: .whitespacesAndNewlines))?["output_ids"] as? [Int]
                #expect(after.object?["output_ids"] as? [Int] == expected && expected != nil)
                #expect(expected != before)
                #expect((after.object?["meta_info"] as? [String: Any])?["weight_version"] as? String == "v2")
                #expect(try await server.client.modelInfo().modelPath == directory.path)
            }
        }
    }
}
