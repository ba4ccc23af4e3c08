/// The parameters of one kernel launch, in declaration order.
///
/// `cuLaunchKernel` takes an array of pointers, one per parameter, each pointing at the parameter's value.
/// Every value here gets its own 8-byte slot; a 4-byte `int` or `float` sits in the slot's low half, which
/// is where a little-endian read of 4 bytes finds it.
struct KernelArguments {
    private(set) var slots: [UInt64] = []

    init() {}

    mutating func add(_ pointer: CUDevicePointer) { slots.append(pointer) }
    mutating func add(_ value: Int32) { slots.append(UInt64(UInt32(bitPattern: value))) }
    mutating func add(_ value: Float) { slots.append(UInt64(value.bitPattern)) }
    /// A C `long long` (`i64`).
    mutating func add(int64 value: Int) { slots.append(UInt64(bitPattern: Int64(value))) }
    /// A C `int`; values are checked to fit by the caller's shape validation.
    mutating func add(int value: Int) { add(Int32(truncatingIfNeeded: value)) }

    /// Calls `body` with the pointer array `cuLaunchKernel` expects.
    func withParameterArray<R>(_ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>?) throws(CUDAError) -> R) throws(CUDAError) -> R {
        var storage = slots
        let count = storage.count
        return try storage.withUnsafeMutableBufferPointer { (values: inout UnsafeMutableBufferPointer<UInt64>) throws(CUDAError) -> R in
            let pointers = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: max(count, 1))
            defer { pointers.deallocate() }
            for index in 0..<count { pointers[index] = UnsafeMutableRawPointer(values.baseAddress! + index) }
            return try body(pointers)
        }
    }
}

/// A grid and block shape.
struct LaunchShape {
    var grid: (x: Int, y: Int, z: Int)
    var block: (x: Int, y: Int, z: Int)
    var sharedBytes: Int = 0

    init(grid: Int, block: Int, sharedBytes: Int = 0) {
        self.grid = (grid, 1, 1)
        self.block = (block, 1, 1)
        self.sharedBytes = sharedBytes
    }

    init(grid: (Int, Int, Int), block: (Int, Int, Int), sharedBytes: Int = 0) {
        self.grid = (grid.0, grid.1, grid.2)
        self.block = (block.0, block.1, block.2)
        self.sharedBytes = sharedBytes
    }
}
