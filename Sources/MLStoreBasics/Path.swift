/// Small helpers over `/`-separated path strings (no Foundation, no normalisation surprises).
public enum Path {
    public static func join(_ a: String, _ b: String) -> String {
        if a.isEmpty || a == "." { return b }
        if b.isEmpty { return a }
        return a.hasSuffix("/") ? a + b : a + "/" + b
    }

    public static func parent(_ p: String) -> String {
        guard let i = p.lastIndex(of: "/") else { return "" }
        if i == p.startIndex { return "/" }
        return String(p[..<i])
    }

    public static func basename(_ p: String) -> String {
        guard let i = p.lastIndex(of: "/") else { return p }
        return String(p[p.index(after: i)...])
    }

    /// Makes `p` absolute against `base` and removes `.`, `..` and repeated slashes lexically.
    public static func absolute(_ p: String, base: String) -> String {
        let full = p.hasPrefix("/") ? p : join(base, p)
        var parts: [Substring] = []
        for c in full.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == ".." {
                if !parts.isEmpty { parts.removeLast() }
                continue
            }
            parts.append(c)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// `p` relative to `root` (both absolute, normalised); nil if `p` is not inside `root`.
    public static func relative(_ p: String, to root: String) -> String? {
        if p == root { return "" }
        let prefix = root == "/" ? "/" : root + "/"
        guard p.hasPrefix(prefix) else { return nil }
        return String(p.dropFirst(prefix.count))
    }
}
