extension EventProcessor {
    /// What this processor would do with a message now, without touching a store: for dead-letter listings and
    /// replays (`applies`, `skipped`, `refused: <reason>`), with the event type when it can be read (from the format,
    /// or the body's top-level `type` when the message does not decode).
    public func assess(_ message: IncomingMessage) -> (eventType: String?, verdict: String) {
        switch prepare(message) {
        case let .event(event):
            return (event.type.rawValue, "applies")
        case let .skipped(type):
            return (type.rawValue, "skipped (nothing mapped to \(type.rawValue))")
        case let .rejected(error):
            var type: String?
            if case let .string(text)? = (try? decoder.parser.parse(message.body))?["type"] { type = text }
            return (type, "refused: \(error)")
        }
    }
}
