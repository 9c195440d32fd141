import Foundation
import MLStoreBasics
import MLStoreCore

/// A fragment of HTML that is safe by construction: string literals are trusted markup, interpolated
/// `String`s are escaped, and interpolated `SafeHTML` values are inserted as they are.
///
/// ```swift
/// let subject = "<script>alert(1)</script>"
/// let cell: SafeHTML = "<td title=\"\(subject)\">\(subject)</td>"   // both escaped
/// ```
struct SafeHTML: ExpressibleByStringInterpolation, CustomStringConvertible, Sendable {
    private(set) var text: String

    /// Markup that is already safe (e.g. an SVG path's `d` built from numbers).
    init(trusted text: String) { self.text = text }
    init(stringLiteral value: String) { text = value }
    init(stringInterpolation: StringInterpolation) { text = stringInterpolation.text }

    var description: String { text }
    static let empty = SafeHTML(trusted: "")

    struct StringInterpolation: StringInterpolationProtocol {
        var text = ""
        init(literalCapacity: Int, interpolationCount: Int) { text.reserveCapacity(literalCapacity + 16 * interpolationCount) }
        mutating func appendLiteral(_ literal: String) { text += literal }
        mutating func appendInterpolation(_ value: String) { text += HTML.escape(value) }
        mutating func appendInterpolation(_ value: Substring) { text += HTML.escape(String(value)) }
        mutating func appendInterpolation(_ value: Int) { text += String(value) }
        mutating func appendInterpolation(_ value: SafeHTML) { text += value.text }
        mutating func appendInterpolation(_ values: [SafeHTML]) { for v in values { text += v.text } }
        /// A number written into SVG geometry (two decimals, no exponent).
        mutating func appendInterpolation(coordinate value: Double) { text += SafeHTML.coordinate(value) }
    }

    static func + (a: SafeHTML, b: SafeHTML) -> SafeHTML { SafeHTML(trusted: a.text + b.text) }
    static func += (a: inout SafeHTML, b: SafeHTML) { a.text += b.text }

    static func coordinate(_ v: Double) -> String { v.isFinite ? String(format: "%.2f", v) : "0" }
}

extension Sequence {
    /// Concatenates the HTML made for each element.
    func html(_ body: (Element) throws -> SafeHTML) rethrows -> SafeHTML {
        var out = SafeHTML.empty
        for e in self { out += try body(e) }
        return out
    }
}

/// URLs of the UI's pages, with every path segment and query value percent-encoded.
enum Link {
    static func run(_ id: ObjectID) -> String { "/runs/" + id.hex }
    static func lineage(_ start: String, direction: String? = nil, depth: Int? = nil) -> String {
        "/lineage/" + URLCoding.encode(start) + query([("direction", direction), ("depth", depth.map(String.init))])
    }
    static func model(_ name: String, stage: String? = nil) -> String { "/registry/" + URLCoding.encode(name) + query([("stage", stage)]) }
    static func compare(_ ids: [ObjectID], metric: String? = nil) -> String {
        "/compare" + query([("runs", ids.map(\.hex).joined(separator: ",")), ("metric", metric)])
    }
    static func runs(q: String?, sort: String?) -> String { "/" + query([("q", q), ("sort", sort)]) }
    /// The server's download endpoint for one object, saved under `name`.
    static func download(_ id: ObjectID, name: String) -> String {
        "/api/v1/download/\(id.hex)" + query([("name", name)])
    }

    /// `?a=1&b=2`, leaving out nil and empty values; "" when nothing is left.
    static func query(_ items: [(String, String?)]) -> String {
        let parts = items.compactMap { k, v in v.flatMap { $0.isEmpty ? nil : k + "=" + URLCoding.encode($0) } }
        return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
    }
}

