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

    /// Parses JSON text (strict RFC 8259; a hand-written parser, as params and metrics are parsed for
    /// every indexed commit).
    public static func parse(json text: [UInt8], what: String) throws -> JSONValue {
        var p = JSONParser(bytes: text)
        do {
            p.skipSpace()
            let v = try p.value(depth: 0)
            p.skipSpace()
            guard p.i == text.count else { throw JSONParser.Failure(offset: p.i, reason: "unexpected text after the value") }
            return v
        } catch let f as JSONParser.Failure {
            throw MLStoreError(.usage, "\(what) is not valid JSON: \(f.reason) at byte \(f.offset)", hint: "fix the file, or pass values with --param/--metric")
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

/// A strict JSON parser over bytes.
struct JSONParser {
    struct Failure: Error {
        var offset: Int
        var reason: String
    }
    let bytes: [UInt8]
    var i = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0a || bytes[i] == 0x0d || bytes[i] == 0x09 { i += 1 }
    }

    func fail(_ reason: String) -> Failure { Failure(offset: i, reason: reason) }

    mutating func expect(_ word: String) throws {
        for b in word.utf8 {
            guard i < bytes.count, bytes[i] == b else { throw fail("expected '\(word)'") }
            i += 1
        }
    }

    mutating func value(depth: Int) throws -> JSONValue {
        guard depth < 512 else { throw fail("nested too deeply") }
        guard i < bytes.count else { throw fail("unexpected end") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            i += 1
            var o: [String: JSONValue] = [:]
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let k = try string()
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                skipSpace()
                o[k] = try value(depth: depth + 1)
                skipSpace()
                guard i < bytes.count else { throw fail("unterminated object") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var a: [JSONValue] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
            while true {
                skipSpace()
                a.append(try value(depth: depth + 1))
                skipSpace()
                guard i < bytes.count else { throw fail("unterminated array") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default:
            return .number(try number())
        }
    }

    mutating func number() throws -> Double {
        let start = i
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        func digits() -> Int {
            let s = i
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
            return i - s
        }
        guard digits() > 0 else { throw Failure(offset: start, reason: "expected a value") }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw fail("expected digits after '.'") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw fail("expected an exponent") }
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        guard let d = Double(text), d.isFinite else { throw Failure(offset: start, reason: "number out of range") }
        return d
    }

    mutating func string() throws -> String {
        i += 1  // opening quote
        var out = [UInt8]()
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let b = bytes[i]
            i += 1
            if b == UInt8(ascii: "\"") { break }
            if b < 0x20 { throw fail("control character in string") }
            if b != UInt8(ascii: "\\") {
                out.append(b)
                continue
            }
            guard i < bytes.count else { throw fail("unterminated escape") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5c)
            case UInt8(ascii: "/"): out.append(0x2f)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0c)
            case UInt8(ascii: "n"): out.append(0x0a)
            case UInt8(ascii: "r"): out.append(0x0d)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if code >= 0xD800 && code < 0xDC00 {
                    guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else { throw fail("unpaired surrogate") }
                    i += 2
                    let low = try hex4()
                    guard low >= 0xDC00 && low < 0xE000 else { throw fail("bad surrogate pair") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw fail("bad \\u escape") }
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: throw fail("bad escape")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not UTF-8") }
        return s
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else { throw fail("bad \\u escape") }
        i += 4
        return v
    }
}
