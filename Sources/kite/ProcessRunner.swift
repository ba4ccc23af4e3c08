#if canImport(Glibc)
import Glibc
#endif

/// Runs a program and captures its standard output (used for baselines measured in the same run).
enum ProcessRunner {
    struct Result {
        var status: Int32
        var output: String
    }

    /// Runs `arguments[0]` found on PATH with `environment` added; nil if it cannot be started.
    static func run(_ arguments: [String], environment: [String: String] = [:]) -> Result? {
        var pipe: [Int32] = [0, 0]
        guard pipe.withUnsafeMutableBufferPointer({ Glibc.pipe($0.baseAddress!) }) == 0 else { return nil }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipe[1], 1)
        posix_spawn_file_actions_addclose(&actions, pipe[0])

        var inherited: [String] = []
        var index = 0
        while let entry = environ[index] {
            inherited.append(String(cString: entry))
            index += 1
        }
        let overridden = Set(environment.keys)
        let variables = inherited.filter { !overridden.contains(String($0.prefix { $0 != "=" })) } + environment.map { "\($0.key)=\($0.value)" }
        let cArguments = arguments.map { strdup($0) } + [nil]
        let cEnvironment = variables.map { strdup($0) } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid = pid_t()
        let spawned = posix_spawnp(&pid, arguments[0], &actions, nil, cArguments, cEnvironment)
        close(pipe[1])
        guard spawned == 0 else {
            close(pipe[0])
            return nil
        }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(pipe[0], $0.baseAddress, $0.count) }
            if count <= 0 { break }
            output.append(contentsOf: buffer[0..<count])
        }
        close(pipe[0])
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let exitCode = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return Result(status: exitCode, output: String(decoding: output, as: UTF8.self))
    }
}
