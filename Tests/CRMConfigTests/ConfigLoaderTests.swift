import CRMConfig
import CRMCore
import Foundation
import Testing

@Suite("Configuration")
struct ConfigLoaderTests {
    let loader = ConfigLoader(environment: ["DATA": "/var/lib/crm", "EMPTY": ""])

    func problems(_ yaml: String) -> [String] {
        do {
            _ = try loader.load(yaml: yaml)
            return []
        } catch {
            return error.problems.map(\.description)
        }
    }

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theShippedDefaultConfigurationIsValid() throws {
        let config = try ConfigLoader(environment: [:]).load(path: Self.repositoryRoot.appendingPathComponent("Config/crm-ingest.yaml").path)
        #expect(config.store == .sqlite(SQLiteStoreConfig(path: "./data/crm.sqlite")))
        #expect(config.mappings.count == 12)
        #expect(config.mappings[.userRegistration] == [
            .createContact(list: 1, emailSubscribed: true, mobileSubscribed: true), .enterJourney(journey: 10),
        ])
        #expect(config.mappings[.userBlocked] == [.tempBlockContact(list: 1, findBy: .originalId, duration: 30, unit: .days)])
    }

    @Test func readsTheIssueExample() throws {
        let config = try loader.load(yaml: """
            store:
              sqlite: { path: "${DATA:-./data}/crm.sqlite" }
            attributes:
              - { name: firstName, headers: [firstName, first_name] }
            mappings:
              USER_REGISTRATION:
                - create_contact: { list: 1, email_subscribed: true, mobile_subscribed: false }
                - enter_journey: { journey: 10 }
              USER_BLOCKED:
                - temp_block_contact: { list: 1, find_by: original_id, for: 30, unit: days }
              USER_UPDATE:
                - set_property: { list: 1, property: firstName, value: 12.50 }
                - set_property: { list: 1, property: firstName, value: "12" }
                - set_property: { list: 1, property: firstName, value: true }
                - set_property: { list: 1, property: firstName, value: null }
            """)
        #expect(config.store == .sqlite(SQLiteStoreConfig(path: "/var/lib/crm/crm.sqlite")))
        #expect(config.attributes == [AttributeDefinition(name: "firstName", headers: ["firstName", "first_name"])])
        #expect(config.mappings[.userRegistration] == [
            .createContact(list: 1, emailSubscribed: true, mobileSubscribed: false), .enterJourney(journey: 10),
        ])
        #expect(config.mappings[.userUpdate] == [
            .setProperty(list: 1, property: "firstName", value: .number("12.50")),
            .setProperty(list: 1, property: "firstName", value: .string("12")),
            .setProperty(list: 1, property: "firstName", value: .bool(true)),
            .setProperty(list: 1, property: "firstName", value: .null),
        ])
    }

    @Test func createContactSubscriptionsDefaultToTrue() throws {
        let config = try loader.load(yaml: "mappings: { USER_REGISTRATION: [ { create_contact: { list: 3 } } ] }")
        #expect(config.mappings[.userRegistration] == [.createContact(list: 3, emailSubscribed: true, mobileSubscribed: true)])
    }

    @Test(arguments: [
        ("mappings: { USER_REGISTRATION: [ { create_contact: { list: 1 } }, { enter_journey: {} } ] }",
         ["mappings.USER_REGISTRATION[1].enter_journey.journey: required"]),
        ("mappings: { USER_DELETE: [ { update_contact: { list: 1 } } ] }",
         ["mappings.USER_DELETE: unknown event type \"USER_DELETE\" (known: USER_REGISTRATION, USER_UPDATE, USER_BLOCKED, USER_CONSENT_UPDATE, WITHDRAWAL_REQUESTED, WITHDRAWAL_APPROVED, WITHDRAWAL_REJECTED, WITHDRAWAL_CANCELLED, DEPOSIT_REQUESTED, DEPOSIT_APPROVED, DEPOSIT_REJECTED, DEPOSIT_CANCELLED)"]),
        ("mappings: { USER_UPDATE: [ { update_contact: { list: 1, colour: red } } ] }",
         ["mappings.USER_UPDATE[0].update_contact.colour: unknown key (expected one of: list)"]),
        ("mappings: { USER_UPDATE: [ { update_contact: { list: one } } ] }",
         ["mappings.USER_UPDATE[0].update_contact.list: expected a whole number, got \"one\""]),
        ("mappings: { USER_UPDATE: [ { update_contact: { list: 0 } } ] }",
         ["mappings.USER_UPDATE[0].update_contact.list: must be greater than 0, got 0"]),
        ("mappings: { USER_UPDATE: [ { send_sms: { list: 1 } } ] }",
         ["mappings.USER_UPDATE[0].send_sms: unknown action (actions: anonymize_contact, create_contact, create_purchase_row, enter_journey, set_property, temp_block_contact, update_contact)"]),
        ("mappings: { USER_REGISTRATION: [ { create_contact: { list: 1, email_subscribed: maybe } } ] }",
         ["mappings.USER_REGISTRATION[0].create_contact.email_subscribed: expected true or false, got \"maybe\""]),
        ("mappings: { USER_REGISTRATION: [ { create_purchase_row: { list: 1 } } ] }",
         ["mappings.USER_REGISTRATION[0].create_purchase_row: only deposit and withdrawal events carry a purchase; USER_REGISTRATION does not"]),
        ("mappings: { USER_BLOCKED: [ { temp_block_contact: { list: 1, find_by: phone, for: 0, unit: weeks } } ] }",
         ["mappings.USER_BLOCKED[0].temp_block_contact.find_by: expected original_id or email, got \"phone\"",
          "mappings.USER_BLOCKED[0].temp_block_contact.for: must be greater than 0, got 0",
          "mappings.USER_BLOCKED[0].temp_block_contact.unit: expected one of minutes, hours, days, months, years, got \"weeks\""]),
        ("mappings: { USER_BLOCKED: [ { anonymize_contact: { list: 1, find_by: email } } ] }",
         ["mappings.USER_BLOCKED[0].anonymize_contact.find_by: email needs an attribute named \"email\" (define it under attributes)"]),
        ("mappings: { USER_UPDATE: [ { set_property: { list: 1, property: vip } } ] }",
         ["mappings.USER_UPDATE[0].set_property.property: no attribute named \"vip\" (define it under attributes)",
          "mappings.USER_UPDATE[0].set_property.value: required"]),
        ("mappings: { USER_UPDATE: { update_contact: { list: 1 } } }",
         ["mappings.USER_UPDATE: expected a list of actions, got a mapping"]),
        ("colour: red", ["colour: unknown key (expected one of: store, sources, attributes, mappings, idempotency)"]),
        ("store: { mysql: {} }", ["store.mysql: unknown key (expected one of: sqlite)", "store: name a store: sqlite"]),
        ("store: { sqlite: { path: \"${NOPE}/x.sqlite\" } }",
         ["store.sqlite.path: environment variable NOPE is not set (write ${NOPE:-default} to give a default)"]),
        ("attributes: [ { name: first, headers: [\"first name\", \"a&b\", ok] } ]",
         ["attributes[0].headers[0]: \"first name\" contains space; headers may not contain space, &, <, >, \" or '",
          "attributes[0].headers[1]: \"a&b\" contains \"&\"; headers may not contain space, &, <, >, \" or '"]),
        ("attributes: [ { name: a, headers: [x] }, { name: b, headers: [x] }, { name: a } ]",
         ["attributes[1].headers[0]: header \"x\" already fills attribute \"a\"", "attributes[2].name: attribute \"a\" is defined twice"]),
        ("idempotency: { redelivery_window: soon }",
         ["idempotency.redelivery_window: expected a duration such as 30s, 15m, 1h or 7d, got \"soon\""]),
        ("sources: [ { name: x } ]",
         ["sources[0]: name the transport: rabbitmq"]),
        ("mappings: [1, 2]", ["mappings: expected event types with their actions, got a list"]),
    ])
    func reportsEveryProblemWithItsPath(yaml: String, expected: [String]) {
        #expect(problems(yaml) == expected)
    }

    @Test func expandsEnvironmentWithDefaults() throws {
        let yaml = "store: { sqlite: { path: \"${EMPTY:-/tmp}/${DATA}/${MISSING:-x}.sqlite\" } }"
        #expect(try loader.load(yaml: yaml).store == .sqlite(SQLiteStoreConfig(path: "/tmp//var/lib/crm/x.sqlite")))
    }

    @Test func refusesInvalidYAML() {
        #expect(problems("mappings: [ {").first?.hasPrefix("not valid YAML") == true)
    }

    @Test func emptyFileGivesDefaults() throws {
        let config = try loader.load(yaml: "")
        #expect(config.mappings.isEmpty && config.sources.isEmpty)
        #expect(config.idempotency == IdempotencyConfig())
    }

    @Test func readsDurations() {
        #expect(DurationText.seconds("30s") == 30)
        #expect(DurationText.seconds("1h") == 3600)
        #expect(DurationText.seconds("7d") == 604_800)
        #expect(DurationText.seconds("500ms") == 1)
        #expect(DurationText.seconds("90") == 90)
        #expect(DurationText.seconds("-1s") == nil)
    }
}
