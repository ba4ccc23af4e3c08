import ArgumentParser

@main
struct Kite: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kite",
        abstract: "Reinforcement-learning post-training for language models.",
        subcommands: [DemoCommand.self, TrainCommand.self, Serve.self, RouterCommand.self, Generate.self, DataCommand.self, Logprobs.self, Convert.self, Bench.self, CUDA.self]
    )
}
