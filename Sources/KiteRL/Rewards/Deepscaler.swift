import KiteJSON

/// slime's `get_deepscaler_rule_based_reward` (`rm_hub/deepscaler.py`): the solution is the text after
/// the last `</think>` (else after the first `###Response`; with neither, reward 0), its last `\boxed{}`
/// is the answer (none: 0), and it is right (1) when Hendrycks normalisation or sympy equality says it
/// equals the label (whose own `\boxed{}` is extracted when it has one).
public func deepscalerReward(response: String, label: JSONValue?) throws(RLError) -> Int {
    let solution: String
    if response.contains("</think>") {
        solution = PythonString.split(response, "</think>").last ?? ""
    } else if response.contains("###Response") {
        solution = PythonString.split(response, "###Response")[1]
    } else {
        return 0
    }
    guard let answer = MathAnswer.extractAnswer(solution) else { return 0 }
    guard let label else { throw .invalidLabel(rewardType: "deepscaler", message: "missing (expected a string or a number)") }
    if label == .string("") { return 0 }
    var truth: String
    switch label {
    case .string, .int, .double, .bool: truth = pythonStr(label)
    default: throw .invalidLabel(rewardType: "deepscaler", message: "expected a string or a number, found \(label.typeName)")
    }
    if truth.contains("\\boxed") {
        guard let extracted = MathAnswer.extractAnswer(truth) else { return 0 }
        truth = extracted
    }
    return MathAnswer.gradeMathd(given: answer, groundTruth: truth) || MathAnswer.gradeSympy(given: answer, groundTruth: truth) ? 1 : 0
}

/// Python's `str(value)` for the JSON values labels and choices hold.
func pythonStr(_ value: JSONValue) -> String {
    switch value {
    case .string(let s): return s
    case .int(let i): return String(i)
    case .double(let d): return d.isNaN ? "nan" : d.isInfinite ? (d < 0 ? "-inf" : "inf") : JSONValue.pythonRepr(d)
    case .bool(let b): return b ? "True" : "False"
    case .null: return "None"
    case .array, .object: return value.serialized(JSONWriteOptions(ensureASCII: false))
    }
}

/// Python truthiness of a JSON value.
func pythonTruthy(_ value: JSONValue?) -> Bool {
    switch value {
    case nil, .null?: return false
    case .bool(let b)?: return b
    case .int(let i)?: return i != 0
    case .double(let d)?: return d != 0
    case .string(let s)?: return !s.isEmpty
    case .array(let a)?: return !a.isEmpty
    case .object(let o)?: return !o.isEmpty
    }
}
