import Foundation
import Testing
import KiteGGUF

/// Mutates valid GGUF files (truncations, byte flips, lying lengths, counts and offsets) and checks that
/// every outcome is a success or a thrown `GGUFError`; a crash (trap on overflow or out-of-bounds
/// access) would kill the test process. Bounded to a few seconds; `KITE_FUZZ_SCALE=N` runs N times more
/// iterations, and `KITE_FUZZ_LAST=path` writes each input there first, to keep the one that crashes.
/// Inputs worth keeping go to Tests/Fixtures/gguf/corpus (see CorpusTests).
struct FuzzTests {
    static let scale = Int(ProcessInfo.processInfo.environment["KITE_FUZZ_SCALE"] ?? "") ?? 1
    static let lastInputPath = ProcessInfo.processInfo.environment["KITE_FUZZ_LAST"]

    /// Values that make lengths, counts, dimensions and offsets lie.
    static let lies: [UInt64] = [0, 1, 2, 3, 4, 5, 7, 8, 12, 13, 24, 31, 32, 33, 64, 255, 256, 4096, 65535,
                                 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 32, 1 << 40, 1 << 60, 1 << 62,
                                 (1 << 63) - 32, 1 << 63, UInt64.max, UInt64.max - 31]

    enum Outcome { case opened, rejected }

