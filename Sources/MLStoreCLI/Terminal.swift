import Foundation
import MLStoreBasics
import MLStoreCore
import Synchronization

/// Output helpers: colors and progress bars only on terminals, JSON for scripts.
enum Terminal {
    static let stdoutIsTTY = isatty(STDOUT_FILENO) == 1
    static let stderrIsTTY = isatty(STDERR_FILENO) == 1
    static let colorEnabled = stdoutIsTTY && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        && ProcessInfo.processInfo.environment["TERM"] != "dumb"

    enum Color: String {
        case red = "31", green = "32", yellow = "33", blue = "34", magenta = "35", cyan = "36", bold = "1", dim = "2"
    }

    static func paint(_ text: String, _ color: Color) -> String {
        colorEnabled ? "\u{1B}[\(color.rawValue)m\(text)\u{1B}[0m" : text
    }

    static func printError(_ error: MLStoreError) {
        let useColor = stderrIsTTY && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        let prefix = useColor ? "\u{1B}[31merror:\u{1B}[0m " : "error: "
        var text = prefix + error.message
        if let u = error.underlying { text += " (\(u))" }
        if let hint = error.hint { text += "\n" + (useColor ? "\u{1B}[33mhint:\u{1B}[0m " : "hint: ") + hint }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// An informational line on stderr (stdout stays for results).
    static func note(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    static func warn(_ text: String) {
        FileHandle.standardError.write(Data(("warning: " + text + "\n").utf8))
    }

    /// Prints a value as pretty, key-sorted JSON.
    static func printJSON<T: Encodable>(_ value: T) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try enc.encode(value)
        FileHandle.standardOutput.write(data)
        FileHandle.standardOutput.write(Data("\n".utf8))
    }

    /// Human-readable byte count (binary units).
    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var u = 0
        while v >= 1024 && u < units.count - 1 {
            v /= 1024
            u += 1
        }
        return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
    }

    /// A progress bar on stderr, drawn only when stderr is a terminal (and at most ~10 times a second).
    static func progressBar() -> ProgressReporter? {
        stderrIsTTY ? ProgressBar() : nil
    }
}

final class ProgressBar: ProgressReporter, @unchecked Sendable {
    private struct State {
        var label = ""
        var total: Int64 = 0
        var done: Int64 = 0
        var start = Date()
        var lastDraw = Date.distantPast
        var drawn = false
    }
    private let state = Mutex(State())

    func begin(_ label: String, totalBytes: Int64) {
        state.withLock { $0 = State(label: label, total: totalBytes, done: 0, start: Date()) }
    }

    func advance(bytes: Int64) {
        state.withLock { s in
            s.done += bytes
            let now = Date()
            guard now.timeIntervalSince(s.lastDraw) > 0.1, now.timeIntervalSince(s.start) > 0.3 else { return }
            s.lastDraw = now
            s.drawn = true
            draw(s)
        }
    }

    private func draw(_ s: State) {
        let frac = s.total > 0 ? min(1, Double(s.done) / Double(s.total)) : 0
        let width = 30
        let filled = Int(frac * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let secs = max(0.001, Date().timeIntervalSince(s.start))
        let rate = Terminal.bytes(Int64(Double(s.done) / secs)) + "/s"
        let line = String(format: "\r%@ %@ %3.0f%%  %@ / %@  %@\u{1B}[K", s.label, bar, frac * 100,
                          Terminal.bytes(s.done), Terminal.bytes(s.total), rate)
        FileHandle.standardError.write(Data(line.utf8))
    }

    func end() {
        state.withLock { s in
            if s.drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            s.drawn = false
        }
    }
}
