import AMQPClient
import Yams

extension ConfigReader {
    mutating func readRabbitMQ(_ node: Node, at path: String) -> RabbitMQSourceConfig? {
        guard let fields = members(node, at: path, allowed: [
            "url", "queue", "declare", "bindings", "prefetch", "lanes", "max_redeliveries", "heartbeat", "tls", "dead_letter", "on_refused",
            "shards", "shard_exchange", "shard_by_header",
        ]) else { return nil }
        let before = problems.count
        var endpoint: AMQPEndpoint?
        if let url = requiredString(fields["url"], at: "\(path).url") {
            switch AMQPEndpoint.parse(url) {
            case let .success(parsed): endpoint = parsed
            case let .failure(error): problem("\(path).url", error.description)
            }
        }
        let queue = requiredString(fields["queue"], at: "\(path).queue")
        if queue?.isEmpty == true { problem("\(path).queue", "must not be empty") }
        var config = RabbitMQSourceConfig(endpoint: endpoint ?? AMQPEndpoint(host: "localhost", port: 5672), queue: queue ?? "")

        if let declareNode = fields["declare"] {
            var declaration = RabbitMQSourceConfig.QueueDeclaration()
            if let declare = members(declareNode, at: "\(path).declare", allowed: ["durable", "arguments"]) {
                declaration.durable = bool(declare["durable"], at: "\(path).declare.durable", default: true)
                if let arguments = declare["arguments"] { declaration.arguments = amqpTable(arguments, at: "\(path).declare.arguments") }
            }
            config.declare = declaration
        }
        if let bindingsNode = fields["bindings"] {
            if case let .sequence(items) = bindingsNode {
                for (index, item) in items.enumerated() {
                    let bindingPath = "\(path).bindings[\(index)]"
                    guard let binding = members(item, at: bindingPath, allowed: ["exchange", "routing_key", "exchange_type"]) else { continue }
                    guard let exchange = requiredString(binding["exchange"], at: "\(bindingPath).exchange") else { continue }
                    let routingKey = string(binding["routing_key"], at: "\(bindingPath).routing_key") ?? ""
                    let type = string(binding["exchange_type"], at: "\(bindingPath).exchange_type")
                    if let type, !["direct", "topic", "fanout", "headers", "x-consistent-hash"].contains(type) {
                        problem("\(bindingPath).exchange_type", "expected direct, topic, fanout, headers or x-consistent-hash, got \"\(type)\"")
                    }
                    config.bindings.append(.init(exchange: exchange, routingKey: routingKey, exchangeType: type))
                }
            } else {
                problem("\(path).bindings", "expected a list of { exchange, routing_key }, got \(describe(bindingsNode))")
            }
        }
        if let prefetch = int(fields["prefetch"], at: "\(path).prefetch", required: false) {
            if prefetch > 65_535 { problem("\(path).prefetch", "at most 65535, got \(prefetch)") } else { config.prefetch = prefetch }
        }
        if let lanes = int(fields["lanes"], at: "\(path).lanes", required: false) {
            if lanes > 256 { problem("\(path).lanes", "at most 256, got \(lanes)") } else { config.lanes = lanes }
        }
        if let redeliveries = int(fields["max_redeliveries"], at: "\(path).max_redeliveries", required: false, positive: false) {
            if redeliveries < 0 { problem("\(path).max_redeliveries", "must not be negative") } else { config.maxRedeliveries = redeliveries }
        }
        if let heartbeat = duration(fields["heartbeat"], at: "\(path).heartbeat") {
            if heartbeat > 65_535 { problem("\(path).heartbeat", "at most 65535 seconds") } else { config.heartbeatSeconds = Int(heartbeat) }
        }
        if let tlsNode = fields["tls"], let tls = members(tlsNode, at: "\(path).tls", allowed: ["ca_file", "cert_file", "key_file", "verify_peer", "verify_hostname"]) {
            if endpoint != nil, config.endpoint.tls == nil {
                problem("\(path).tls", "TLS settings need an amqps:// url")
            }
            var settings = AMQPEndpoint.TLS()
            settings.caFile = string(tls["ca_file"], at: "\(path).tls.ca_file")
            settings.certFile = string(tls["cert_file"], at: "\(path).tls.cert_file")
            settings.keyFile = string(tls["key_file"], at: "\(path).tls.key_file")
            if (settings.certFile == nil) != (settings.keyFile == nil) {
                problem("\(path).tls", "cert_file and key_file go together")
            }
            settings.verifyPeer = bool(tls["verify_peer"], at: "\(path).tls.verify_peer", default: true)
            settings.verifyHostname = bool(tls["verify_hostname"], at: "\(path).tls.verify_hostname", default: true)
            config.endpoint.tls = settings
        }
        if let deadLetterNode = fields["dead_letter"],
           let deadLetter = members(deadLetterNode, at: "\(path).dead_letter", allowed: ["queue", "exchange", "routing_key"]) {
            let queue = string(deadLetter["queue"], at: "\(path).dead_letter.queue")
            let exchange = string(deadLetter["exchange"], at: "\(path).dead_letter.exchange")
            let routingKey = string(deadLetter["routing_key"], at: "\(path).dead_letter.routing_key")
            switch (queue, exchange) {
            case let (queue?, nil):
                if routingKey != nil { problem("\(path).dead_letter.routing_key", "goes with exchange, not queue") }
                config.deadLetter = .queue(queue)
            case let (nil, exchange?): config.deadLetter = .exchange(exchange, routingKey: routingKey)
            case (_?, _?): problem("\(path).dead_letter", "give queue or exchange, not both")
            case (nil, nil): problem("\(path).dead_letter", "give a queue or an exchange")
            }
        }
        if let text = string(fields["on_refused"], at: "\(path).on_refused") {
            if let value = RabbitMQSourceConfig.OnRefused(rawValue: text) {
                config.onRefused = value
                if value == .retry, fields["dead_letter"] == nil {
                    problem("\(path).on_refused", "retry needs a dead_letter target for messages past max_redeliveries")
                }
            } else {
                problem("\(path).on_refused", "expected dead_letter or retry, got \"\(text)\"")
            }
        }
        readSharding(fields, into: &config, at: path)
        return problems.count == before ? config : nil
    }

