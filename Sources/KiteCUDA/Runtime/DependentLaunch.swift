/// Which kernels are launched as programmatic dependents (sm_90 and later): those whose body begins with
/// `kite_dependent_entry();` (the prelude's `griddepcontrol.wait` then `launch_dependents`).
///
/// Such a launch lets the kernel start while the previous kernel on the stream is still running. That is
/// safe only if the kernel touches no memory before its wait, so the choice is read from the source
/// itself rather than kept in a list beside it: the entry call must be the first statement of the body.
/// A kernel without it keeps an ordinary launch, which waits for everything before it.
enum DependentLaunch {
    /// The statement a dependent kernel's body must begin with.
    static let entryStatement = "kite_dependent_entry();"

    /// `KITE_DEPENDENT_LAUNCH=0` launches every kernel ordinarily (for comparison and triage).
    static let enabled = environment("KITE_DEPENDENT_LAUNCH") != "0"

    /// One piece of a kernel's name as written in the source: literal text, or a macro parameter joined
    /// with `##` (written in capitals: `kite_paged_decode_rows_d##D##_g##G`).
    enum NamePiece: Equatable {
        case literal(String)
        case parameter
    }

    /// The names, as written (macro parameters included), of the kernels in `source` whose body begins with
    /// the entry statement.
    static func dependentKernelNames(in source: String) -> [[NamePiece]] {
        // Macro bodies continue their lines with a backslash; join them so a definition reads as one text.
        let text = Array(source.replacing("\\\n", with: " ").utf8)
        let keyword = Array("__global__".utf8)
        var names: [[NamePiece]] = []
        var index = 0
        while let start = find(keyword, in: text, from: index) {
            index = start + keyword.count
            guard let open = text[index...].firstIndex(of: UInt8(ascii: "{")) else { break }
            var header = String(decoding: text[index..<open], as: UTF8.self)
            if let bounds = header.firstRange(of: "__launch_bounds__("), let close = header[bounds.upperBound...].firstIndex(of: ")") {
                header.removeSubrange(bounds.lowerBound...close)
            }
            guard let parenthesis = header.firstIndex(of: "(") else { continue }
            let declaration = header[..<parenthesis].split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" })
            guard let written = declaration.last else { continue }
            let body = String(decoding: text[(open + 1)...].prefix(200), as: UTF8.self)
            guard body.drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" }).hasPrefix(entryStatement) else { continue }
            names.append(written.split(separator: "##", omittingEmptySubsequences: false).map { piece in
                isMacroParameter(piece) ? .parameter : .literal(String(piece))
            })
        }
        return names
    }

    /// Whether the concrete kernel `name` is one of `written` (a parameter stands for letters and digits).
    static func matches(_ name: String, _ written: [NamePiece]) -> Bool {
        matches(Array(name.utf8)[...], written[...])
    }

    private static func matches(_ name: ArraySlice<UInt8>, _ pieces: ArraySlice<NamePiece>) -> Bool {
        guard let first = pieces.first else { return name.isEmpty }
        switch first {
        case .literal(let text):
            let bytes = Array(text.utf8)
            guard name.starts(with: bytes) else { return false }
            return matches(name.dropFirst(bytes.count), pieces.dropFirst())
        case .parameter:
            var end = name.startIndex
            while end < name.endIndex, isLetterOrDigit(name[end]) {
                end += 1
                if matches(name[end...], pieces.dropFirst()) { return true }
            }
            return false
        }
    }

    private static func isMacroParameter(_ piece: Substring) -> Bool {
        guard let first = piece.utf8.first, (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(first) else { return false }
        return piece.utf8.allSatisfy { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "_") }
    }

    private static func isLetterOrDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        var index = start
        while index + needle.count <= haystack.count {
            if haystack[index] == needle[0], haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}

extension DependentLaunch {
    /// `CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION`.
    static let programmaticStreamSerialization: UInt32 = 6

    /// Launches `function` through `cuLaunchKernelEx` with programmatic stream serialization allowed, so it
    /// may begin before the previous kernel on `stream` ends (it waits in `kite_dependent_entry`). Returns
    /// the driver's status.
    static func launch(
        _ launchKernelEx: @convention(c) (
            UnsafeRawPointer, CUHandle?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        ) -> Int32,
        function: CUHandle, shape: LaunchShape, stream: CUHandle?, parameters: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> Int32 {
        // CUlaunchAttribute (72 bytes): id (u32), padding to 8, then the 64-byte value union, whose first int
        // is programmaticStreamSerializationAllowed. CUlaunchConfig (56 bytes): grid x, y, z, block x, y, z and
        // shared bytes (seven u32), padding, the stream (at 32), the attribute pointer (40), their count (u32, 48).
        withUnsafeTemporaryAllocation(byteCount: 72 + 56, alignment: 8) { bytes in
            bytes.initializeMemory(as: UInt8.self, repeating: 0)
            bytes.storeBytes(of: programmaticStreamSerialization, toByteOffset: 0, as: UInt32.self)
            bytes.storeBytes(of: Int32(1), toByteOffset: 8, as: Int32.self)
            let config = 72
            func word(_ index: Int, _ value: Int) { bytes.storeBytes(of: UInt32(value), toByteOffset: config + 4 * index, as: UInt32.self) }
            word(0, shape.grid.x); word(1, shape.grid.y); word(2, shape.grid.z)
            word(3, shape.block.x); word(4, shape.block.y); word(5, shape.block.z); word(6, shape.sharedBytes)
            bytes.storeBytes(of: UInt(bitPattern: stream), toByteOffset: config + 32, as: UInt.self)
            bytes.storeBytes(of: UInt(bitPattern: bytes.baseAddress), toByteOffset: config + 40, as: UInt.self)
            bytes.storeBytes(of: UInt32(1), toByteOffset: config + 48, as: UInt32.self)
            return launchKernelEx(UnsafeRawPointer(bytes.baseAddress! + config), function, parameters, nil)
        }
    }
}
