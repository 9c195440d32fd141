import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Clock and statistics

/// Monotonic seconds.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Runs `body` `runs` times (after `warmup` untimed runs) and returns the wall seconds of each timed run.
func timeRuns(_ runs: Int, warmup: Int = 1, _ body: () throws -> Void) rethrows -> [Double] {
    for _ in 0..<warmup { try body() }
    var times: [Double] = []
    for _ in 0..<runs {
        let t0 = now()
        try body()
        times.append(now() - t0)
    }
    return times
}

func median(_ xs: [Double]) -> Double {
    precondition(!xs.isEmpty, "median of nothing")
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

// MARK: - Seeded data

/// SplitMix64: a tiny, fast, seeded generator (the same seed gives the same bytes on every machine).
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    @inline(__always)
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum SeededData {
    /// float32 "weights": approximately normal (sum of four uniforms), sigma ~0.03, like a trained layer.
    /// Their low mantissa bytes are random and the exponent bytes are not: order-0 entropy ~7.5 bits/byte.
    static func float32Weights(bytes: Int, seed: UInt64) -> [UInt8] {
        let count = bytes / 4
        var rng = SplitMix64(seed: seed)
        var out = [UInt8](repeating: 0, count: count * 4)
        out.withUnsafeMutableBytes { raw in
            let f = raw.bindMemory(to: Float.self)
            for i in 0..<count {
                let r = rng.next()
                let s = (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48)
                f[i] = (Float(s) * (1.0 / 65535.0) - 2.0) * 0.05
            }
        }
        return out
    }

    /// Overwrites `regions` regions of `regionBytes` with fresh seeded weights, at the offsets
    /// bench/external.sh uses: region i starts at (2i+1)·size/(2·regions), rounded down to 64 KiB.
    static func modify(_ model: [UInt8], regions: Int, regionBytes: Int, seed: UInt64) -> (bytes: [UInt8], offsets: [Int]) {
        var out = model
        let patch = float32Weights(bytes: regions * regionBytes, seed: seed)
        var offsets: [Int] = []
        for i in 0..<regions {
            let off = (2 * i + 1) * model.count / (2 * regions) / 65536 * 65536
            offsets.append(off)
            out.replaceSubrange(off..<(off + regionBytes), with: patch[(i * regionBytes)..<((i + 1) * regionBytes)])
        }
        return (out, offsets)
    }

    /// Numeric CSV like bench/external.sh's: id, seven values in [-1, 1] with six decimals, a label 0-9.
    static func csv(bytes: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        var out: [UInt8] = []
        out.reserveCapacity(bytes + 128)
        out.append(contentsOf: Array("id,f0,f1,f2,f3,f4,f5,f6,label\n".utf8))
        let comma = UInt8(ascii: ","), zero = UInt8(ascii: "0")
        var digits = [UInt8](repeating: 0, count: 24)
        func appendInt(_ v: Int) {
            var v = v, n = 0
            repeat {
                digits[n] = zero + UInt8(v % 10)
                v /= 10
                n += 1
            } while v > 0
            while n > 0 {
                n -= 1
                out.append(digits[n])
            }
        }
        var id = 0
        while out.count < bytes {
            appendInt(id)
            for _ in 0..<7 {
                out.append(comma)
                let micro = Int(rng.next() % 2_000_001) - 1_000_000
                if micro < 0 { out.append(UInt8(ascii: "-")) }
                let a = abs(micro)
                appendInt(a / 1_000_000)
                out.append(UInt8(ascii: "."))
                var frac = a % 1_000_000, scale = 100_000
                for _ in 0..<6 {
                    out.append(zero + UInt8(frac / scale))
                    frac %= scale
                    scale /= 10
                }
            }
            out.append(comma)
            out.append(zero + UInt8(rng.next() % 10))
            out.append(UInt8(ascii: "\n"))
            id += 1
        }
        return out
    }
}

// MARK: - Formatting

func fmt(_ x: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", x) }

/// Seconds with 3 significant-ish digits: 0.0123, 0.456, 12.3.
func fmtSeconds(_ s: Double) -> String {
    if s >= 100 { return fmt(s, 0) }
    if s >= 10 { return fmt(s, 1) }
    if s >= 1 { return fmt(s, 2) }
    if s >= 0.1 { return fmt(s, 3) }
    return fmt(s, 4)
}

func fmtRatio(_ r: Double) -> String {
    if r >= 100 { return fmt(r, 0) + "×" }
    if r >= 10 { return fmt(r, 1) + "×" }
    if r >= 0.1 { return fmt(r, 2) + "×" }
    return fmt(r, 3) + "×"
}

func human(_ bytes: Double) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var b = bytes, i = 0
    while b >= 1024 && i < units.count - 1 {
        b /= 1024
        i += 1
    }
    if i == 0 { return "\(Int(b)) B" }
    return (b >= 100 ? fmt(b, 0) : b >= 10 ? fmt(b, 1) : fmt(b, 2)) + " " + units[i]
}

/// A GitHub-flavoured markdown table whose columns are padded, so it also reads well in a terminal.
func markdownTable(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) -> String {
    var widths = header.map { $0.count }
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    func line(_ cells: [String]) -> String {
        var parts: [String] = []
        for (i, w) in widths.enumerated() {
            let c = i < cells.count ? cells[i] : ""
            let pad = String(repeating: " ", count: max(0, w - c.count))
            parts.append(rightAligned.contains(i) ? pad + c : c + pad)
        }
        return "| " + parts.joined(separator: " | ") + " |"
    }
    var out = [line(header)]
    out.append("|" + widths.enumerated().map { i, w in
        rightAligned.contains(i) ? String(repeating: "-", count: w + 1) + ":" : String(repeating: "-", count: w + 2)
    }.joined(separator: "|") + "|")
    for r in rows { out.append(line(r)) }
    return out.joined(separator: "\n")
}

func stderrPrint(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

// MARK: - Files and processes

/// Runs a program, its stdout and stderr going to our stderr; returns its exit status.
func runProcess(_ executable: String, _ arguments: [String], currentDirectory: String? = nil) throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let currentDirectory { p.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
    p.standardOutput = FileHandle.standardError
    p.standardError = FileHandle.standardError
    try p.run()
    p.waitUntilExit()
    return p.terminationStatus
}

/// The first line a command prints, or nil.
func firstLine(_ executable: String, _ arguments: [String]) -> String? {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { return nil }
    return String(decoding: data, as: UTF8.self).split(separator: "\n").first.map(String.init)
}

/// Directory of the running executable (from /proc/self/exe).
func executableDirectory() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    let path = n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    return (path as NSString).deletingLastPathComponent
}

/// Searches `start` and its parents for `relative` (e.g. "bench/external.sh"); returns the directory that holds it.
func findUpward(_ relative: String, from start: String) -> String? {
    var dir = (start as NSString).standardizingPath
    while true {
        if FileManager.default.fileExists(atPath: dir + "/" + relative) { return dir }
        let parent = (dir as NSString).deletingLastPathComponent
        if parent == dir || parent.isEmpty { return nil }
        dir = parent
    }
}

func absolutePath(_ p: String) -> String {
    p.hasPrefix("/") ? p : FileManager.default.currentDirectoryPath + "/" + p
}
