import KiteJSON
import KiteModels
import KiteTensor

/// Writes synthetic tasks as jsonl, one `{"prompt": ..., "label": ..., "metadata": {"rm_type": ...}}` per line.
public enum SyntheticData {
    public static func write(task: SyntheticTask, count: Int, seed: UInt64, path: String) throws {
        var generator = SeededGenerator(seed: seed)
        var text = ""
        for _ in 0..<count {
            let (prompt, label) = task.make(using: &generator)
            let line: JSONValue = ["prompt": .string(prompt), "label": .string(label), "metadata": ["rm_type": .string(task.rawValue)]]
            text += line.serialized(.compact) + "\n"
        }
        try FileText.writeAtomically(path, text: text)
    }
}
