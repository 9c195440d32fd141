import Dispatch
import Foundation
import MLStoreBasics

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// Memory for large bodies (ranged reads) taken from the kernel with `mmap` and given back
/// whole with `munmap` when released, so a long transfer does not fragment the heap (glibc keeps freed
/// multi-megabyte blocks in per-thread arenas, which made a 1 GiB transfer's RSS grow past 200 MB).
final class PageBuffer: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    private(set) var count = 0

    init(capacity: Int) throws {
        let size = max(1, capacity)
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            throw MLStoreError(.io, "cannot allocate \(capacity) bytes")
        }
        base = p
        self.capacity = size
    }

    deinit { munmap(base, capacity) }

    /// Appends what fits; returns false if `bytes` did not fit.
    @discardableResult
    func append(_ bytes: Data) -> Bool {
        let n = min(bytes.count, capacity - count)
        bytes.withUnsafeBytes { src in
            if n > 0, let s = src.baseAddress { (base + count).copyMemory(from: s, byteCount: n) }
        }
        count += n
        return n == bytes.count
    }

    func setCount(_ n: Int) { count = min(n, capacity) }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

/// A small blocking HTTP client over URLSession: bodies from memory or streamed from a file, responses
/// in memory, into a preallocated ``PageBuffer`` or streamed to a file, timeouts, and retries with
/// exponential backoff (plus jitter) on connection failures, timeouts, 5xx and 429. Requests are rebuilt
/// per attempt, so signatures are fresh.
final class HTTPClient: @unchecked Sendable {
    struct Request {
        var method: String
        var url: String
        var headers: [String: String] = [:]
        var body: Body = .none
    }

    enum Body {
        case none
        case data(Data)
        /// The whole file (streamed by URLSession, never loaded).
        case file(String)
    }

    /// Where a successful (2xx) response body goes.
    enum Sink {
        case memory
        /// Into a buffer of the expected size (ranged reads).
        case buffer(PageBuffer)
        /// Into a file (moved into place when complete).
        case file(String)
    }

    struct Response {
        var status: Int
        var headers: [String: String]
        var body: Data
        func header(_ name: String) -> String? { headers[name.lowercased()] }
    }

    /// A failure without an HTTP response (connection, timeout).
    struct TransportError: Error, CustomStringConvertible {
        var description: String
    }

    /// Per-task state, filled by the delegate.
    final class TaskState: @unchecked Sendable {
        let sink: Sink
        var response: HTTPURLResponse?
        var body = Data()
        var overflow = false
        var error: Error?
        var fileError: Error?
        let done = DispatchSemaphore(value: 0)
        init(sink: Sink) { self.sink = sink }
        var isSuccess: Bool { response.map { (200..<300).contains($0.statusCode) } ?? false }
    }

    final class Delegate: NSObject, URLSessionDataDelegate, URLSessionDownloadDelegate, @unchecked Sendable {
        private let lock = NSLock()
        private var states: [ObjectIdentifier: TaskState] = [:]

        func register(_ task: URLSessionTask, _ state: TaskState) {
            lock.lock()
            states[ObjectIdentifier(task)] = state
            lock.unlock()
        }

        func state(_ task: URLSessionTask) -> TaskState? {
            lock.lock()
            defer { lock.unlock() }
            return states[ObjectIdentifier(task)]
        }

        func remove(_ task: URLSessionTask) -> TaskState? {
            lock.lock()
            defer { lock.unlock() }
            return states.removeValue(forKey: ObjectIdentifier(task))
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
            state(dataTask)?.response = response as? HTTPURLResponse
            completionHandler(.allow)
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
            guard let s = state(dataTask) else { return }
            if s.response == nil { s.response = dataTask.response as? HTTPURLResponse }
            if s.isSuccess, case .buffer(let b) = s.sink {
                if !b.append(data) { s.overflow = true }
            } else {
                s.body.append(data)
            }
        }

        func urlSession(_ session: URLSession, downloadTask: URLSessionDownloadTask, didFinishDownloadingTo location: URL) {
            guard let s = state(downloadTask) else { return }
            s.response = downloadTask.response as? HTTPURLResponse
            if s.isSuccess, case .file(let path) = s.sink {
                do {
                    _ = try? FileManager.default.removeItem(atPath: path)
                    try FileManager.default.moveItem(at: location, to: URL(fileURLWithPath: path))
                } catch {
                    s.fileError = error
                }
            } else {
                s.body = (try? Data(contentsOf: location)) ?? Data()
            }
        }

