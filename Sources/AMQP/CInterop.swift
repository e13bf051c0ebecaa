import CRabbitMQ
import Foundation

/// Method ids (rabbitmq-c defines them as casted macros, which Swift does not import).
enum Method {
    static let connectionClose: amqp_method_number_t = 0x000A_0032
    static let connectionCloseOK: amqp_method_number_t = 0x000A_0033
    static let connectionBlocked: amqp_method_number_t = 0x000A_003C
    static let connectionUnblocked: amqp_method_number_t = 0x000A_003D
    static let channelClose: amqp_method_number_t = 0x0014_0028
    static let channelCloseOK: amqp_method_number_t = 0x0014_0029
    static let basicCancel: amqp_method_number_t = 0x003C_001E
    static let basicCancelOK: amqp_method_number_t = 0x003C_001F
    static let basicReturn: amqp_method_number_t = 0x003C_0032
    static let basicDeliver: amqp_method_number_t = 0x003C_003C
    static let basicAck: amqp_method_number_t = 0x003C_0050
    static let basicNack: amqp_method_number_t = 0x003C_0078
}

/// Property flags of `amqp_basic_properties_t`.
enum PropertyFlag {
    static let contentType: amqp_flags_t = 1 << 15
    static let contentEncoding: amqp_flags_t = 1 << 14
    static let headers: amqp_flags_t = 1 << 13
    static let deliveryMode: amqp_flags_t = 1 << 12
    static let priority: amqp_flags_t = 1 << 11
    static let correlationID: amqp_flags_t = 1 << 10
    static let replyTo: amqp_flags_t = 1 << 9
    static let expiration: amqp_flags_t = 1 << 8
    static let messageID: amqp_flags_t = 1 << 7
    static let timestamp: amqp_flags_t = 1 << 6
    static let type: amqp_flags_t = 1 << 5
    static let userID: amqp_flags_t = 1 << 4
    static let appID: amqp_flags_t = 1 << 3
}

/// Owns C copies of strings, tables and properties for the length of one library call.
/// rabbitmq-c keeps only pointers, so whatever it is given must outlive the call; the arena frees it all at once.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit {
        for block in blocks { free(block) }
    }

    private func allocate(_ count: Int) -> UnsafeMutableRawPointer {
        let block = malloc(max(count, 1))!
        blocks.append(block)
        return block
    }

    func bytes(_ string: String) -> amqp_bytes_t {
        var string = string
        return string.withUTF8 { bytes(UnsafeRawBufferPointer($0)) }
    }

    func bytes(_ buffer: UnsafeRawBufferPointer) -> amqp_bytes_t {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return amqp_bytes_t(len: 0, bytes: nil) }
        let block = allocate(buffer.count)
        block.copyMemory(from: base, byteCount: buffer.count)
        return amqp_bytes_t(len: buffer.count, bytes: block)
    }

    func cString(_ string: String) -> UnsafePointer<CChar> {
        let utf8 = Array(string.utf8CString)
        let block = allocate(utf8.count)
        utf8.withUnsafeBytes { block.copyMemory(from: $0.baseAddress!, byteCount: utf8.count) }
        return UnsafePointer(block.assumingMemoryBound(to: CChar.self))
    }

    func table(_ table: AMQPTable) -> amqp_table_t {
        guard !table.isEmpty else { return amqp_table_t(num_entries: 0, entries: nil) }
        let entries = allocate(MemoryLayout<amqp_table_entry_t>.stride * table.count)
            .bindMemory(to: amqp_table_entry_t.self, capacity: table.count)
        for (index, key) in table.keys.sorted().enumerated() {
            entries[index] = amqp_table_entry_t(key: bytes(key), value: field(table[key]!))
        }
        return amqp_table_t(num_entries: Int32(table.count), entries: entries)
    }

    func field(_ value: AMQPValue) -> amqp_field_value_t {
        var field = amqp_field_value_t()
        switch value {
        case .bool(let v):
            field.kind = UInt8(ascii: "t")
            field.value.boolean = v ? 1 : 0
        case .int(let v):
            field.kind = UInt8(ascii: "l")
            field.value.i64 = v
        case .double(let v):
            field.kind = UInt8(ascii: "d")
            field.value.f64 = v
        case .string(let v):
            field.kind = UInt8(ascii: "S")
            field.value.bytes = bytes(v)
        case .bytes(let v):
            field.kind = UInt8(ascii: "x")
            field.value.bytes = v.withUnsafeBytes { bytes($0) }
        case .timestamp(let v):
            field.kind = UInt8(ascii: "T")
            field.value.u64 = v
        case .table(let v):
            field.kind = UInt8(ascii: "F")
            field.value.table = table(v)
        case .array(let values):
            field.kind = UInt8(ascii: "A")
            let items = allocate(MemoryLayout<amqp_field_value_t>.stride * max(values.count, 1))
                .bindMemory(to: amqp_field_value_t.self, capacity: max(values.count, 1))
            for (index, item) in values.enumerated() { items[index] = self.field(item) }
            field.value.array = amqp_array_t(num_entries: Int32(values.count), entries: values.isEmpty ? nil : items)
        case .void:
            field.kind = UInt8(ascii: "V")
        }
        return field
    }

    func properties(_ p: AMQPProperties) -> amqp_basic_properties_t {
        var props = amqp_basic_properties_t()
        var flags: amqp_flags_t = 0
        if let v = p.contentType {
            flags |= PropertyFlag.contentType
            props.content_type = bytes(v)
        }
        if let v = p.contentEncoding {
            flags |= PropertyFlag.contentEncoding
            props.content_encoding = bytes(v)
        }
        if let v = p.headers {
            flags |= PropertyFlag.headers
            props.headers = table(v)
        }
        if let v = p.deliveryMode {
            flags |= PropertyFlag.deliveryMode
            props.delivery_mode = v
        }
        if let v = p.priority {
            flags |= PropertyFlag.priority
            props.priority = v
        }
        if let v = p.correlationID {
            flags |= PropertyFlag.correlationID
            props.correlation_id = bytes(v)
        }
        if let v = p.replyTo {
            flags |= PropertyFlag.replyTo
            props.reply_to = bytes(v)
        }
        if let v = p.expiration {
            flags |= PropertyFlag.expiration
            props.expiration = bytes(v)
        }
        if let v = p.messageID {
            flags |= PropertyFlag.messageID
            props.message_id = bytes(v)
        }
        if let v = p.timestamp {
            flags |= PropertyFlag.timestamp
            props.timestamp = v
        }
        if let v = p.type {
            flags |= PropertyFlag.type
            props.type = bytes(v)
        }
        if let v = p.userID {
            flags |= PropertyFlag.userID
            props.user_id = bytes(v)
        }
        if let v = p.appID {
            flags |= PropertyFlag.appID
            props.app_id = bytes(v)
        }
        props._flags = flags
        return props
    }
}

