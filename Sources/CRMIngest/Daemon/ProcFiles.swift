#if canImport(Glibc)
import Glibc
#endif

/// Reading Linux's /proc.
enum ProcFiles {
    /// A /proc file's text (their size is 0 to `stat`, so it is read to the end); nil where it cannot be opened.
    static func read(_ path: String) -> String? {
        #if canImport(Glibc)
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
        #else
        return nil
        #endif
    }

    /// The thread ids of a process (`/proc/PID/task`; nil: this process); nil where it cannot be read.
    static func threadIds(of processId: Int32? = nil) -> [Int32]? {
        #if canImport(Glibc)
        guard let directory = opendir("/proc/\(processId.map(String.init) ?? "self")/task") else { return nil }
        defer { closedir(directory) }
        var ids: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let id = Int32(name) { ids.append(id) }
        }
        return ids
        #else
        return nil
        #endif
    }
}