    /// Opens the bytes and, when that works, uses everything the file offers.
    @discardableResult
    static func exercise(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Outcome {
        if let lastInputPath { _ = FileManager.default.createFile(atPath: lastInputPath, contents: Data(bytes)) }
        do {
            let file = try GGUFFile(bytes: bytes, name: "fuzz")
            _ = try? GGUFModelHyperparameters(file)
            for key in file.metadata.keys.prefix(64) {
                _ = try? file.metadata.int(key)
                _ = try? file.metadata.stringArray(key)
                _ = try? file.metadata.floatArray(key)
            }
            for tensor in file.tensors.prefix(16) {
                do {
                    _ = GGUFTensorNames.huggingFaceName(for: tensor.name, architecture: "llama")
                    let values = try file.dequantize(tensor)
                    if values.count != tensor.elementCount {
                        Issue.record("\(tensor.name): \(values.count) values for \(tensor.elementCount) elements",
                                     sourceLocation: sourceLocation)
                    }
                    _ = try file.dequantize(tensor, unpermutingHeads: 2)
                } catch is GGUFError {
                } catch {
                    Issue.record("non-GGUF error reading \(tensor.name): \(error)", sourceLocation: sourceLocation)
                }
            }
            return .opened
        } catch is GGUFError {
            return .rejected
        } catch {
            Issue.record("non-GGUF error: \(error)", sourceLocation: sourceLocation)
            return .rejected
        }
    }

    static func mutate(_ input: [UInt8], limit: Int, using random: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            let region = min(limit, bytes.count)
            guard region > 0 else { return bytes }
            switch random.next() % 6 {
            case 0:  // flip bits of one byte
                bytes[Int.random(in: 0..<region, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
            case 1, 2:  // a lying u64 (lengths, counts, dimensions, offsets are u64)
                write(lies.randomElement(using: &random) ?? 0, width: 8, into: &bytes, region: region, using: &random)
            case 3:  // a lying u32 (versions, value and ggml types, dimension counts)
                write(lies.randomElement(using: &random) ?? 0, width: 4, into: &bytes, region: region, using: &random)
            case 4:  // cut
                bytes.removeLast(Int.random(in: 0...(bytes.count - 1), using: &random))
                return bytes
            default:  // shift everything after a point by inserting or removing a few bytes
                let at = Int.random(in: 0..<region, using: &random)
                if random.next() % 2 == 0 {
                    bytes.insert(contentsOf: (0..<Int.random(in: 1...9, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }, at: at)
                } else {
                    bytes.removeSubrange(at..<min(at + Int.random(in: 1...9, using: &random), bytes.count))
                }
            }
        }
        return bytes
    }

    static func write(_ value: UInt64, width: Int, into bytes: inout [UInt8], region: Int, using random: inout SplitMix64) {
        guard region >= width else { return }
        let at = Int.random(in: 0...(region - width), using: &random)
        for index in 0..<width { bytes[at + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }

    static func fixture(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: Fixtures.directory.appendingPathComponent(name)))
    }

    @Test func everyTruncationOfASmallFileIsRejectedCleanly() throws {
        let bytes = try Self.fixture("metadata.gguf")
        let file = try GGUFFile(bytes: bytes)
        // The tensor table ends within one alignment before the data section. A cut before it must fail;
        // a cut in the data section opens (the metadata is usable) and fails only when data is read.
        let tableEndAtLeast = file.dataOffset - file.alignment + 1
        for length in 0..<bytes.count {
            let outcome = Self.exercise(Array(bytes[0..<length]))
            if length < tableEndAtLeast { #expect(outcome == .rejected, "cut at \(length)") }
            if length >= file.dataOffset { #expect(outcome == .opened, "cut at \(length)") }
        }
    }

    /// Every offset of the header, metadata and tensor table of a small file, overwritten with lying
    /// u64 and u32 values (lengths, counts, dimensions, offsets, types).
    @Test func aLieAtEveryOffsetOfASmallFileIsHandled() throws {
        let bytes = try Self.fixture("metadata.gguf")
        let file = try GGUFFile(bytes: bytes)
        let lies: [UInt64] = [0, 3, 0xFFFF_FFFF, 1 << 60, (1 << 63) - 32, UInt64.max]
        for offset in 0..<(file.dataOffset - 8) {
            for lie in lies {
                for width in [4, 8] {
                    var mutated = bytes
                    for index in 0..<width { mutated[offset + index] = UInt8(truncatingIfNeeded: lie >> (8 * index)) }
                    Self.exercise(mutated)
                }
            }
        }
    }

    @Test(arguments: ["metadata.gguf", "metadata_v2.gguf", "quants.gguf", "corpus/empty_tensor_inside_other.gguf",
                      "corpus/nested_arrays_ok.gguf", "corpus/scalar_tensor.gguf"])
    func randomMutationsNeverCrash(name: String) throws {
        let bytes = try Self.fixture(name)
        let file = try GGUFFile(bytes: bytes)
        // Mutate the header, metadata and tensor table (plus a little data), where the structure lives.
        let limit = min(bytes.count, file.dataOffset + 256)
        var random = SplitMix64(seed: UInt64(truncatingIfNeeded: name.utf8.reduce(5381) { $0 &* 33 &+ Int($1) }))
        var outcomes = (opened: 0, rejected: 0)
        for _ in 0..<(1500 * Self.scale) {
            switch Self.exercise(Self.mutate(bytes, limit: limit, using: &random)) {
            case .opened: outcomes.opened += 1
            case .rejected: outcomes.rejected += 1
            }
        }
        #expect(outcomes.rejected > 0, "the mutations should break something")
    }

    /// The real SmolLM2 header region (metadata with 49152 tokens and 48900 merges, 272 tensor infos),
    /// mutated; the tensor data is left out, so tensors are past the end of the in-memory file.
    @Test(Assets.needed(Assets.smolLM2))
    func mutationsOfTheRealSmolLM2HeaderNeverCrash() throws {
        let handle = try #require(FileHandle(forReadingAtPath: try Assets.path(Assets.smolLM2)))
        defer { try? handle.close() }
        let header = [UInt8](handle.readData(ofLength: 1_785_664 + 4096))
        #expect(Self.exercise(header) == .opened)
        var random = SplitMix64(seed: 42)
        for _ in 0..<(40 * Self.scale) {
            Self.exercise(Self.mutate(header, limit: header.count, using: &random))
        }
        // Lies aimed at the first fields: counts, the first key's length, its value type.
        for offset in [8, 16, 24, 32 + 20, 32 + 24] {
            for lie in Self.lies {
                var bytes = header
                for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: lie >> (8 * index)) }
                Self.exercise(bytes)
            }
        }
    }
}

/// A small deterministic generator (SplitMix64), so a failing iteration can be reproduced.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