        func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
            guard let s = remove(task) else { return }
            if s.response == nil { s.response = task.response as? HTTPURLResponse }
            s.error = error
            s.done.signal()
        }
    }

    let delegate = Delegate()
    /// Held here: `OperationQueue.underlyingQueue` does not retain it.
    private let callbackQueue = DispatchQueue(label: "mlstore.http.delegate")
    let session: URLSession
    let maxAttempts: Int
    let baseDelay: Double

    init(timeout: Double = 60, maxConnections: Int = 8, maxAttempts: Int = 5, baseDelay: Double = 0.2) {
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = timeout
        config.timeoutIntervalForResource = 24 * 3600
        config.httpMaximumConnectionsPerHost = maxConnections
        config.requestCachePolicy = .reloadIgnoringLocalCacheData
        config.urlCache = nil
        config.httpCookieStorage = nil
        config.httpShouldSetCookies = false
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        // A queue of its own (overcommitting): callers block worker threads while they wait, and callbacks
        // scheduled on the global pool would then wait for GCD to add a thread (about one per second).
        queue.underlyingQueue = callbackQueue
        session = URLSession(configuration: config, delegate: delegate, delegateQueue: queue)
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
    }

    deinit { session.finishTasksAndInvalidate() }

    /// Sends once; a failure without an HTTP response throws ``TransportError``.
    func sendOnce(_ r: Request, sink: Sink = .memory) throws -> Response {
        guard let url = URL(string: r.url) else { throw MLStoreError(.usage, "bad URL \(r.url)") }
        var req = URLRequest(url: url)
        req.httpMethod = r.method
        for (k, v) in r.headers { req.setValue(v, forHTTPHeaderField: k) }
        if case .buffer(let b) = sink { b.setCount(0) }
        let state = TaskState(sink: sink)
        let task: URLSessionTask
        if case .file = sink {
            task = session.downloadTask(with: req)
        } else {
            switch r.body {
            case .none: task = session.dataTask(with: req)
            case .data(let d): task = session.uploadTask(with: req, from: d)
            case .file(let path): task = session.uploadTask(with: req, fromFile: URL(fileURLWithPath: path))
            }
        }
        delegate.register(task, state)
        task.resume()
        state.done.wait()
        // An error after a partial response (a reset mid-body) counts as a transport failure too: retried.
        if let e = state.error { throw TransportError(description: Self.describe(e)) }
        guard let http = state.response else { throw TransportError(description: "no HTTP response") }
        if let e = state.fileError { throw MLStoreError(.io, "cannot save the download: \(e)") }
        if state.overflow { throw TransportError(description: "the response was longer than requested") }
        var headers: [String: String] = [:]
        for (k, v) in http.allHeaderFields {
            if let k = k as? String, let v = v as? String { headers[k.lowercased()] = v }
        }
        return Response(status: http.statusCode, headers: headers, body: state.body)
    }

    static func describe(_ error: Error) -> String {
        if let u = error as? URLError {
            switch u.code {
            case .timedOut: return "timed out"
            case .cannotConnectToHost: return "connection refused"
            case .cannotFindHost: return "unknown host"
            case .networkConnectionLost: return "connection lost"
            case .notConnectedToInternet: return "not connected"
            default: return "network error \(u.code.rawValue): \(u.localizedDescription)"
            }
        }
        return "\(error)"
    }

    /// An integer knob from the environment (transfer tuning for benchmarks and tests), at least `min`.
    static func tuning(_ name: String, _ value: Int, min: Int) -> Int {
        guard let v = ProcessInfo.processInfo.environment[name].flatMap({ Int($0) }) else { return value }
        return Swift.max(v, min)
    }

    static func isRetryable(status: Int) -> Bool { status >= 500 || status == 429 }

    /// Sends with retries. `build` makes the request for each attempt (fresh date and signature).
    /// - Returns: the last response (any status; callers map errors). Throws after the last transport failure.
    func send(_ build: () throws -> Request, sink: Sink = .memory, what: String) throws -> Response {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let r = try sendOnce(try build(), sink: sink)
                if Self.isRetryable(status: r.status), attempt < maxAttempts {
                    backoff(attempt)
                    continue
                }
                return r
            } catch let e as TransportError {
                if attempt >= maxAttempts {
                    throw MLStoreError(.io, "\(what) failed after \(attempt) attempts: \(e.description)",
                                       hint: "check the endpoint and your network; mlstore retries timeouts and 5xx errors with backoff")
                }
                backoff(attempt)
            }
        }
    }

    private func backoff(_ attempt: Int) {
        let delay = min(8.0, baseDelay * Double(1 << min(attempt - 1, 10))) * Double.random(in: 0.75...1.25)
        usleep(useconds_t(delay * 1_000_000))
    }
}
