import Foundation
import MLStoreBasics

/// Runs helper programs (git, python) and captures their output.
public enum Subprocess {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stdoutBytes: [UInt8]
        public var stderr: String
        public var ok: Bool { status == 0 }
    }

    /// Runs `argv` (looked up on PATH) in `cwd`; a missing program gives status 127.
    public static func run(_ argv: [String], cwd: String? = nil, environment: [String: String]? = nil, timeout: Double = 120) -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        if let environment { p.environment = environment }
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch {
            return Result(status: 127, stdout: "", stdoutBytes: [], stderr: "\(error)")
        }
        // Read both pipes concurrently so neither fills up and blocks the child.
        final class Box: @unchecked Sendable { var data = Data() }
        let errBox = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errBox.data = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stdoutBytes: [UInt8](outData),
                      stderr: String(decoding: errBox.data, as: UTF8.self))
    }
}
