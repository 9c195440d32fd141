import Dispatch
import MLStoreBasics
import Synchronization

/// Number of worker threads for CPU-bound work (hashing, compression): one per core.
public let workerCount: Int = {
    #if canImport(Glibc)
        let n = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    #else
        let n = 2
    #endif
    return max(1, n)
}()

#if canImport(Glibc)
    import Glibc
#endif

/// Fixed slots written by distinct workers (each index by exactly one), read after all finish.
final class Slots<T>: @unchecked Sendable {
    private let values: UnsafeMutablePointer<T?>
    let count: Int
    init(count: Int) {
        self.count = count
        values = .allocate(capacity: max(1, count))
        values.initialize(repeating: nil, count: count)
    }
    deinit {
        values.deinitialize(count: count)
        values.deallocate()
    }
    subscript(i: Int) -> T? {
        get { values[i] }
        set { values[i] = newValue }
    }
}

/// Runs `work(i)` for i in 0..<count on all cores, with at most `window` results waiting, and hands
/// results to `consume` in index order on the calling thread. The first error stops the run.
func orderedParallelMap<T: Sendable>(
    count: Int, window: Int = 2 * workerCount + 2,
    work: @escaping @Sendable (Int) throws -> T,
    consume: (Int, T) throws -> Void
) throws {
    guard count > 0 else { return }
    let results = Slots<Result<T, any Error>>(count: count)
    let ready = (0..<count).map { _ in DispatchSemaphore(value: 0) }
    let queue = DispatchQueue.global(qos: .userInitiated)
    let cancelled = Atomic<Bool>(false)
    func launch(_ i: Int) {
        let sem = ready[i]
        queue.async {
            if cancelled.load(ordering: .relaxed) {
                results[i] = .failure(CancellationError())
            } else {
                results[i] = Result { try work(i) }
            }
            sem.signal()
        }
    }
    var launched = 0
    while launched < min(window, count) {
        launch(launched)
        launched += 1
    }
    var firstError: (any Error)?
    for i in 0..<count {
        ready[i].wait()
        if firstError == nil {
            switch results[i]! {
            case .success(let v):
                do { try consume(i, v) } catch {
                    firstError = error
                    cancelled.store(true, ordering: .relaxed)
                }
            case .failure(let e):
                firstError = e
                cancelled.store(true, ordering: .relaxed)
            }
        }
        results[i] = nil
        if launched < count {
            launch(launched)
            launched += 1
        }
    }
    if let firstError { throw firstError }
}

struct CancellationError: Error {}
