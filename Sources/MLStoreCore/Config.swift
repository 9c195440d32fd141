import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// git-style INI configuration (`.mlstore/config`): `[section]` or `[section "sub"]` headers and
/// `key = value` lines. Keys are addressed as `section.key` or `section.sub.key`.
public struct Config: Sendable {
    public let path: String
    private var lines: [String]

    public init(path: String) throws {
        self.path = path
        var text = ""
        do {
            text = String(decoding: try Sys.readFile(path, limit: 1 << 20), as: UTF8.self)
        } catch let e as SystemError where e.errno == ENOENT {
            text = ""  // no config yet
        }
        lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
    }

    static func header(_ line: String) -> String? {
        let t = line.trimmingCharacters(in: " \t")
        guard t.hasPrefix("["), t.hasSuffix("]") else { return nil }
        let inner = t.dropFirst().dropLast()
        if let q = inner.firstIndex(of: "\"") {
            let section = inner[..<q].trimmingCharacters(in: " ")
            let sub = inner[inner.index(after: q)...].dropLast()
            return section.lowercased() + "." + sub
        }
        return inner.trimmingCharacters(in: " ").lowercased()
    }

    /// All `(key, value)` pairs in file order.
    public var entries: [(key: String, value: String)] {
        var section = ""
        var out: [(String, String)] = []
        for line in lines {
            if let h = Self.header(line) {
                section = h
                continue
            }
            let t = line.trimmingCharacters(in: " \t")
            if t.isEmpty || t.hasPrefix("#") || t.hasPrefix(";") { continue }
            guard let eq = t.firstIndex(of: "=") else { continue }
            let k = t[..<eq].trimmingCharacters(in: " \t").lowercased()
            var v = t[t.index(after: eq)...].trimmingCharacters(in: " \t")
            if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = String(v.dropFirst().dropLast()) }
            out.append((section + "." + k, v))
        }
        return out
    }

    public func get(_ key: String) -> String? {
        entries.last { $0.key.lowercased() == key.lowercased() }?.value
    }

    /// Sets (or with nil, removes) a key, creating its section if needed.
    public mutating func set(_ key: String, _ value: String?) {
        let parts = key.split(separator: ".").map(String.init)
        guard parts.count >= 2 else { return }
        let name = parts.last!.lowercased()
        let section = parts.dropLast().joined(separator: ".").lowercased()
        var current = ""
        var sectionEnd: Int?
        var i = 0
        var replaced = false
        while i < lines.count {
            if let h = Self.header(lines[i]) {
                current = h
                i += 1
                continue
            }
            if current.lowercased() == section {
                sectionEnd = i + 1
                let t = lines[i].trimmingCharacters(in: " \t")
                if let eq = t.firstIndex(of: "="), t[..<eq].trimmingCharacters(in: " \t").lowercased() == name {
                    if let value, !replaced {
                        lines[i] = "\t\(name) = \(Self.quote(value))"
                        replaced = true
                        i += 1
                    } else {
                        lines.remove(at: i)
                    }
                    continue
                }
            }
            if Self.header(lines[i]) == nil && current.lowercased() == section && sectionEnd == nil { sectionEnd = i + 1 }
            i += 1
        }
        guard let value, !replaced else { return }
        if let end = sectionEnd ?? lines.lastIndex(where: { Self.header($0)?.lowercased() == section }).map({ $0 + 1 }) {
            lines.insert("\t\(name) = \(Self.quote(value))", at: end)
        } else {
            let head: String
            if parts.count > 2 {
                head = "[\(parts[0]) \"\(parts[1..<(parts.count - 1)].joined(separator: "."))\"]"
            } else {
                head = "[\(parts[0])]"
            }
            lines.append(head)
            lines.append("\t\(name) = \(Self.quote(value))")
        }
    }

    static func quote(_ v: String) -> String {
        v.contains(where: { $0 == "#" || $0 == ";" || $0 == " " && (v.hasPrefix(" ") || v.hasSuffix(" ")) }) ? "\"\(v)\"" : v
    }

    /// Writes the file atomically. Permissions: `mode` if given, else those of the file it replaces (so a
    /// config made private because it holds a remote's token stays private), else 0644.
    public func save(mode: mode_t? = nil) throws {
        let kept = (try? Sys.lstatIfExists(path))??.mode
        try Sys.writeFileAtomically(path, Array((lines.joined(separator: "\n") + "\n").utf8),
                                    mode: mode ?? kept.map { mode_t($0 & 0o777) } ?? 0o644)
    }

    /// Subsection names of a section, e.g. the remotes of `[remote "origin"]`.
    public func subsections(of section: String) -> [String] {
        var out: [String] = []
        for line in lines {
            if let h = Self.header(line), h.lowercased().hasPrefix(section.lowercased() + ".") {
                let sub = String(h.dropFirst(section.count + 1))
                if !out.contains(sub) { out.append(sub) }
            }
        }
        return out
    }
}
