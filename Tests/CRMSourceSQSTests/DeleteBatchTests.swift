@testable import CRMSourceSQS
import Testing

/// How committed messages become `DeleteMessageBatch` entries.
@Suite("SQS delete batches")
struct DeleteBatchTests {
    /// A message received twice while in process completes twice; its id must appear once in a batch (SQS refuses a
    /// batch with a repeated entry id whole), with the newest receipt handle.
    @Test func aMessageCompletedTwiceIsDeletedOnceWithItsNewestHandle() {
        let entries = [("a", "h1"), ("b", "h2"), ("a", "h3"), ("c", "h4")].map { (id: $0.0, receiptHandle: $0.1) }
        let distinct = SQSWorkers.distinctById(entries)
        #expect(distinct.map(\.id) == ["b", "a", "c"])
        #expect(distinct.first { $0.id == "a" }?.receiptHandle == "h3")
    }
}
