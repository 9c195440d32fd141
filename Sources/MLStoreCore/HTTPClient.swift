import Dispatch
import Foundation
import MLStoreBasics

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A small blocking HTTP client over URLSession: bodies from memory or streamed from a file, responses
/// in memory or streamed to a file, timeouts, and retries with exponential backoff (plus jitter) on
/// connection failures, timeouts, 5xx and 429. Requests are (re)built per attempt, so signatures are fresh.
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

    struct Response {
        var status: Int
        var headers: [String: String]
        var body: Data
        func header(_ name: String) -> String? { headers[name.lowercased()] }
    }

    /// Where a network failure happened, for messages.
    struct TransportError: Error, CustomStringConvertible {
        var description: String
    }

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
        session = URLSession(configuration: config)
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
    }

    deinit { session.finishTasksAndInvalidate() }

    private final class Box: @unchecked Sendable {
        var response: Response?
        var error: Error?
        let done = DispatchSemaphore(value: 0)
    }

    /// Sends once; a transport failure (no HTTP response) throws ``TransportError``.
    func sendOnce(_ r: Request, downloadTo file: String? = nil) throws -> Response {
        guard let url = URL(string: r.url) else { throw MLStoreError(.usage, "bad URL \(r.url)") }
        var req = URLRequest(url: url)
        req.httpMethod = r.method
        for (k, v) in r.headers { req.setValue(v, forHTTPHeaderField: k) }
        let box = Box()
        @Sendable func finish(_ data: Data?, _ response: URLResponse?, _ error: Error?) {
            if let error {
                box.error = error
            } else if let http = response as? HTTPURLResponse {
                var headers: [String: String] = [:]
                for (k, v) in http.allHeaderFields {
                    if let k = k as? String, let v = v as? String { headers[k.lowercased()] = v }
                }
                box.response = Response(status: http.statusCode, headers: headers, body: data ?? Data())
            } else {
                box.error = TransportError(description: "no HTTP response")
            }
            box.done.signal()
        }
        let task: URLSessionTask
        if let file {
            // Downloads go to a temp file URLSession owns; moved into place before the handler returns.
            task = session.downloadTask(with: req) { tmp, response, error in
                if let tmp, error == nil, let http = response as? HTTPURLResponse, (200..<300).contains(http.statusCode) {
                    _ = try? FileManager.default.removeItem(atPath: file)
                    do {
                        try FileManager.default.moveItem(at: tmp, to: URL(fileURLWithPath: file))
                    } catch {
                        finish(nil, nil, error)
                        return
                    }
                    finish(Data(), response, nil)
                } else {
                    let body = tmp.flatMap { try? Data(contentsOf: $0) }
                    finish(body, response, error)
                }
            }
        } else {
            switch r.body {
            case .none: task = session.dataTask(with: req, completionHandler: finish)
            case .data(let d): task = session.uploadTask(with: req, from: d, completionHandler: finish)
            case .file(let path): task = session.uploadTask(with: req, fromFile: URL(fileURLWithPath: path), completionHandler: finish)
            }
        }
        task.resume()
        box.done.wait()
        if let response = box.response { return response }
        throw TransportError(description: box.error.map { Self.describe($0) } ?? "request failed")
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

    static func isRetryable(status: Int) -> Bool { status >= 500 || status == 429 }

    /// Sends with retries. `build` makes the request for each attempt (fresh date and signature).
    /// - Returns: the last response (any status; callers map errors). Throws after the last transport failure.
    func send(_ build: () throws -> Request, downloadTo file: String? = nil, what: String) throws -> Response {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let r = try sendOnce(try build(), downloadTo: file)
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
