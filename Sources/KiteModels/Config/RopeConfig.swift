import KiteJSON
#if canImport(Glibc)
import Glibc
#endif

/// Rotary position embedding parameters, from transformers 5's `rope_parameters` or the older
/// `rope_theta` + `rope_scaling` fields. The inverse frequencies are computed the way transformers'
/// `modeling_rope_utils` computes them, in fp32, so that cos/sin tables agree with it.
public struct RopeConfig: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case `default`, linear, llama3, yarn
    }

    public var kind: Kind
    public var theta: Double
    public var factor: Double
    public var lowFrequencyFactor: Double
    public var highFrequencyFactor: Double
    public var originalMaxPositionEmbeddings: Int
    /// YaRN's multiplier of cos and sin; nil lets it follow from `factor` (and `mscale`).
    public var attentionFactor: Double?
    public var betaFast: Double
    public var betaSlow: Double
    public var mscale: Double?
    public var mscaleAllDim: Double?
    public var truncate: Bool

    public init(kind: Kind = .default, theta: Double = 10_000, factor: Double = 1, originalMaxPositionEmbeddings: Int = 2048) {
        self.kind = kind
        self.theta = theta
        self.factor = factor
        self.lowFrequencyFactor = 1
        self.highFrequencyFactor = 4
        self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
        self.attentionFactor = nil
        self.betaFast = 32
        self.betaSlow = 1
        self.mscale = nil
        self.mscaleAllDim = nil
        self.truncate = true
    }

    init(config: JSONObject, maxPositionEmbeddings: Int, source: String) throws {
        let key: String
        let parameters: JSONObject
        if let modern = config["rope_parameters"]?.objectValue {
            key = "rope_parameters"
            parameters = modern
        } else if let legacy = config["rope_scaling"]?.objectValue {
            key = "rope_scaling"
            parameters = legacy
        } else {
            key = "rope_parameters"
            parameters = JSONObject()
        }
        func number(_ name: String) throws -> Double? {
            do { return try parameters.double(name, source: source, path: key + ".") } catch {
                throw ModelError.config(path: source, field: error.field, detail: error.message)
            }
        }
        let typeName = parameters["rope_type"]?.stringValue ?? parameters["type"]?.stringValue ?? "default"
        guard let kind = Kind(rawValue: typeName) else {
            throw ModelError.config(path: source, field: key + ".rope_type", detail: "unsupported RoPE type '\(typeName)'; supported: default, linear, llama3, yarn")
        }
        self.init(kind: kind)
        let topLevelTheta: Double?
        do { topLevelTheta = try config.double("rope_theta", source: source) } catch {
            throw ModelError.config(path: source, field: error.field, detail: error.message)
        }
        theta = try number("rope_theta") ?? topLevelTheta ?? 10_000
        guard theta > 1 else { throw ModelError.config(path: source, field: key + ".rope_theta", detail: "must be greater than 1, got \(theta)") }
        if let partial = try number("partial_rotary_factor") ?? config["partial_rotary_factor"]?.doubleValue, partial != 1 {
            throw ModelError.config(path: source, field: key + ".partial_rotary_factor", detail: "partial rotary embeddings are not supported, got \(partial)")
        }
        originalMaxPositionEmbeddings = Int(try number("original_max_position_embeddings") ?? Double(maxPositionEmbeddings))
        switch kind {
        case .default:
            break
        case .linear:
            factor = try requiredFactor(number("factor"), key: key, source: source)
        case .llama3:
            factor = try requiredFactor(number("factor"), key: key, source: source)
            guard let low = try number("low_freq_factor"), let high = try number("high_freq_factor"), high != low else {
                throw ModelError.config(path: source, field: key + ".low_freq_factor", detail: "llama3 RoPE needs low_freq_factor and high_freq_factor, and they must differ")
            }
            lowFrequencyFactor = low
            highFrequencyFactor = high
        case .yarn:
            factor = try number("factor") ?? Double(maxPositionEmbeddings) / Double(max(originalMaxPositionEmbeddings, 1))
            attentionFactor = try number("attention_factor")
            // transformers treats 0 or null like absent (`get(...) or 32`).
            betaFast = (try number("beta_fast")).flatMap { $0 == 0 ? nil : $0 } ?? 32
            betaSlow = (try number("beta_slow")).flatMap { $0 == 0 ? nil : $0 } ?? 1
            mscale = try number("mscale")
            mscaleAllDim = try number("mscale_all_dim")
            truncate = parameters["truncate"]?.boolValue ?? true
        }
    }

    private func requiredFactor(_ value: Double?, key: String, source: String) throws -> Double {
        guard let value, value > 0 else {
            throw ModelError.config(path: source, field: key + ".factor", detail: "\(kind.rawValue) RoPE needs a positive factor")
        }
        return value
    }

    /// The multiplier of cos and sin (1 except for YaRN).
    public var attentionScaling: Float {
        guard kind == .yarn else { return 1 }
        if let attentionFactor { return Float(attentionFactor) }
        if let mscale, let mscaleAllDim, mscale != 0, mscaleAllDim != 0 {
            return Float(Self.yarnScale(factor, mscale) / Self.yarnScale(factor, mscaleAllDim))
        }
        return Float(Self.yarnScale(factor, 1))
    }

    /// YaRN's `get_mscale`: `0.1 * m * ln(scale) + 1`, or 1 when the context is not stretched.
    static func yarnScale(_ scale: Double, _ m: Double) -> Double { scale <= 1 ? 1 : 0.1 * m * log(scale) + 1 }

    /// Inverse frequencies for a head of dimension `dim` (`dim / 2` values).
    public func inverseFrequencies(dim: Int) -> [Float] {
        let half = dim / 2
        let base = Float(theta)
        // base ** (2i / dim) in fp32, as torch computes it.
        let powers = (0..<half).map { powf(base, Float(2 * $0) / Float(dim)) }
        switch kind {
        case .default:
            return powers.map { 1 / $0 }
        case .linear:
            return powers.map { 1 / $0 / Float(factor) }
        case .llama3:
            let inverse = powers.map { 1 / $0 }
            let oldContext = Float(originalMaxPositionEmbeddings)
            let (lowFactor, highFactor, scaling) = (Float(lowFrequencyFactor), Float(highFrequencyFactor), Float(factor))
            let lowWavelength = oldContext / lowFactor, highWavelength = oldContext / highFactor
            return inverse.map { frequency in
                let wavelength = 2 * Float.pi / frequency
                let scaled = wavelength > lowWavelength ? frequency / scaling : frequency
                if wavelength < highWavelength || wavelength > lowWavelength { return scaled }
                let smooth = (oldContext / wavelength - lowFactor) / (highFactor - lowFactor)
                return (1 - smooth) * scaled / scaling + smooth * scaled
            }
        case .yarn:
            func correctionDimension(_ rotations: Double) -> Double {
                Double(dim) * log(Double(originalMaxPositionEmbeddings) / (rotations * 2 * Double.pi)) / (2 * log(theta))
            }
            var low = correctionDimension(betaFast), high = correctionDimension(betaSlow)
            if truncate {
                low = low.rounded(.down)
                high = high.rounded(.up)
            }
            low = max(low, 0)
            high = min(high, Double(dim - 1))
            if low == high { high += 0.001 }
            return (0..<half).map { i in
                let ramp = min(max((Float(i) - Float(low)) / Float(high - low), 0), 1)
                let extrapolationFactor = 1 - ramp
                let extrapolation = 1 / powers[i], interpolation = 1 / (Float(factor) * powers[i])
                return interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor
            }
        }
    }
}
