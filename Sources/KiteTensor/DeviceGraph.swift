/// Device work recorded once and replayed with one launch (a CUDA graph). Replays read whatever the
/// captured input buffers hold at launch time and write the captured output buffers.
public protocol DeviceGraph: AnyObject, Sendable {
    /// Queues one replay on the backend's stream.
    func launch() throws
}
