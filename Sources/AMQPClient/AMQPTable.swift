import CRabbitMQ
import Foundation

/// A value in an AMQP field table (message headers, queue arguments).
public indirect enum AMQPFieldValue: Sendable, Hashable {
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case bytes([UInt8])
    case timestamp(UInt64)
    case decimal(scale: UInt8, value: UInt32)
    case table(AMQPTable)
    case array([AMQPFieldValue])
    case void

    /// The value as an integer, if it is one.
    public var intValue: Int64? {
        if case let .int(value) = self { return value }
        return nil
    }

    public var stringValue: String? {
        switch self {
        case let .string(text): return text
        case let .bytes(bytes): return String(decoding: bytes, as: UTF8.self)
        default: return nil
        }
    }
}

/// An AMQP field table: ordered names and values.
public struct AMQPTable: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    public var entries: [(key: String, value: AMQPFieldValue)]

    public init(_ entries: [(key: String, value: AMQPFieldValue)] = []) {
        self.entries = entries
    }

    public init(dictionaryLiteral elements: (String, AMQPFieldValue)...) {
        self.entries = elements.map { ($0.0, $0.1) }
    }

    public subscript(key: String) -> AMQPFieldValue? {
        get { entries.first { $0.key == key }?.value }
        set {
            entries.removeAll { $0.key == key }
            if let newValue { entries.append((key, newValue)) }
        }
    }

    public var isEmpty: Bool { entries.isEmpty }

    public static func == (lhs: AMQPTable, rhs: AMQPTable) -> Bool {
        lhs.entries.count == rhs.entries.count && zip(lhs.entries, rhs.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for entry in entries {
            hasher.combine(entry.key)
            hasher.combine(entry.value)
        }
    }
}

// MARK: From C

extension AMQPTable {
    init(_ table: amqp_table_t) {
        var entries: [(key: String, value: AMQPFieldValue)] = []
        entries.reserveCapacity(Int(table.num_entries))
        if let pointer = table.entries {
            for index in 0..<Int(table.num_entries) {
                let entry = pointer[index]
                entries.append((String(amqpBytes: entry.key), AMQPFieldValue(entry.value)))
            }
        }
        self.entries = entries
    }
}

extension AMQPFieldValue {
    init(_ field: amqp_field_value_t) {
        switch Character(Unicode.Scalar(field.kind)) {
        case "t": self = .bool(field.value.boolean != 0)
        case "b": self = .int(Int64(field.value.i8))
        case "B": self = .int(Int64(field.value.u8))
        case "s", "U": self = .int(Int64(field.value.i16))
        case "u": self = .int(Int64(field.value.u16))
        case "I": self = .int(Int64(field.value.i32))
        case "i": self = .int(Int64(field.value.u32))
        case "l", "L": self = .int(field.value.i64)
        case "f": self = .double(Double(field.value.f32))
        case "d": self = .double(field.value.f64)
        case "D": self = .decimal(scale: field.value.decimal.decimals, value: field.value.decimal.value)
        case "S": self = .string(String(amqpBytes: field.value.bytes))
        case "x": self = .bytes([UInt8](amqpBytes: field.value.bytes))
        case "T": self = .timestamp(field.value.u64)
        case "F": self = .table(AMQPTable(field.value.table))
        case "A":
            let array = field.value.array
            var values: [AMQPFieldValue] = []
            if let entries = array.entries {
                for index in 0..<Int(array.num_entries) { values.append(AMQPFieldValue(entries[index])) }
            }
            self = .array(values)
        default: self = .void
        }
    }
}

extension String {
    init(amqpBytes bytes: amqp_bytes_t) {
        guard let pointer = bytes.bytes, bytes.len > 0 else {
            self = ""
            return
        }
        self = String(decoding: UnsafeRawBufferPointer(start: pointer, count: bytes.len), as: UTF8.self)
    }
}

extension Array where Element == UInt8 {
    init(amqpBytes bytes: amqp_bytes_t) {
        guard let pointer = bytes.bytes, bytes.len > 0 else {
            self = []
            return
        }
        self = Array(UnsafeRawBufferPointer(start: pointer, count: bytes.len))
    }
}

// MARK: To C

/// Memory for the C structures of one call; everything is freed together when the arena goes.
final class AMQPArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit {
        for pointer in allocations { free(pointer) }
    }

    func bytes(_ text: String) -> amqp_bytes_t {
        bytes(Array(text.utf8))
    }

    func bytes(_ data: [UInt8]) -> amqp_bytes_t {
        guard !data.isEmpty, let pointer = malloc(data.count) else { return amqp_bytes_t(len: 0, bytes: nil) }
        allocations.append(pointer)
        data.withUnsafeBytes { pointer.copyMemory(from: $0.baseAddress!, byteCount: data.count) }
        return amqp_bytes_t(len: data.count, bytes: pointer)
    }

    func table(_ table: AMQPTable) -> amqp_table_t {
        guard !table.isEmpty else { return amqp_table_t(num_entries: 0, entries: nil) }
        let entries = allocate(amqp_table_entry_t.self, count: table.entries.count)
        for (index, entry) in table.entries.enumerated() {
            entries[index] = amqp_table_entry_t(key: bytes(entry.key), value: field(entry.value))
        }
        return amqp_table_t(num_entries: Int32(table.entries.count), entries: entries)
    }

    func field(_ value: AMQPFieldValue) -> amqp_field_value_t {
        var field = amqp_field_value_t()
        switch value {
        case let .bool(flag):
            field.kind = UInt8(ascii: "t")
            field.value.boolean = flag ? 1 : 0
        case let .int(number):
            field.kind = UInt8(ascii: "l")
            field.value.i64 = number
        case let .double(number):
            field.kind = UInt8(ascii: "d")
            field.value.f64 = number
        case let .string(text):
            field.kind = UInt8(ascii: "S")
            field.value.bytes = bytes(text)
        case let .bytes(data):
            field.kind = UInt8(ascii: "x")
            field.value.bytes = bytes(data)
        case let .timestamp(seconds):
            field.kind = UInt8(ascii: "T")
            field.value.u64 = seconds
        case let .decimal(scale, number):
            field.kind = UInt8(ascii: "D")
            field.value.decimal = amqp_decimal_t(decimals: scale, value: number)
        case let .table(nested):
            field.kind = UInt8(ascii: "F")
            field.value.table = table(nested)
        case let .array(values):
            field.kind = UInt8(ascii: "A")
            let entries = allocate(amqp_field_value_t.self, count: max(1, values.count))
            for (index, element) in values.enumerated() { entries[index] = self.field(element) }
            field.value.array = amqp_array_t(num_entries: Int32(values.count), entries: entries)
        case .void:
            field.kind = UInt8(ascii: "V")
        }
        return field
    }

    func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let raw = malloc(MemoryLayout<T>.stride * max(1, count))!
        allocations.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(1, count))
    }
}
