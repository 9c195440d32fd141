internal import CMLStoreSys

extension Sys {
    /// Starts asynchronous write-back of a file range (Linux `sync_file_range`), so a later fsync of a
    /// large file waits less. Best effort: failures are ignored (fsync still decides durability).
    public static func startWriteBack(_ fd: Int32, offset: Int64, length: Int64) {
        _ = CMLStoreSys_startWriteBack(fd, offset, length)
    }
}
