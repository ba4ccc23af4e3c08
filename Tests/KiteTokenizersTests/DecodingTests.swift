import Foundation
import Testing

@testable import KiteTokenizers

/// Decoding and streaming on arbitrary ids and bytes, and encoding from many threads at once.
@Suite struct DecodingTests {
    /// Cutting a byte stream where the streaming detokenizer cuts never changes what lossy UTF-8 decoding
    /// gives, for random bytes fed in random chunks (biased towards UTF-8 lead and continuation bytes).
    @Test func streamingCutsPreserveLossyDecoding() {
        var random = SplitMix(seed: 42)
        let interesting: [UInt8] = [0x41, 0x20, 0xC2, 0xC3, 0xDF, 0xE0, 0xE2, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1]
        for _ in 0..<20_000 {
            let length = Int(random.next() % 12)
            let bytes = (0..<length).map { _ in random.next() % 3 == 0 ? UInt8(truncatingIfNeeded: random.next()) : interesting[Int(random.next() % UInt64(interesting.count))] }
            var pending: [UInt8] = []
            var emitted = ""
            var index = 0
            while index < bytes.count {
                let chunk = 1 + Int(random.next() % 3)
                pending += bytes[index..<min(bytes.count, index + chunk)]
                index += chunk
                let complete = StreamingDetokenizer.completePrefixLength(pending)
                emitted += String(decoding: pending[0..<complete], as: UTF8.self)
                pending.removeFirst(complete)
                // What is held back is at most one incomplete character.
                #expect(pending.count <= 3)
            }
            emitted += String(decoding: pending, as: UTF8.self)
            #expect(sameBytes(emitted, String(decoding: bytes, as: UTF8.self)), "\(bytes.map { String($0, radix: 16) })")
        }
    }

    /// Random ids (which split characters between tokens) stream to exactly what `decode` gives.
    @Test(arguments: RealTokenizerTests.names)
    func randomIDsStreamLikeDecode(name: String) throws {
        guard RealGGUF.available(name) else { return }
        let tokenizer = try RealGGUF.tokenizer(name)
        var random = SplitMix(seed: 9)
        for _ in 0..<2000 {
            let ids = (0..<Int(1 + random.next() % 8)).map { _ in Int(random.next() % UInt64(tokenizer.vocabularySize)) }
            var stream = tokenizer.makeStreamingDetokenizer(skipSpecialTokens: true)
            var text = ""
            for id in ids { text += try stream.append(id) }
            text += stream.finish()
            #expect(sameBytes(text, try tokenizer.decode(ids, skipSpecialTokens: true)))
        }
        // A character split over tokens appears only when complete.
        let ids = tokenizer.encode("😀中", addSpecialTokens: false)
        var stream = tokenizer.makeStreamingDetokenizer()
        let pieces = try ids.map { try stream.append($0) }
        #expect(pieces.joined() + stream.finish() == "😀中")
        #expect(!pieces.contains { $0.unicodeScalars.contains("\u{FFFD}") })
    }

    /// The tokenizer is shared between threads: concurrent encodes give the single-threaded ids.
    @Test(arguments: RealTokenizerTests.names)
    func concurrentEncodingGivesTheSameIDs(name: String) async throws {
        guard RealGGUF.available(name) else { return }
        let tokenizer = try RealGGUF.tokenizer(name)
        let strings = try CorpusFixture.shared().strings
        let expected = strings.map { tokenizer.encode($0, addSpecialTokens: true) }
        let results = await withTaskGroup(of: [[Int]].self) { group in
            for worker in 0..<8 {
                group.addTask {
                    (0..<strings.count).map { index in
                        tokenizer.encode(strings[(index + worker * 37) % strings.count], addSpecialTokens: true)
                    }
                }
            }
            var all: [[[Int]]] = []
            for await result in group { all.append(result) }
            return all
        }
        for result in results {
            let offset = (0..<8).first { worker in (0..<strings.count).allSatisfy { result[$0] == expected[($0 + worker * 37) % strings.count] } }
            #expect(offset != nil)
        }
    }
}

/// Long and repetitive inputs (one huge piece, long whitespace runs, long digit and emoji runs) round-trip
/// and take time linear in their length (each runs in well under a second).
@Suite struct LongInputTests {
    static let inputs: [String] = [
        String(repeating: "a", count: 200_000),
        String(repeating: " ", count: 200_000) + "x",
        String(repeating: "\n\t ", count: 50_000),
        String(repeating: "1234567890", count: 20_000),
        String(repeating: "😀", count: 30_000),
        String(repeating: "的", count: 60_000),
        String(repeating: "ab ", count: 60_000),
        String(repeating: "!?", count: 80_000),
    ]

    @Test(arguments: RealTokenizerTests.names)
    func longInputsRoundTrip(name: String) throws {
        guard RealGGUF.available(name) else { return }
        let tokenizer = try RealGGUF.tokenizer(name)
        for text in LongInputTests.inputs {
            let clock = ContinuousClock()
            let start = clock.now
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            let elapsed = clock.now - start
            #expect(sameBytes(try tokenizer.decode(ids), text))
            #expect(elapsed < .seconds(5), "\(name): \(show(String(text.prefix(10)))) took \(elapsed)")
        }
    }
}
