import NIOCore
import Synchronization

/// Tells a running request that its client has gone. Hummingbird allows remote half-closure, so a client
/// that disconnects while its answer is still being computed only half-closes the channel: nothing reads
/// or writes it until the answer is ready, and the engine would compute it for nobody. This handler sits
/// first in the connection's pipeline and reports the end of input (or of the connection) at once.
final class ConnectionWatcher: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = ByteBuffer

    private let state = Mutex<State>(State())

    private struct State {
        var ended = false
        var next = 0
        var callbacks: [Int: @Sendable () -> Void] = [:]
    }

    /// The connection's watcher, installed on first use.
    static func watching(_ channel: any Channel) async -> ConnectionWatcher? {
        if let existing = try? await channel.pipeline.handler(type: ConnectionWatcher.self).get() { return existing }
        let watcher = ConnectionWatcher()
        guard (try? await channel.pipeline.addHandler(watcher, position: .first).get()) != nil else { return nil }
        return watcher
    }

    /// Calls `callback` once when the client's side ends (at once if it already has); returns a token for `cancel`.
    func onEnd(_ callback: @escaping @Sendable () -> Void) -> Int? {
        let token: Int? = state.withLock { state in
            guard !state.ended else { return nil }
            state.next += 1
            state.callbacks[state.next] = callback
            return state.next
        }
        if token == nil { callback() }
        return token
    }

    func cancel(_ token: Int) {
        _ = state.withLock { $0.callbacks.removeValue(forKey: token) }
    }

    private func end() {
        let callbacks = state.withLock { state in
            state.ended = true
            defer { state.callbacks = [:] }
            return Array(state.callbacks.values)
        }
        for callback in callbacks { callback() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed? = event as? ChannelEvent { end() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        end()
        context.fireChannelInactive()
    }
}
