import KiteTensor

/// One comparison of a CUDA result against the CPU reference.
public struct ParityResult: Sendable {
    /// What was compared, e.g. "rmsNorm backward dx".
    public var name: String
    /// `fp32` or `bf16` (the CUDA backend's precision).
    public var precision: String
    /// Largest |cuda - cpu| over the elements.
    public var maxAbsoluteError: Double
    /// ||cuda - cpu|| / ||cpu||, the figure the tolerance applies to.
    public var relativeError: Double
    public var tolerance: Double
    /// Set when the operation threw or produced a non-finite value where the reference is finite.
    public var failure: String?

    public var passed: Bool { failure == nil && relativeError <= tolerance }

    public init(name: String, precision: String, maxAbsoluteError: Double, relativeError: Double, tolerance: Double, failure: String?) {
        self.name = name
        self.precision = precision
        self.maxAbsoluteError = maxAbsoluteError
        self.relativeError = relativeError
        self.tolerance = tolerance
        self.failure = failure
    }

    /// Compares two equally long arrays: normwise relative error and max absolute error.
    public static func compare(_ name: String, precision: String, cuda: [Float], cpu: [Float], tolerance: Double) -> ParityResult {
        guard cuda.count == cpu.count else {
            return ParityResult(name: name, precision: precision, maxAbsoluteError: .infinity, relativeError: .infinity, tolerance: tolerance,
                                failure: "\(cuda.count) values, reference has \(cpu.count)")
        }
        var difference = 0.0, norm = 0.0, maximum = 0.0
        var failure: String?
        for i in cuda.indices {
            let (x, y) = (Double(cuda[i]), Double(cpu[i]))
            if y.isNaN && x.isNaN { continue }
            if y.isInfinite && x == y { continue }
            if !x.isFinite && failure == nil {
                failure = "element \(i) is \(x), reference \(y)"
                continue
            }
            difference += (x - y) * (x - y)
            norm += y * y
            maximum = max(maximum, abs(x - y))
        }
        let relative = norm > 0 ? (difference / norm).squareRoot() : difference.squareRoot()
        return ParityResult(name: name, precision: precision, maxAbsoluteError: maximum, relativeError: relative, tolerance: tolerance, failure: failure)
    }

    /// Compares raw bytes (casts, fp8 quantisation): the error is the fraction of differing elements. In fp32
    /// results two NaNs count as equal whatever their sign and payload bits (the CPU's decoders drop a NaN's sign).
    public static func compareBits(_ name: String, precision: String, cuda: Tensor, cpu: Tensor) -> ParityResult {
        guard cuda.byteCount == cpu.byteCount, cuda.dtype == cpu.dtype else {
            return ParityResult(name: name, precision: precision, maxAbsoluteError: .infinity, relativeError: .infinity, tolerance: 0,
                                failure: "\(cuda) against reference \(cpu)")
        }
        let size = cuda.dtype.byteSize, count = cuda.count
        let a = cuda.rawPointer.assumingMemoryBound(to: UInt8.self), b = cpu.rawPointer.assumingMemoryBound(to: UInt8.self)
        var differing = 0
        for element in 0..<count {
            var same = true
            for byte in 0..<size where a[element * size + byte] != b[element * size + byte] { same = false }
            if !same && cuda.dtype == .f32 {
                let x = cuda.rawPointer.load(fromByteOffset: element * 4, as: Float.self)
                let y = cpu.rawPointer.load(fromByteOffset: element * 4, as: Float.self)
                same = x.isNaN && y.isNaN
            }
            if !same { differing += 1 }
        }
        return ParityResult(name: name, precision: precision, maxAbsoluteError: Double(differing), relativeError: Double(differing) / Double(max(count, 1)),
                            tolerance: 0, failure: nil)
    }

    public static func failed(_ name: String, precision: String, _ error: any Error) -> ParityResult {
        ParityResult(name: name, precision: precision, maxAbsoluteError: .nan, relativeError: .nan, tolerance: 0, failure: "\(error)")
    }
}

/// Formats parity results as a fixed-width table, one line per result.
public enum ParityTable {
    public static func render(_ results: [ParityResult]) -> String {
        var lines = ["result  precision  " + pad("check", 44) + pad("rel. error", 12) + pad("tolerance", 11) + "max abs error"]
        for result in results {
            let status = result.passed ? "PASS" : "FAIL"
            var line = pad(status, 8) + pad(result.precision, 11) + pad(result.name, 44)
            line += pad(scientific(result.relativeError), 12) + pad(scientific(result.tolerance), 11) + scientific(result.maxAbsoluteError)
            if let failure = result.failure { line += "  (\(failure.split(separator: "\n").first ?? ""))" }
            lines.append(line)
        }
        let failed = results.filter { !$0.passed }.count
        lines.append("\(results.count - failed) of \(results.count) checks passed")
        return lines.joined(separator: "\n")
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    /// `1.23e-05` style, or "0" / "nan" / "inf".
    public static func scientific(_ value: Double) -> String {
        if value == 0 { return "0" }
        if value.isNaN { return "nan" }
        if value.isInfinite { return "inf" }
        var exponent = 0
        var mantissa = abs(value)
        while mantissa >= 10 { mantissa /= 10; exponent += 1 }
        while mantissa < 1 { mantissa *= 10; exponent -= 1 }
        let rounded = (mantissa * 100).rounded() / 100
        let sign = value < 0 ? "-" : ""
        let digits = String(format2: rounded)
        return "\(sign)\(digits)e\(exponent < 0 ? "-" : "+")\(abs(exponent) < 10 ? "0" : "")\(abs(exponent))"
    }
}

extension String {
    /// Two decimals of a value in [1, 10).
    init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        self = "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
