import CRabbitMQ
import Foundation

/// One connection to a RabbitMQ broker through librabbitmq.
///
/// Not thread-safe and not `Sendable`: librabbitmq connections are used from one thread. Every call blocks, so the
/// owner runs it on a thread of its own, never on Swift's cooperative pool. librabbitmq does no background work:
/// heartbeats are sent and checked only inside calls, so the owner must call `nextEvent` regularly (at most a
/// quarter of the heartbeat interval apart).
public final class AMQPConnection {
    let state: amqp_connection_state_t
    public let endpoint: AMQPEndpoint
    public let heartbeatSeconds: Int
    private var isOpen = false
    private var openChannels: Set<UInt16> = []
    /// Consumer tags, exchanges, routing keys and properties that repeat from delivery to delivery.
    private var repeatedStrings = RepeatedStrings()

    /// Connects, logs in and negotiates the heartbeat.
    public init(endpoint: AMQPEndpoint, heartbeatSeconds: Int = 30, connectionName: String = "crm-ingest",
                connectTimeout: Duration = .seconds(10)) throws(AMQPError) {
        guard let state = amqp_new_connection() else { throw AMQPError(.connect, "out of memory") }
        self.state = state
        self.endpoint = endpoint
        self.heartbeatSeconds = heartbeatSeconds
        // If this throws, deinit still runs (every stored property is set) and frees `state`: no cleanup here.
        try open(connectionName: connectionName, connectTimeout: connectTimeout)
        isOpen = true
    }

    deinit {
        if isOpen { _ = amqp_connection_close(state, AMQP_REPLY_SUCCESS) }
        amqp_destroy_connection(state)
    }

