#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Read-only bytes that live as long as this object: a private read-only memory mapping of a file,
/// or a copy of an in-memory buffer.
final class MappedBytes: @unchecked Sendable {
    // Safe to share: nothing writes to the bytes after init, and they are released only in deinit.
    let bytes: UnsafeRawBufferPointer
    private let isMapped: Bool

    /// Maps the whole file at `path` read-only. An empty file maps to an empty buffer
    /// (mmap rejects a zero length).
    init(mapping path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw Self.systemError("cannot open", path: path) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw Self.systemError("cannot stat", path: path) }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw GGUFError(.io, path: path, "is not a regular file")
        }
        let size = Int(status.st_size)
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            isMapped = false
            return
        }
        let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
        guard let address, address != MAP_FAILED else { throw Self.systemError("cannot mmap", path: path) }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
        isMapped = true
    }

    /// Copies `source` into memory owned by this object (for files built in memory, and tests).
    init(copying source: [UInt8]) {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: source.count, alignment: 64)
        storage.copyBytes(from: source)
        bytes = UnsafeRawBufferPointer(storage)
        isMapped = false
    }

    deinit {
        guard let base = bytes.baseAddress else { return }
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        } else {
            base.deallocate()
        }
    }

    private static func systemError(_ action: String, path: String) -> GGUFError {
        let code = errno
        let reason = strerror(code).map { String(cString: $0) } ?? "errno \(code)"
        return GGUFError(.io, path: path, "\(action): \(reason)")
    }
}
