extension Duration {
    /// The whole duration in nanoseconds (what swift-metrics' `Timer.recordNanoseconds` takes).
    public var totalNanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }

    /// The whole duration in seconds, as Foundation's time intervals count it.
    public var totalSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
