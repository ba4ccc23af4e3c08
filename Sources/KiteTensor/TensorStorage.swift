#if canImport(Glibc)
import Glibc
#endif

/// A block of memory that one or more tensors view.
///
/// Host memory is 64-byte aligned so SIMD kernels can load whole cache lines. Device memory is owned by
/// the backend that allocated it; `address` then holds a device pointer that the host never dereferences.
public final class TensorStorage: @unchecked Sendable {
    /// Host pointer (CPU) or device pointer bits (accelerators).
    public let address: UnsafeMutableRawPointer
    public let byteCount: Int
    public let device: Device
    private let release: (@Sendable (UnsafeMutableRawPointer) -> Void)?
    /// Keeps alive whatever the memory belongs to (a memory-mapped file, say).
    private let owner: AnyObject?

    /// Allocates zeroed host memory. Large blocks come straight from the kernel as untouched zero pages,
    /// so a big cache that is never filled costs no physical memory.
    public convenience init(hostByteCount byteCount: Int) {
        self.init(hostByteCount: byteCount, zeroed: true)
    }

    /// Allocates host memory; with `zeroed: false` its contents are unspecified (for outputs a kernel
    /// overwrites entirely).
    public init(hostByteCount byteCount: Int, zeroed: Bool) {
        let rounded = max(64, (byteCount + 63) & ~63)
        if rounded >= TensorStorage.mappingThreshold,
            let mapped = mmap(nil, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), mapped != MAP_FAILED
        {
            self.address = mapped
            self.release = { munmap($0, rounded) }
        } else {
            let pointer = UnsafeMutableRawPointer.allocate(byteCount: rounded, alignment: 64)
            if zeroed { pointer.initializeMemory(as: UInt8.self, repeating: 0, count: rounded) }
            self.address = pointer
            self.release = { $0.deallocate() }
        }
        self.byteCount = byteCount
        self.device = .cpu
        self.owner = nil
    }

    static let mappingThreshold = 64 << 20

    /// Wraps memory allocated elsewhere; `release` runs when the last tensor viewing it is gone.
    public init(
        address: UnsafeMutableRawPointer, byteCount: Int, device: Device, owner: AnyObject? = nil,
        release: (@Sendable (UnsafeMutableRawPointer) -> Void)? = nil
    ) {
        self.address = address
        self.byteCount = byteCount
        self.device = device
        self.owner = owner
        self.release = release
    }

    deinit { release?(address) }
}