    private func open(connectionName: String, connectTimeout: Duration) throws(AMQPError) {
        let socket: OpaquePointer?
        if let tls = endpoint.tls {
            socket = amqp_ssl_socket_new(state)
            guard let socket else { throw AMQPError(.connect, "cannot create a TLS socket") }
            if let caFile = tls.caFile, amqp_ssl_socket_set_cacert(socket, caFile) != AMQP_STATUS_OK.rawValue {
                throw AMQPError(.connect, "cannot read CA file \(caFile)")
            }
            if let certFile = tls.certFile, let keyFile = tls.keyFile,
               amqp_ssl_socket_set_key(socket, certFile, keyFile) != AMQP_STATUS_OK.rawValue {
                throw AMQPError(.connect, "cannot read client certificate \(certFile) or key \(keyFile)")
            }
            amqp_ssl_socket_set_verify_peer(socket, tls.verifyPeer ? 1 : 0)
            amqp_ssl_socket_set_verify_hostname(socket, tls.verifyHostname ? 1 : 0)
        } else {
            socket = amqp_tcp_socket_new(state)
            guard socket != nil else { throw AMQPError(.connect, "cannot create a socket") }
        }
        var timeout = timeval(duration: connectTimeout)
        let status = amqp_socket_open_noblock(socket, endpoint.host, Int32(endpoint.port), &timeout)
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(.connect, "cannot connect to \(endpoint.host):\(endpoint.port): \(String(cString: amqp_error_string2(status)))")
        }
        let arena = AMQPArena()
        // `consumer_cancel_notify`: without it the broker removes a consumer whose queue was deleted (or whose
        // node went down) without telling the client, and consumption stops silently on a healthy connection.
        // librabbitmq merges this capabilities table into its own.
        var properties = arena.table([
            "connection_name": .string(connectionName), "product": .string("crm-ingest"),
            "capabilities": .table(["consumer_cancel_notify": .bool(true)]),
        ])
        let reply = CRabbitMQ_login_plain_with_properties(
            state, endpoint.virtualHost, 0, 131_072, Int32(heartbeatSeconds), &properties, endpoint.user, endpoint.password
        )
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            let error = Self.error(from: reply, doing: "log in to \(endpoint.maskedURL)")
            throw AMQPError(error.code == .socket || error.code == .connectionClosed ? .login : error.code, error.message, replyCode: error.replyCode)
        }
    }

    /// Closes the connection politely; the object is unusable afterwards.
    public func close() {
        guard isOpen else { return }
        isOpen = false
        _ = amqp_connection_close(state, AMQP_REPLY_SUCCESS)
    }

    /// The heartbeat interval in force, in seconds: the broker's when it asked for a shorter one; 0 when off.
    public var negotiatedHeartbeatSeconds: Int { Int(amqp_get_heartbeat(state)) }

    /// The socket, for `poll`.
    public var socketDescriptor: Int32 { amqp_get_sockfd(state) }

    /// Whether frames or bytes are already read and waiting, so `poll` on the socket would miss them.
    public var hasBufferedInput: Bool { amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0 }

    // MARK: Channels and topology

    public func openChannel(_ channel: UInt16) throws(AMQPError) {
        guard amqp_channel_open(state, channel) != nil else { throw lastError(doing: "open channel \(channel)") }
        openChannels.insert(channel)
    }

    public func closeChannel(_ channel: UInt16) {
        guard openChannels.remove(channel) != nil else { return }
        _ = amqp_channel_close(state, channel, AMQP_REPLY_SUCCESS)
    }

    public func setPrefetch(_ count: UInt16, channel: UInt16) throws(AMQPError) {
        guard amqp_basic_qos(state, channel, 0, count, 0) != nil else { throw lastError(doing: "set prefetch \(count)") }
    }

    /// Declares a queue; returns its message and consumer counts. `passive` only checks it exists.
    @discardableResult
    public func declareQueue(
        _ name: String, channel: UInt16, passive: Bool = false, durable: Bool = true, exclusive: Bool = false,
        autoDelete: Bool = false, arguments: AMQPTable = AMQPTable()
    ) throws(AMQPError) -> (messages: Int, consumers: Int) {
        let arena = AMQPArena()
        guard let ok = amqp_queue_declare(
            state, channel, arena.bytes(name), passive ? 1 : 0, durable ? 1 : 0, exclusive ? 1 : 0, autoDelete ? 1 : 0,
            arena.table(arguments)
        ) else { throw lastError(doing: "declare queue \(name)") }
        return (Int(ok.pointee.message_count), Int(ok.pointee.consumer_count))
    }

    public func declareExchange(_ name: String, type: String, channel: UInt16, durable: Bool = true, arguments: AMQPTable = AMQPTable()) throws(AMQPError) {
        let arena = AMQPArena()
        guard amqp_exchange_declare(state, channel, arena.bytes(name), arena.bytes(type), 0, durable ? 1 : 0, 0, 0, arena.table(arguments)) != nil else {
            throw lastError(doing: "declare exchange \(name)")
        }
    }

    public func bindQueue(_ queue: String, exchange: String, routingKey: String, channel: UInt16, arguments: AMQPTable = AMQPTable()) throws(AMQPError) {
        let arena = AMQPArena()
        guard amqp_queue_bind(state, channel, arena.bytes(queue), arena.bytes(exchange), arena.bytes(routingKey), arena.table(arguments)) != nil else {
            throw lastError(doing: "bind queue \(queue) to \(exchange)")
        }
    }

    @discardableResult
    public func purgeQueue(_ name: String, channel: UInt16) throws(AMQPError) -> Int {
        let arena = AMQPArena()
        guard let ok = amqp_queue_purge(state, channel, arena.bytes(name)) else { throw lastError(doing: "purge queue \(name)") }
        return Int(ok.pointee.message_count)
    }

    public func deleteQueue(_ name: String, channel: UInt16) throws(AMQPError) {
        let arena = AMQPArena()
        guard amqp_queue_delete(state, channel, arena.bytes(name), 0, 0) != nil else { throw lastError(doing: "delete queue \(name)") }
    }

    // MARK: Consuming

    /// Starts a consumer; returns its tag.
    public func consume(queue: String, channel: UInt16, consumerTag: String = "", exclusive: Bool = false, arguments: AMQPTable = AMQPTable()) throws(AMQPError) -> String {
        let arena = AMQPArena()
        guard let ok = amqp_basic_consume(state, channel, arena.bytes(queue), arena.bytes(consumerTag), 0, 0, exclusive ? 1 : 0, arena.table(arguments)) else {
            throw lastError(doing: "consume from \(queue)")
        }
        return String(amqpBytes: ok.pointee.consumer_tag)
    }

    /// Stops a consumer. Deliveries already on the wire still arrive and must be acked or rejected.
    public func cancel(consumerTag: String, channel: UInt16) throws(AMQPError) {
        let arena = AMQPArena()
        guard amqp_basic_cancel(state, channel, arena.bytes(consumerTag)) != nil else { throw lastError(doing: "cancel consumer \(consumerTag)") }
    }

    /// Asks the broker to stop the consumer without waiting for its answer: deliveries already sent keep arriving
    /// through `nextEvent`, then `.consumerCancelOk` says there will be no more.
    public func requestCancel(consumerTag: String, channel: UInt16) throws(AMQPError) {
        let arena = AMQPArena()
        var cancel = amqp_basic_cancel_t(consumer_tag: arena.bytes(consumerTag), nowait: 0)
        let status = amqp_send_method(state, channel, AMQPMethod.basicCancel, &cancel)
        guard status == AMQP_STATUS_OK.rawValue else { throw Self.statusError(status, doing: "cancel consumer \(consumerTag)") }
    }

    /// Waits up to `timeout` (nil: forever, zero: only what is already buffered) for the next delivery or other
    /// asynchronous event. Returns nil when the time is up. Sends and checks heartbeats while it waits.
    public func nextEvent(timeout: Duration?) throws(AMQPError) -> AMQPEvent? {
        var envelope = amqp_envelope_t()
        amqp_maybe_release_buffers(state)
        var reply: amqp_rpc_reply_t
        if let timeout {
            var tv = timeval(duration: timeout)
            reply = amqp_consume_message(state, &envelope, &tv, 0)
        } else {
            reply = amqp_consume_message(state, &envelope, nil, 0)
        }
        if reply.reply_type == AMQP_RESPONSE_NORMAL {
            defer { amqp_destroy_envelope(&envelope) }
            return .delivery(AMQPDelivery(
                channel: envelope.channel, deliveryTag: envelope.delivery_tag, redelivered: envelope.redelivered != 0,
                exchange: repeatedStrings.string(envelope.exchange), routingKey: repeatedStrings.string(envelope.routing_key),
                consumerTag: repeatedStrings.string(envelope.consumer_tag),
                properties: AMQPProperties(envelope.message.properties, strings: &repeatedStrings), body: [UInt8](amqpBytes: envelope.message.body)
            ))
        }
        if reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION {
            if reply.library_error == AMQP_STATUS_TIMEOUT.rawValue { return nil }
            if reply.library_error == AMQP_STATUS_UNEXPECTED_STATE.rawValue { return try readNonDeliveryFrame() }
        }
        throw Self.error(from: reply, doing: "wait for messages")
    }

    /// A frame other than a delivery is waiting: read and interpret it.
    private func readNonDeliveryFrame() throws(AMQPError) -> AMQPEvent? {
        var frame = amqp_frame_t()
        let status = amqp_simple_wait_frame(state, &frame)
        guard status == AMQP_STATUS_OK.rawValue else { throw Self.statusError(status, doing: "read a frame") }
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { return nil }
        let channel = frame.channel
        let method = frame.payload.method
        switch method.id {
        case AMQPMethod.basicAck:
            let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            return .confirmed(channel: channel, deliveryTag: ack.delivery_tag, multiple: ack.multiple != 0)
        case AMQPMethod.basicNack:
            let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            return .rejected(channel: channel, deliveryTag: nack.delivery_tag, multiple: nack.multiple != 0)
        case AMQPMethod.basicReturn:
            let returned = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            var message = amqp_message_t()
            let reply = amqp_read_message(state, channel, &message, 0)
            if reply.reply_type == AMQP_RESPONSE_NORMAL { amqp_destroy_message(&message) }
            return .returned(
                channel: channel, replyText: String(amqpBytes: returned.reply_text), exchange: String(amqpBytes: returned.exchange),
                routingKey: String(amqpBytes: returned.routing_key)
            )
        case AMQPMethod.basicCancelOk:
            let ok = method.decoded.assumingMemoryBound(to: amqp_basic_cancel_ok_t.self).pointee
            return .consumerCancelOk(channel: channel, consumerTag: String(amqpBytes: ok.consumer_tag))
        case AMQPMethod.basicCancel:
            let cancel = method.decoded.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            return .consumerCancelled(channel: channel, consumerTag: String(amqpBytes: cancel.consumer_tag))
        case AMQPMethod.channelClose:
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            var ok = amqp_channel_close_ok_t(dummy: 0)
            _ = amqp_send_method(state, channel, AMQPMethod.channelCloseOk, &ok)
            openChannels.remove(channel)
            throw AMQPError(.channelClosed, "broker closed channel \(channel): \(String(amqpBytes: close.reply_text))", replyCode: close.reply_code)
        case AMQPMethod.connectionClose:
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            var ok = amqp_connection_close_ok_t(dummy: 0)
            _ = amqp_send_method(state, 0, AMQPMethod.connectionCloseOk, &ok)
            isOpen = false
            throw AMQPError(.connectionClosed, "broker closed the connection: \(String(amqpBytes: close.reply_text))", replyCode: close.reply_code)
        default:
            return nil
        }
    }

    public func ack(_ deliveryTag: UInt64, multiple: Bool, channel: UInt16) throws(AMQPError) {
        let status = amqp_basic_ack(state, channel, deliveryTag, multiple ? 1 : 0)
        guard status == AMQP_STATUS_OK.rawValue else { throw Self.statusError(status, doing: "ack \(deliveryTag)") }
    }

    /// `basic.reject`: with `requeue` false the queue's dead-letter exchange takes the message.
    public func reject(_ deliveryTag: UInt64, requeue: Bool, channel: UInt16) throws(AMQPError) {
        let status = amqp_basic_reject(state, channel, deliveryTag, requeue ? 1 : 0)
        guard status == AMQP_STATUS_OK.rawValue else { throw Self.statusError(status, doing: "reject \(deliveryTag)") }
    }

    public func nack(_ deliveryTag: UInt64, multiple: Bool, requeue: Bool, channel: UInt16) throws(AMQPError) {
        let status = amqp_basic_nack(state, channel, deliveryTag, multiple ? 1 : 0, requeue ? 1 : 0)
        guard status == AMQP_STATUS_OK.rawValue else { throw Self.statusError(status, doing: "nack \(deliveryTag)") }
    }

    // MARK: Publishing

    /// Puts the channel in publisher-confirm mode: each publish is then acked (or nacked) by the broker.
    public func enableConfirms(channel: UInt16) throws(AMQPError) {
        guard amqp_confirm_select(state, channel) != nil else { throw lastError(doing: "enable publisher confirms") }
    }

    public func publish(
        _ body: [UInt8], exchange: String, routingKey: String, properties: AMQPProperties, channel: UInt16, mandatory: Bool = false
    ) throws(AMQPError) {
        let arena = AMQPArena()
        var cProperties = properties.cProperties(in: arena)
        let status = body.withUnsafeBytes { buffer in
            amqp_basic_publish(
                state, channel, arena.bytes(exchange), arena.bytes(routingKey), mandatory ? 1 : 0, 0, &cProperties,
                amqp_bytes_t(len: buffer.count, bytes: UnsafeMutableRawPointer(mutating: buffer.baseAddress))
            )
        }
        guard status == AMQP_STATUS_OK.rawValue else { throw Self.statusError(status, doing: "publish to \(exchange)/\(routingKey)") }
    }

    // MARK: Errors

    private func lastError(doing action: String) -> AMQPError {
        Self.error(from: amqp_get_rpc_reply(state), doing: action)
    }

    static func statusError(_ status: Int32, doing action: String) -> AMQPError {
        let text = String(cString: amqp_error_string2(status))
        switch status {
        case AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue: return AMQPError(.heartbeatTimeout, "cannot \(action): \(text)")
        case AMQP_STATUS_TIMEOUT.rawValue: return AMQPError(.timeout, "cannot \(action): \(text)")
        case AMQP_STATUS_CONNECTION_CLOSED.rawValue: return AMQPError(.connectionClosed, "cannot \(action): \(text)")
        case AMQP_STATUS_SOCKET_ERROR.rawValue, AMQP_STATUS_SOCKET_CLOSED.rawValue, AMQP_STATUS_SSL_ERROR.rawValue,
             AMQP_STATUS_TCP_ERROR.rawValue:
            return AMQPError(.socket, "cannot \(action): \(text)")
        default: return AMQPError(.protocolError, "cannot \(action): \(text)")
        }
    }

    static func error(from reply: amqp_rpc_reply_t, doing action: String) -> AMQPError {
        switch reply.reply_type {
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return statusError(reply.library_error, doing: action)
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            switch reply.reply.id {
            case AMQPMethod.channelClose:
                let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                return AMQPError(.channelClosed, "cannot \(action): \(String(amqpBytes: close.reply_text))", replyCode: close.reply_code)
            case AMQPMethod.connectionClose:
                let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                return AMQPError(.connectionClosed, "cannot \(action): \(String(amqpBytes: close.reply_text))", replyCode: close.reply_code)
            default:
                return AMQPError(.protocolError, "cannot \(action): unexpected method \(reply.reply.id)")
            }
        case AMQP_RESPONSE_NONE:
            return AMQPError(.protocolError, "cannot \(action): no reply")
        default:
            return AMQPError(.protocolError, "cannot \(action)")
        }
    }
}

/// Method numbers librabbitmq defines as macros with casts, which Swift does not import.
enum AMQPMethod {
    static let connectionClose: amqp_method_number_t = 0x000A_0032
    static let connectionCloseOk: amqp_method_number_t = 0x000A_0033
    static let channelClose: amqp_method_number_t = 0x0014_0028
    static let channelCloseOk: amqp_method_number_t = 0x0014_0029
    static let basicCancel: amqp_method_number_t = 0x003C_001E
    static let basicCancelOk: amqp_method_number_t = 0x003C_001F
    static let basicReturn: amqp_method_number_t = 0x003C_0032
    static let basicAck: amqp_method_number_t = 0x003C_0050
    static let basicNack: amqp_method_number_t = 0x003C_0078
}

extension timeval {
    init(duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
