#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file; unmapped when the last reference goes.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawBufferPointer

    public init(path: String) throws {
        self.path = path
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw ModelError.io(path: path, detail: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw ModelError.io(path: path, detail: "cannot stat: \(String(cString: strerror(errno)))") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw ModelError.io(path: path, detail: "not a regular file") }
        let size = Int(info.st_size)
        guard size > 0 else { throw ModelError.malformed(path: path, detail: "file is empty") }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), address != MAP_FAILED else {
            throw ModelError.io(path: path, detail: "cannot map \(size) bytes: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

/// Small whole-file reads and atomic writes.
public enum FileText {
    public static func read(_ path: String) throws -> String {
        let bytes = try readBytes(path)
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func readBytes(_ path: String) throws -> [UInt8] {
        guard let file = fopen(path, "rb") else { throw ModelError.io(path: path, detail: "cannot open: \(String(cString: strerror(errno)))") }
        defer { fclose(file) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if count > 0 { result.append(contentsOf: buffer[0..<count]) }
            if count < buffer.count {
                if ferror(file) != 0 { throw ModelError.io(path: path, detail: "read failed: \(String(cString: strerror(errno)))") }
                return result
            }
        }
    }

    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Writes `chunks` to `path` through a temporary file in the same directory, flushed and renamed,
    /// so a reader never sees a partial file.
    public static func writeAtomically(_ path: String, chunks: [UnsafeRawBufferPointer]) throws {
        let temporary = path + ".partial-\(getpid())"
        guard let file = fopen(temporary, "wb") else { throw ModelError.io(path: temporary, detail: "cannot create: \(String(cString: strerror(errno)))") }
        for chunk in chunks where chunk.count > 0 {
            if fwrite(chunk.baseAddress, 1, chunk.count, file) != chunk.count {
                let reason = String(cString: strerror(errno))
                fclose(file)
                unlink(temporary)
                throw ModelError.io(path: temporary, detail: "write failed: \(reason)")
            }
        }
        let flushed = fflush(file) == 0 && fsync(fileno(file)) == 0
        fclose(file)
        guard flushed else {
            unlink(temporary)
            throw ModelError.io(path: temporary, detail: "flush failed: \(String(cString: strerror(errno)))")
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw ModelError.io(path: path, detail: "rename failed: \(String(cString: strerror(errno)))")
        }
    }

    public static func writeAtomically(_ path: String, text: String) throws {
        var bytes = Array(text.utf8)
        try bytes.withUnsafeMutableBytes { (buffer) throws in
            try writeAtomically(path, chunks: [UnsafeRawBufferPointer(buffer)])
        }
    }

    /// Deletes a file or a directory tree; a missing path is not an error.
    public static func removeTree(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            guard let directory = opendir(path) else { throw ModelError.io(path: path, detail: "cannot list: \(String(cString: strerror(errno)))") }
            var children: [String] = []
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { children.append(name) }
            }
            closedir(directory)
            for child in children { try removeTree(path + "/" + child) }
            guard rmdir(path) == 0 else { throw ModelError.io(path: path, detail: "cannot remove: \(String(cString: strerror(errno)))") }
        } else if unlink(path) != 0 {
            throw ModelError.io(path: path, detail: "cannot remove: \(String(cString: strerror(errno)))")
        }
    }

    /// Names in a directory (not `.` or `..`), sorted.
    public static func list(_ path: String) throws -> [String] {
        guard let directory = opendir(path) else { throw ModelError.io(path: path, detail: "cannot list: \(String(cString: strerror(errno)))") }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Renames atomically (same file system).
    public static func move(_ source: String, to destination: String) throws {
        guard rename(source, destination) == 0 else {
            throw ModelError.io(path: source, detail: "cannot rename to \(destination): \(String(cString: strerror(errno)))")
        }
    }

    /// Creates a directory and its parents (like `mkdir -p`).
    public static func makeDirectory(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component + "/"
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw ModelError.io(path: prefix, detail: "cannot create directory: \(String(cString: strerror(errno)))")
            }
        }
    }
}