/// Percent-encoding for URLs the UI writes and decoding for paths and queries it reads.
public enum URLCoding {
    /// Percent-encodes everything but RFC 3986's unreserved characters (so `@`, `~`, `/`, `,` and spaces
    /// are all safe inside a path segment or a query value).
    static func encode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(Character(UnicodeScalar(b)))
            default:
                out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    /// Decodes `%XX` escapes (and `+` as a space when `plusIsSpace`, as HTML forms send queries); nil for a
    /// malformed escape or bytes that are not UTF-8.
    public static func decode(_ s: Substring, plusIsSpace: Bool = false) -> String? {
        guard s.contains("%") || (plusIsSpace && s.contains("+")) else { return String(s) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count)
        var it = s.utf8.makeIterator()
        while let b = it.next() {
            if b == UInt8(ascii: "%") {
                guard let h = it.next().flatMap(hexValue), let l = it.next().flatMap(hexValue) else { return nil }
                bytes.append(h << 4 | l)
            } else {
                bytes.append(plusIsSpace && b == UInt8(ascii: "+") ? UInt8(ascii: " ") : b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// Parses a raw query string (`q=metrics.acc+%3E+0.9&sort=-metrics.acc`) the way browsers encode forms
    /// (`application/x-www-form-urlencoded`); later duplicates win, malformed pairs are skipped.
    public static func parseQuery(_ query: String?) -> [String: String] {
        var out: [String: String] = [:]
        for pair in (query ?? "").split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let k = decode(kv[0], plusIsSpace: true), !k.isEmpty else { continue }
            out[k] = kv.count > 1 ? decode(kv[1], plusIsSpace: true) ?? "" : ""
        }
        return out
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// How the UI writes numbers, times and ids.
enum Format {
    /// Up to 6 significant digits (integers in full); the exact value belongs in a `title`.
    static func number(_ d: Double) -> String {
        if !d.isFinite { return d.isNaN ? "NaN" : (d > 0 ? "∞" : "-∞") }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        var s = String(format: "%.6g", d)
        if s.contains("e") { return s }
        if s.contains(".") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        return s
    }

    /// A JSON scalar for a table cell: numbers shortened, strings as they are.
    static func value(_ v: JSONValue) -> String {
        if let n = v.number { return number(n) }
        return v.display
    }

    /// `2026-01-31 12:00` in UTC.
    static func time(_ unixSeconds: Int64) -> String {
        String(Signature(name: "", email: "", time: unixSeconds).isoDate.prefix(16))
    }

    /// `2026-01-31T12:00:00Z`, for `<time datetime>`.
    static func isoUTC(_ unixSeconds: Int64) -> String {
        let d = Signature(name: "", email: "", time: unixSeconds).isoDate
        return String(d.prefix(10)) + "T" + String(d.dropFirst(11).prefix(8)) + "Z"
    }

    /// argv as one shell-like line (arguments with spaces or quotes are single-quoted).
    static func command(_ argv: [String]) -> String {
        argv.map { a in
            a.isEmpty || a.contains(where: { " \t\n'\"$`\\|&;<>()*?[]{}".contains($0) })
                ? "'" + a.replacingOccurrences(of: "'", with: "'\\''") + "'" : a
        }.joined(separator: " ")
    }

    static func plural(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }
}

/// HTML pieces shared by every page.
enum Markup {
    /// A `<time>` element in UTC.
    static func time(_ t: Int64) -> SafeHTML { "<time datetime=\"\(Format.isoUTC(t))\">\(Format.time(t))</time>" }

    /// A short id linking to its run page, the full id in the tooltip.
    static func runLink(_ id: ObjectID) -> SafeHTML {
        "<a class=\"run-link\" href=\"\(Link.run(id))\" title=\"\(id.hex)\"><code>\(id.short)</code></a>"
    }

    /// A short object id with the full id in the tooltip.
    static func objectID(_ id: ObjectID) -> SafeHTML { "<code title=\"\(id.hex)\">\(id.short)</code>" }

    /// Tag and `model@stage` badges.
    static func labels(tags: [String], stages: [String]) -> SafeHTML {
        tags.html { "<span class=\"badge tag\">\($0)</span> " } + stages.html { s in
            let model = s.split(separator: "@").first.map(String.init) ?? s
            return "<a class=\"badge stage\" href=\"\(Link.model(model))\">\(s)</a> "
        }
    }

    /// Marks the current tab or nav link.
    static let active: SafeHTML = " class=\"active\" aria-current=\"page\""

    /// A friendly box for pages with nothing to show yet.
    static func empty(_ title: String, _ detail: SafeHTML) -> SafeHTML {
        "<div class=\"empty\"><p class=\"empty-title\">\(title)</p><p>\(detail)</p></div>"
    }

    /// A number cell: the short form, the exact value in the tooltip.
    static func numberCell(_ v: JSONValue?) -> SafeHTML {
        guard let v else { return "<td class=\"missing\"></td>" }
        if let n = v.number { return "<td class=\"num\" title=\"\(JSONValue.format(n))\">\(Format.number(n))</td>" }
        return "<td>\(v.display)</td>"
    }
}
