#if canImport(Glibc)
import Glibc
#endif

/// A shared library opened with `dlopen`, so that the `kite` binary links against no CUDA library and
/// runs (on the CPU) where none is installed.
final class DynamicLibrary: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    /// What was passed to `dlopen`.
    let path: String
    /// A short name for messages (`libcublasLt`).
    let name: String

    private init(handle: UnsafeMutableRawPointer, path: String, name: String) {
        self.handle = handle
        self.path = path
        self.name = name
    }

    /// The first candidate that loads; throws `libraryNotFound` listing each attempt and `dlerror`'s reason.
    static func open(_ name: String, candidates: [String], global: Bool = false) throws(CUDAError) -> DynamicLibrary {
        var tried: [String] = []
        for candidate in candidates {
            let flags = RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL)
            if let handle = dlopen(candidate, flags) {
                return DynamicLibrary(handle: handle, path: candidate, name: name)
            }
            let reason = dlerror().map { String(cString: $0) } ?? "unknown error"
            tried.append(candidate.hasPrefix("/") && !fileExists(candidate) ? "\(candidate): no such file" : reason)
        }
        throw .libraryNotFound(library: name, tried: tried)
    }

    /// Opens `path` with `RTLD_GLOBAL` if it exists, ignoring failure (for helper libraries such as NVRTC's builtins).
    static func preload(_ path: String) {
        if fileExists(path) { _ = dlopen(path, RTLD_NOW | RTLD_GLOBAL) }
    }

    /// A function pointer of type `T` (a `@convention(c)` function type).
    func symbol<T>(_ symbol: String, as type: T.Type = T.self) throws(CUDAError) -> T {
        guard let pointer = dlsym(handle, symbol) else { throw .symbolMissing(library: path, symbol: symbol) }
        return unsafeBitCast(pointer, to: T.self)
    }

    /// The first of `symbols` that exists (for functions renamed across versions, like `_v2` variants).
    func symbol<T>(anyOf symbols: [String], as type: T.Type = T.self) throws(CUDAError) -> T {
        for name in symbols {
            if let pointer = dlsym(handle, name) { return unsafeBitCast(pointer, to: T.self) }
        }
        throw .symbolMissing(library: path, symbol: symbols.joined(separator: " or "))
    }

    func optionalSymbol<T>(_ symbol: String, as type: T.Type = T.self) -> T? {
        dlsym(handle, symbol).map { unsafeBitCast($0, to: T.self) }
    }

    /// The folder the loader took a library named `fileName...` from, read from `/proc/self/maps`.
    static func loadedDirectory(of fileName: String) -> String? {
        guard let file = fopen("/proc/self/maps", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard let start = text.firstIndex(of: "/") else { continue }
            let path = text[start...].trimmingCharacters(in: "\n")
            guard let slash = path.lastIndex(of: "/"), path[path.index(after: slash)...].hasPrefix(fileName) else { continue }
            return String(path[..<slash])
        }
        return nil
    }
}

extension Substring {
    func trimmingCharacters(in character: Character) -> String {
        var text = self
        while text.last == character { text = text.dropLast() }
        return String(text)
    }
}

func fileExists(_ path: String) -> Bool {
    access(path, F_OK) == 0
}

func environment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    let text = String(cString: value)
    return text.isEmpty ? nil : text
}

/// Paths matching a shell pattern, sorted.
func globPaths(_ pattern: String) -> [String] {
    var result = glob_t()
    defer { globfree(&result) }
    guard glob(pattern, 0, nil, &result) == 0 else { return [] }
    var paths: [String] = []
    for index in 0..<Int(result.gl_pathc) {
        if let path = result.gl_pathv[index] { paths.append(String(cString: path)) }
    }
    return paths.sorted()
}

/// Where CUDA libraries usually live: the toolkit, the distribution's library folder, and the `nvidia-*`
/// pip wheels in any Python installation (`nvidia/cu13/lib`, `nvidia/<component>/lib`).
enum LibrarySearch {
    static func pythonWheelDirectories(components: [String]) -> [String] {
        var roots = ["/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
                     "/usr/lib/python3/dist-packages", "/usr/lib/python3*/site-packages",
                     "/opt/*/lib/python3*/site-packages", "/opt/*/.venv/lib/python3*/site-packages",
                     "/root/.pyenv/versions/*/lib/python3*/site-packages"]
        if let home = environment("HOME") {
            roots.append(home + "/.local/lib/python3*/site-packages")
            roots.append(home + "/.pyenv/versions/*/lib/python3*/site-packages")
        }
        if let venv = environment("VIRTUAL_ENV") { roots.insert(venv + "/lib/python3*/site-packages", at: 0) }
        if let conda = environment("CONDA_PREFIX") { roots.insert(conda + "/lib/python3*/site-packages", at: 0) }
        var directories: [String] = []
        for root in roots {
            for component in components {
                directories += globPaths("\(root)/nvidia/\(component)/lib")
            }
        }
        return directories
    }

    static let toolkitDirectories = [
        "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/local/cuda/targets/sbsa-linux/lib",
    ]

    /// Files in `directory` whose names start with `prefix` (e.g. `libnvrtc.so.`), newest version first.
    static func versionedFiles(in directory: String, prefix: String) -> [String] {
        globPaths("\(directory)/\(prefix)*").sorted { compareVersions($0, $1) > 0 }
    }

    /// Orders `libx.so.13.0.88` after `libx.so.12.9` by comparing the numeric suffixes.
    static func compareVersions(_ a: String, _ b: String) -> Int {
        func numbers(_ s: String) -> [Int] { s.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) } }
        let (x, y) = (numbers(a), numbers(b))
        for (p, q) in zip(x, y) where p != q { return p < q ? -1 : 1 }
        return x.count == y.count ? 0 : (x.count < y.count ? -1 : 1)
    }
}
