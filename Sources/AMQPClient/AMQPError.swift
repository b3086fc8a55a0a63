/// A failure talking to a RabbitMQ broker, with a code and a human message.
public struct AMQPError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        fileprivate enum Value: String {
            case connect, login, socket, heartbeatTimeout, timeout, channelClosed, connectionClosed, protocolError, publishRejected
        }
        fileprivate let value: Value

        /// The TCP or TLS connection could not be made.
        public static let connect = Code(value: .connect)
        /// The broker refused the credentials or the virtual host.
        public static let login = Code(value: .login)
        /// Reading or writing the socket failed.
        public static let socket = Code(value: .socket)
        /// The broker sent nothing for two heartbeat intervals.
        public static let heartbeatTimeout = Code(value: .heartbeatTimeout)
        /// An operation did not complete in time.
        public static let timeout = Code(value: .timeout)
        /// The broker closed the channel (e.g. PRECONDITION_FAILED, NOT_FOUND).
        public static let channelClosed = Code(value: .channelClosed)
        /// The broker closed the connection.
        public static let connectionClosed = Code(value: .connectionClosed)
        /// Something the library or the broker did not expect.
        public static let protocolError = Code(value: .protocolError)
        /// The broker nacked a published message, or returned it as unroutable.
        public static let publishRejected = Code(value: .publishRejected)

        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String
    /// The AMQP reply code when the broker closed something (404 NOT_FOUND, 406 PRECONDITION_FAILED, ...).
    public var replyCode: UInt16?

    public init(_ code: Code, _ message: String, replyCode: UInt16? = nil) {
        self.code = code
        self.message = message
        self.replyCode = replyCode
    }

    public var description: String {
        "amqp \(code)\(replyCode.map { " \($0)" } ?? ""): \(message)"
    }
}