    /// `shards: N` with `shard_exchange` and `shard_by_header`: the consistent-hash topology named by `queue`.
    private mutating func readSharding(_ fields: [String: Node], into config: inout RabbitMQSourceConfig, at path: String) {
        let exchange = string(fields["shard_exchange"], at: "\(path).shard_exchange")
        let hashHeader = string(fields["shard_by_header"], at: "\(path).shard_by_header")
        guard fields["shards"] != nil else {
            for key in ["shard_exchange", "shard_by_header"] where fields[key] != nil {
                problem("\(path).\(key)", "goes with shards")
            }
            return
        }
        guard let count = int(fields["shards"], at: "\(path).shards", required: true) else { return }
        let maximum = RabbitMQSourceConfig.Sharding.maximumCount
        if count > maximum {
            problem("\(path).shards", "at most \(maximum), got \(count)")
            return
        }
        let sharding = RabbitMQSourceConfig.Sharding(count: count, exchange: exchange ?? config.queue, hashHeader: hashHeader)
        if exchange?.isEmpty == true {
            problem("\(path).shard_exchange", "must not be empty (the default exchange cannot hash)")
        } else if sharding.exchange.hasPrefix("amq.") {
            let key = exchange == nil ? "queue" : "shard_exchange"
            problem("\(path).\(key)", "names the shard exchange \"\(sharding.exchange)\"; names starting with amq. are reserved by the broker")
        }
        if hashHeader?.isEmpty == true { problem("\(path).shard_by_header", "must not be empty") }
        if let declare = config.declare {
            if !declare.durable { problem("\(path).declare.durable", "shard queues are durable; drop durable: false") }
            if let value = declare.arguments["x-single-active-consumer"], value != .bool(true) {
                problem("\(path).declare.arguments.x-single-active-consumer", "shard queues need single-active-consumer (the daemon sets it to true)")
            }
        }
        if !config.bindings.isEmpty {
            problem("\(path).bindings", "with shards, publishers publish to the shard exchange \(sharding.exchange); bind it to other exchanges yourself if needed")
        }
        config.sharding = sharding
        if case let .queue(name)? = config.deadLetter, config.consumedQueues.contains(name) {
            problem("\(path).dead_letter.queue", "\(name) is a shard queue of this source")
        }
    }

    /// Queue or exchange arguments: numbers become integers, true/false booleans, the rest text.
    mutating func amqpTable(_ node: Node, at path: String) -> AMQPTable {
        guard case let .mapping(mapping) = node else {
            problem(path, "expected a mapping of arguments, got \(describe(node))")
            return AMQPTable()
        }
        var table = AMQPTable()
        for (keyNode, value) in mapping {
            let key = keyNode.scalar?.string ?? ""
            guard let text = string(value, at: "\(path).\(key)") else { continue }
            if let number = Int64(text) {
                table[key] = .int(number)
            } else if text == "true" || text == "false" {
                table[key] = .bool(text == "true")
            } else {
                table[key] = .string(text)
            }
        }
        return table
    }
}
