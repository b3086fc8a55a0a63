import CRMSourceSupport
import Foundation
import Testing

/// Thread names must fit the 15 bytes Linux keeps, or the kernel refuses them and the thread shows its creator's name.
@Suite("Thread names")
struct ThreadNameTests {
    /// What the kernel calls a thread that named itself `name`, read by the thread itself.
    func kernelName(ofThreadNamed name: String) async -> String {
        await withCheckedContinuation { (done: CheckedContinuation<String, Never>) in
            let thread = Thread {
                ThreadName.nameCurrentThread(name)
                let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?"
                done.resume(returning: comm.trimmingCharacters(in: .newlines))
            }
            thread.start()
        }
    }

    @Test func namesAreCutToFifteenBytesBetweenCharacters() {
        #expect(ThreadName.make("rmq:", "app-events") == "rmq:app-events")
        #expect(ThreadName.make("rmq:", "a-very-long-source-name") == "rmq:a-very-long")
        #expect(ThreadName.make("sqs:", "orders-from-the-shop", suffix: ":1") == "sqs:orders-fr:1")
        #expect(ThreadName.make("rmq:", "événements-à") == "rmq:événement")
        // A two-byte character that would end at byte 16 is left out whole: 14 bytes.
        #expect(ThreadName.make("rmq:", "0123456789éa") == "rmq:0123456789")
    }

    @Test func theKernelKeepsTheNamesThreadsAreGiven() async {
        let source = await kernelName(ofThreadNamed: ThreadName.make("rmq:", "app-events"))
        #expect(source == "rmq:app-events")
        let settler = await kernelName(ofThreadNamed: ThreadName.make("sqs:", "orders-from-the-shop", suffix: ":s"))
        #expect(settler == "sqs:orders-fr:s")
        // A longer name is cut to 15 bytes, not refused.
        let long = await kernelName(ofThreadNamed: "crm-ingest.rabbitmq.app-events")
        #expect(long == "crm-ingest.rabb")
    }
}
