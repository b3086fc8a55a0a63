import CRMConfig
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reloads the configuration on SIGHUP and when its file changes on disk. Reloads run one at a time; once systemd
/// was told READY=1, it is told `RELOADING=1` before and `READY=1` after each (before that, only `STATUS=`).
///
/// The file is watched by polling its status (`stat`, following symbolic links): device, inode, size and
/// modification time. That sees an editor's write through a rename, a `cp` over the file, and a Kubernetes
/// ConfigMap's symlink swap alike, which an inotify watch on the file would miss; a reload whose text is unchanged
/// does nothing.
struct ConfigReloader: Service {
    let file: ConfigFile
    let live: LiveConfiguration
    /// How often the file's status is checked; nil: only SIGHUP reloads.
    let watchInterval: Duration?
    let notifier: SystemdNotifier?
    /// Whether systemd was told READY=1 (by `SystemdNotifyService`): a reload during start-up must not say it.
    let announcedReady: ReloadableValue<Bool>
    /// SIGHUP, trapped when the daemon began (before this service runs, a SIGHUP would otherwise end the process).
    let hangups: UnixSignalsSequence
    /// The file's status when the running configuration was read.
    let initialStatus: FileStatus?
    let logger: Logger

    private enum Trigger: Sendable {
        case signal
        case fileChanged
    }

    func run() async throws {
        let (triggers, continuation) = AsyncStream.makeStream(of: Trigger.self, bufferingPolicy: .bufferingNewest(1))
        let signals = hangups
        let initialStatus = self.initialStatus
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await _ in signals { continuation.yield(.signal) }
                }
                if let watchInterval, let path = file.path {
                    group.addTask {
                        // A change counts once the status held still for one interval, so a file still being
                        // written is not read half-way.
                        var applied = initialStatus
                        var previous = FileStatus(path: path)
                        while !Task.isCancelled {
                            try? await Task.sleep(for: watchInterval)
                            let now = FileStatus(path: path)
                            if let now, now == previous, now != applied {
                                continuation.yield(.fileChanged)
                                applied = now
                            }
                            previous = now
                        }
                    }
                }
                for await trigger in triggers {
                    await reload(trigger)
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            continuation.finish()
        }
    }

    private func reload(_ trigger: Trigger) async {
        let reason = trigger == .signal ? "SIGHUP" : "file changed"
        guard file.path != nil else {
            logger.notice("\(reason): the daemon runs on its built-in configuration; there is no file to reload")
            return
        }
        let ready = announcedReady.current
        if ready { notify(SystemdNotifier.reloadingAssignments()) }
        // A SIGHUP re-reads what the file names too (key files, keystores): the text alone may not have changed.
        _ = await live.reload(from: file, trigger: reason, evenIfTextUnchanged: trigger == .signal)
        let status = "STATUS=configuration \(await live.sha256.prefix(12)) active"
        notify(ready ? ["READY=1", status] : [status])
    }

    private func notify(_ assignments: [String]) {
        guard let notifier else { return }
        do { try notifier.send(assignments) } catch { logger.warning("systemd notification failed: \(error)") }
    }
}

/// What identifies a file's version without reading it: device, inode, size, modification time, of the file the
/// path names once every symbolic link is resolved (`realpath(3)`). A Kubernetes ConfigMap is
/// `crm-ingest.yaml -> ..data/crm-ingest.yaml` with `..data` a relative link swapped to a new folder at each update;
/// Foundation's `resolvingSymlinksInPath` left that chain unresolved, so the watch saw the link itself, which never
/// changes.
struct FileStatus: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var size: UInt64
    var modified: Date

    /// nil: the file cannot be reached now.
    init?(path: String) {
        guard let resolvedPath = realpath(path, nil) else { return nil }
        let resolved = String(cString: resolvedPath)
        free(resolvedPath)
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: resolved) else { return nil }
        device = (attributes[.deviceIdentifier] as? NSNumber)?.uint64Value ?? 0
        inode = (attributes[.systemFileNumber] as? NSNumber)?.uint64Value ?? 0
        size = (attributes[.size] as? NSNumber)?.uint64Value ?? 0
        modified = attributes[.modificationDate] as? Date ?? .distantPast
    }
}
