#if canImport(Glibc)
    import Glibc
#endif

/// A blocking TCP connection with send and receive timeouts: the socket calls of mlstore (used by the
/// plain-http upload path). Failures are ``TCPConnection/Failure`` with a short reason, so callers can
/// treat them as transport errors and retry.
public final class TCPConnection {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        public let timedOut: Bool
        init(_ description: String, timedOut: Bool = false) {
            self.description = description
            self.timedOut = timedOut
        }
        static func errno(_ what: String) -> Failure {
            let e = Glibc.errno
            return e == EAGAIN || e == EWOULDBLOCK ? Failure("\(what) timed out", timedOut: true) : Failure("\(what) failed: \(String(cString: strerror(e)))")
        }
    }

    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN); return () }()

    public let fd: Int32

    /// Connects to `host` (a name or an IPv4/IPv6 literal, without brackets) on `port`, trying each address.
    public init(host: String, port: Int, timeoutSeconds: Double) throws {
        _ = Self.ignoreSIGPIPE
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw Failure("unknown host \(host)")
        }
        defer { freeaddrinfo(list) }
        var tv = timeval(tv_sec: Int(timeoutSeconds), tv_usec: Int((timeoutSeconds - Double(Int(timeoutSeconds))) * 1e6))
        var lastError = "connection refused"
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            let s = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if s < 0 { continue }
            setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            if connect(s, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 {
                fd = s
                return
            }
            lastError = Glibc.errno == ECONNREFUSED ? "connection refused" : String(cString: strerror(Glibc.errno))
            Glibc.close(s)
        }
        throw Failure(lastError)
    }

    deinit { Glibc.close(fd) }

    /// Sends all of `bytes`.
    public func send(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw Failure.errno("send")
            }
            done += n
        }
    }

    /// Sends `count` bytes of the open file `file` from its start with `sendfile(2)` (no copy through user space).
    public func sendFile(_ file: Int32, count: Int64) throws {
        var offset: off_t = 0
        while Int64(offset) < count {
            let n = sendfile(fd, file, &offset, Int(min(count - Int64(offset), 1 << 30)))
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw Failure.errno("send")
            }
            if n == 0 { throw Failure("the file shrank while it was sent") }
        }
    }

    /// Receives up to `max` bytes; empty at end of stream.
    public func receive(max: Int = 64 << 10) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: max)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                if Glibc.errno == ECONNRESET { return [] }
                throw Failure.errno("receive")
            }
            return Array(buf[0..<n])
        }
    }
}
