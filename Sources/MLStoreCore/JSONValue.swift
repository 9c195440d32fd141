import Foundation
import MLStoreBasics
import Yams

/// A JSON value with a canonical serialization (sorted keys, no insignificant whitespace, shortest
/// round-trip numbers), so equal params or metrics always hash to the same object id.
public enum JSONValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    // MARK: Canonical text

    public var canonical: String {
        var out = ""
        write(&out)
        return out
    }

    public var description: String { canonical }

    /// Human form of a scalar (no quotes around strings).
    public var display: String {
        switch self {
        case .string(let s): s
        case .number(let d): JSONValue.format(d)
        default: canonical
        }
    }

    public static func format(_ d: Double) -> String {
        if d.isNaN || d.isInfinite { return "null" }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return "\(d)"
    }

    private func write(_ out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let d): out += JSONValue.format(d)
        case .string(let s): JSONValue.quote(s, into: &out)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                v.write(&out)
            }
            out += "]"
        case .object(let o):
            out += "{"
            for (i, k) in o.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
                if i > 0 { out += "," }
                JSONValue.quote(k, into: &out)
                out += ":"
                o[k]!.write(&out)
            }
            out += "}"
        }
    }

    static func quote(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    out += String(format: "\\u%04x", u.value)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    public var bytes: [UInt8] { Array(canonical.utf8) }

    // MARK: Accessors

    public var object: [String: JSONValue]? { if case .object(let o) = self { o } else { nil } }
    public var array: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    public var number: Double? { if case .number(let d) = self { d } else { nil } }
    public var string: String? { if case .string(let s) = self { s } else { nil } }

    public subscript(key: String) -> JSONValue? { object?[key] }

    /// Flattens nested objects into dotted keys (`optimizer.lr`); arrays and scalars are leaves.
    public func flattened(prefix: String = "") -> [String: JSONValue] {
        guard case .object(let o) = self else { return prefix.isEmpty ? [:] : [prefix: self] }
        var out: [String: JSONValue] = [:]
        for (k, v) in o {
            let key = prefix.isEmpty ? k : prefix + "." + k
            if case .object = v {
                out.merge(v.flattened(prefix: key)) { a, _ in a }
            } else {
                out[key] = v
            }
        }
        return out
    }

    /// Sets a value at a dotted key path, creating objects as needed.
    public mutating func set(_ dottedKey: String, _ value: JSONValue) {
        let parts = dottedKey.split(separator: ".").map(String.init)
        self = JSONValue.setting(self, parts[...], value)
    }

    private static func setting(_ base: JSONValue, _ path: ArraySlice<String>, _ value: JSONValue) -> JSONValue {
        guard let first = path.first else { return value }
        var o = base.object ?? [:]
        o[first] = setting(o[first] ?? .null, path.dropFirst(), value)
        return .object(o)
    }

    // MARK: Parsing

    /// Parses JSON text (through the YAML parser: JSON is a subset of YAML 1.2).
    public static func parse(json text: [UInt8], what: String) throws -> JSONValue {
        guard let string = String(validating: text, as: UTF8.self) else {
            throw MLStoreError(.usage, "\(what) is not UTF-8 text")
        }
        let trimmed = string.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix("{") || trimmed.hasPrefix("[") else {
            throw MLStoreError(.usage, "\(what) is not valid JSON: it must hold an object or an array")
        }
        do {
            return try parse(yaml: string, what: what)
        } catch let e as MLStoreError {
            throw MLStoreError(.usage, e.message.replacingOccurrences(of: "is not valid YAML", with: "is not valid JSON"), hint: e.hint)
        }
    }

    /// Parses YAML text (a superset of JSON).
    public static func parse(yaml text: String, what: String) throws -> JSONValue {
        do {
            guard let node = try Yams.compose(yaml: text) else { return .object([:]) }
            return try from(node: node, what: what)
        } catch let e as MLStoreError {
            throw e
        } catch {
            throw MLStoreError(.usage, "\(what) is not valid YAML: \(error)", hint: "fix the file, or pass values with --param/--metric")
        }
    }

    /// Reads a params/metrics file: JSON for `.json`, YAML otherwise. Files over 16 MiB are refused.
    public static func load(file path: String, what: String) throws -> JSONValue {
        let bytes: [UInt8]
        do {
            bytes = try Sys.readFile(path, limit: 16 << 20)
        } catch let e as SystemError {
            throw MLStoreError(.notFound, "cannot read \(what) \(path): \(e)")
        } catch let e as MLStoreError {
            throw MLStoreError(.usage, "\(what) \(path) is too large: \(e.message)", hint: "params and metrics files are limited to 16 MiB")
        }
        if path.hasSuffix(".json") { return try parse(json: bytes, what: "\(what) \(path)") }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw MLStoreError(.usage, "\(what) \(path) is not UTF-8 text")
        }
        return try parse(yaml: text, what: "\(what) \(path)")
    }

    static func from(node: Node, what: String) throws -> JSONValue {
        switch node {
        case .scalar(let s):
            return scalar(s.string, tag: s.tag, style: s.style)
        case .sequence(let seq):
            return .array(try seq.map { try from(node: $0, what: what) })
        case .mapping(let m):
            var o: [String: JSONValue] = [:]
            for (k, v) in m {
                guard case .scalar(let ks) = k else { throw MLStoreError(.usage, "\(what) has a non-scalar key") }
                o[ks.string] = try from(node: v, what: what)
            }
            return .object(o)
        case .alias:
            throw MLStoreError(.usage, "\(what) uses YAML aliases, which mlstore does not expand")
        }
    }

    static func scalar(_ text: String, tag: Tag, style: Node.Scalar.Style) -> JSONValue {
        if style == .singleQuoted || style == .doubleQuoted || style == .literal || style == .folded { return .string(text) }
        return infer(text)
    }

    /// Types a bare value the way YAML 1.2 core schema would: null, booleans, numbers, else a string.
    public static func infer(_ text: String) -> JSONValue {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        if let d = Double(text), !text.hasPrefix("0x"), d.isFinite,
            text.range(of: #"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"#, options: .regularExpression) != nil
        {
            return .number(d)
        }
        return .string(text)
    }
}

extension JSONValue: Codable {
    /// Encodes as plain JSON (not Swift's enum encoding).
    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .bool(let b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case .number(let d):
            var c = encoder.singleValueContainer()
            if d == d.rounded(), abs(d) < 1e15 { try c.encode(Int64(d)) } else { try c.encode(d) }
        case .string(let s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case .array(let a):
            var c = encoder.unkeyedContainer()
            for v in a { try c.encode(v) }
        case .object(let o):
            var c = encoder.container(keyedBy: DynamicKey.self)
            for (k, v) in o { try c.encode(v, forKey: DynamicKey(k)) }
        }
    }

    public init(from decoder: any Decoder) throws {
        if let c = try? decoder.container(keyedBy: DynamicKey.self) {
            var o: [String: JSONValue] = [:]
            for k in c.allKeys { o[k.stringValue] = try c.decode(JSONValue.self, forKey: k) }
            self = .object(o)
        } else if var c = try? decoder.unkeyedContainer() {
            var a: [JSONValue] = []
            while !c.isAtEnd { a.append(try c.decode(JSONValue.self)) }
            self = .array(a)
        } else {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .null }
            else if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let d = try? c.decode(Double.self) { self = .number(d) }
            else { self = .string(try c.decode(String.self)) }
        }
    }

    struct DynamicKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