extension amqp_bytes_t {
    var string: String {
        guard len > 0, let bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: bytes, count: len), as: UTF8.self)
    }

    var array: [UInt8] {
        guard len > 0, let bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: len))
    }
}

enum CDecode {
    static func table(_ table: amqp_table_t) -> AMQPTable {
        var result: AMQPTable = [:]
        guard table.num_entries > 0, let entries = table.entries else { return result }
        for index in 0..<Int(table.num_entries) {
            let entry = entries[index]
            result[entry.key.string] = field(entry.value)
        }
        return result
    }

    static func field(_ f: amqp_field_value_t) -> AMQPValue {
        switch UnicodeScalar(f.kind) {
        case "t": return .bool(f.value.boolean != 0)
        case "b": return .int(Int64(f.value.i8))
        case "B": return .int(Int64(f.value.u8))
        case "s": return .int(Int64(f.value.i16))
        case "u": return .int(Int64(f.value.u16))
        case "I": return .int(Int64(f.value.i32))
        case "i": return .int(Int64(f.value.u32))
        case "l": return .int(f.value.i64)
        case "L": return .int(Int64(clamping: f.value.u64))
        case "f": return .double(Double(f.value.f32))
        case "d": return .double(f.value.f64)
        case "D":
            let d = f.value.decimal
            return .double(Double(d.value) / pow(10, Double(d.decimals)))
        case "S": return .string(f.value.bytes.string)
        case "x": return .bytes(f.value.bytes.array)
        case "T": return .timestamp(f.value.u64)
        case "F": return .table(table(f.value.table))
        case "A":
            let array = f.value.array
            guard array.num_entries > 0, let entries = array.entries else { return .array([]) }
            return .array((0..<Int(array.num_entries)).map { field(entries[$0]) })
        default: return .void
        }
    }

    static func properties(_ p: amqp_basic_properties_t) -> AMQPProperties {
        let flags = p._flags
        func has(_ flag: amqp_flags_t) -> Bool { flags & flag != 0 }
        var result = AMQPProperties()
        if has(PropertyFlag.contentType) { result.contentType = p.content_type.string }
        if has(PropertyFlag.contentEncoding) { result.contentEncoding = p.content_encoding.string }
        if has(PropertyFlag.headers) { result.headers = table(p.headers) }
        if has(PropertyFlag.deliveryMode) { result.deliveryMode = p.delivery_mode }
        if has(PropertyFlag.priority) { result.priority = p.priority }
        if has(PropertyFlag.correlationID) { result.correlationID = p.correlation_id.string }
        if has(PropertyFlag.replyTo) { result.replyTo = p.reply_to.string }
        if has(PropertyFlag.expiration) { result.expiration = p.expiration.string }
        if has(PropertyFlag.messageID) { result.messageID = p.message_id.string }
        if has(PropertyFlag.timestamp) { result.timestamp = p.timestamp }
        if has(PropertyFlag.type) { result.type = p.type.string }
        if has(PropertyFlag.userID) { result.userID = p.user_id.string }
        if has(PropertyFlag.appID) { result.appID = p.app_id.string }
        return result
    }
}

func libraryErrorText(_ status: Int32) -> String {
    String(cString: amqp_error_string2(status))
}
