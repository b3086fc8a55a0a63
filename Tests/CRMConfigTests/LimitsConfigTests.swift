import CRMConfig
import CRMCore
import Testing

/// `limits:`: read, checked at their paths, used by every processor, and switched in place by a reload.
@Suite("Configuration: limits")
struct LimitsConfigTests {
    let loader = ConfigLoader(environment: [:])

    func problems(_ yaml: String) -> [String] { loader.problems(yaml) }

    @Test func defaultsAndSettings() throws {
        #expect(try loader.load(yaml: "sources: []").limits == InputLimits())
        let config = try loader.load(yaml: """
            limits: { max_message_size: 256KiB, max_depth: 8, max_object_members: 64, max_properties: 20, max_string_length: 4KiB }
            """)
        #expect(config.limits == InputLimits(maxMessageBytes: 256 << 10, maxDepth: 8, maxObjectMembers: 64, maxProperties: 20, maxStringBytes: 4 << 10))
        // Every processor the configuration makes decodes under them.
        let processor = config.processor
        #expect(processor.decoder.parser.limits.maxDepth == 8)
        #expect(processor.decoder.limits.maxProperties == 20)
        let deep = #"{"type":"USER_UPDATE","contactId":"c","properties":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":1}}}}}}}}}"#
        let prepared = processor.prepare(IncomingMessage(
            body: Array(deep.utf8), identity: .messageId("m"), mayBeRedelivery: false, receivedAt: Timestamp(secondsSinceEpoch: 1_780_000_000), source: "s"
        ))
        guard case let .rejected(error) = prepared else { Issue.record("accepted: \(prepared)"); return }
        #expect(error.description == "invalid JSON at byte 86: nesting deeper than 8 levels (limits.max_depth)")
    }

    @Test(arguments: [
        ("limits: { max_message_size: 10 }", "limits.max_message_size: expected a size from 1KiB to 64MiB such as 1MiB, got \"10\""),
        ("limits: { max_message_size: 1GiB }", "limits.max_message_size: expected a size from 1KiB to 64MiB such as 1MiB, got \"1GiB\""),
        ("limits: { max_depth: 1 }", "limits.max_depth: expected a whole number from 2 to 512, got 1"),
        ("limits: { max_depth: deep }", "limits.max_depth: expected a whole number, got \"deep\""),
        ("limits: { max_object_members: 8 }", "limits.max_object_members: expected a whole number from 16 to 1000000, got 8"),
        ("limits: { max_properties: 0 }", "limits.max_properties: must be greater than 0, got 0"),
        ("limits: { max_string_length: 1 }", "limits.max_string_length: expected a size from 256 bytes to 64MiB such as 64KiB, got \"1\""),
        ("limits: { max_keys: 5 }", "limits.max_keys: unknown key (expected one of: max_message_size, max_depth, max_object_members, max_properties, max_string_length)"),
    ])
    func problemsAreReportedAtTheirPaths(yaml: String, expected: String) {
        #expect(problems(yaml) == [expected])
    }

    @Test func aReloadSwitchesLimitsInPlace() throws {
        let before = try loader.load(yaml: "limits: { max_depth: 32 }")
        let after = try loader.load(yaml: "limits: { max_depth: 16 }")
        let change = ConfigChange(from: before, to: after)
        #expect(change.refusals.isEmpty)
        #expect(change.limitsChanged)
        #expect(change.effects == ["limits: switched in place (messages in process finish under the limits they started with)"])
        #expect(!ConfigChange(from: before, to: before).limitsChanged)
    }
}
