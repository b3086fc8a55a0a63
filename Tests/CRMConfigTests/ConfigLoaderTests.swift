import AMQPClient
import CRMConfig
import CRMCore
import Foundation
import Testing

@Suite("Configuration")
struct ConfigLoaderTests {
    let loader = ConfigLoader(environment: ["DATA": "/var/lib/crm", "EMPTY": ""])

    func problems(_ yaml: String) -> [String] { loader.problems(yaml) }

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theShippedDefaultConfigurationIsValid() throws {
        let config = try ConfigLoader(environment: [:]).load(path: Self.repositoryRoot.appendingPathComponent("Config/crm-ingest.yaml").path)
        #expect(config.store == .sqlite(SQLiteStoreConfig(path: "./data/crm.sqlite")))
        #expect(config.mappings.count == 13) // the twelve default types and the shop integration's CUSTOM_ORDER
        #expect(config.mappings[.userRegistration] == [
            .createContact(list: 1, emailSubscribed: true, mobileSubscribed: true), .enterJourney(journey: 10),
        ])
        #expect(config.mappings[.userBlocked] == [.tempBlockContact(list: 1, findBy: .originalId, duration: 30, unit: .days)])
        guard case let .rabbitmq(rabbitmq)? = config.sources.first?.transport else {
            Issue.record("no RabbitMQ source in the defaults")
            return
        }
        #expect(rabbitmq.queue == "crm.events")
        #expect(rabbitmq.endpoint == AMQPEndpoint(host: "127.0.0.1", port: 5672))
        #expect(rabbitmq.deadLetter == .queue("crm.events.dead"))
    }

    @Test func readsARabbitMQSource() throws {
        let config = try ConfigLoader(environment: ["AMQP_PASSWORD": "s3cret"]).load(yaml: """
            sources:
              - name: app-events
                format: default
                rabbitmq:
                  url: "amqps://crm:${AMQP_PASSWORD}@rabbit.example.org:5671/prod"
                  queue: crm.events
                  declare: { durable: true, arguments: { x-queue-type: quorum, x-dead-letter-exchange: crm.dlx, x-delivery-limit: 10 } }
                  bindings: [ { exchange: app, routing_key: "user.*", exchange_type: topic } ]
                  prefetch: 200
                  lanes: 8
                  max_redeliveries: 3
                  heartbeat: 15s
                  tls: { ca_file: /etc/ssl/ca.pem, verify_peer: true }
                  dead_letter: { exchange: crm.dead, routing_key: refused }
            """)
        let source = try #require(config.sources.first)
        guard case let .rabbitmq(rabbitmq) = source.transport else { return }
        #expect(source.name == "app-events")
        #expect(rabbitmq.endpoint.host == "rabbit.example.org" && rabbitmq.endpoint.port == 5671)
        #expect(rabbitmq.endpoint.virtualHost == "prod" && rabbitmq.endpoint.user == "crm" && rabbitmq.endpoint.password == "s3cret")
        #expect(rabbitmq.endpoint.tls?.caFile == "/etc/ssl/ca.pem")
        #expect(rabbitmq.endpoint.maskedURL == "amqps://crm:***@rabbit.example.org:5671/prod")
        #expect(rabbitmq.declare?.arguments == ["x-queue-type": .string("quorum"), "x-dead-letter-exchange": .string("crm.dlx"), "x-delivery-limit": .int(10)])
        #expect(rabbitmq.bindings == [.init(exchange: "app", routingKey: "user.*", exchangeType: "topic")])
        #expect(rabbitmq.prefetch == 200 && rabbitmq.lanes == 8 && rabbitmq.maxRedeliveries == 3 && rabbitmq.heartbeatSeconds == 15)
        #expect(rabbitmq.deadLetter == .exchange("crm.dead", routingKey: "refused"))
    }

    @Test(arguments: [
        ("url: \"http://x\"", "sources[0].rabbitmq.url: scheme must be amqp or amqps, got http"),
        ("url: \"amqp://u:pw@h\"\n      tls: { ca_file: x }", "sources[0].rabbitmq.tls: TLS settings need an amqps:// url"),
        ("url: \"amqp://h\"\n      prefetch: 70000", "sources[0].rabbitmq.prefetch: at most 65535, got 70000"),
        ("url: \"amqp://h\"\n      dead_letter: { queue: a, exchange: b }", "sources[0].rabbitmq.dead_letter: give queue or exchange, not both"),
    ])
    func refusesBadRabbitMQSettings(fragment: String, expected: String) {
        let yaml = "sources:\n  - name: s\n    rabbitmq:\n      queue: q\n      \(fragment)\n"
        #expect(problems(yaml) == [expected])
    }

    @Test func vhostsAndPasswordsParseAsRabbitMQDocumentsThem() throws {
        #expect(try AMQPEndpoint.parse("amqp://127.0.0.1").get() == AMQPEndpoint(host: "127.0.0.1", port: 5672))
        #expect(try AMQPEndpoint.parse("amqp://h/%2F").get().virtualHost == "/")
        #expect(try AMQPEndpoint.parse("amqp://h/%2Fprod").get().virtualHost == "/prod")
        #expect(try AMQPEndpoint.parse("amqp://u:p%40ss@h:1234/v").get().password == "p@ss")
        #expect(AMQPEndpoint.masked("amqp://u:secret@h/") == "amqp://u:***@h/")
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
         ["mappings.USER_DELETE: unknown event type \"USER_DELETE\" (known: USER_REGISTRATION, USER_UPDATE, USER_BLOCKED, USER_CONSENT_UPDATE, WITHDRAWAL_REQUESTED, WITHDRAWAL_APPROVED, WITHDRAWAL_REJECTED, WITHDRAWAL_CANCELLED, DEPOSIT_REQUESTED, DEPOSIT_APPROVED, DEPOSIT_REJECTED, DEPOSIT_CANCELLED, or a custom type an http source declares as its event_type)"]),
        ("mappings: { USER_UPDATE: [ { update_contact: { list: 1, colour: red } } ] }",
         ["mappings.USER_UPDATE[0].update_contact.colour: unknown key (expected one of: list)"]),
        ("mappings: { USER_UPDATE: [ { update_contact: { list: one } } ] }",
         ["mappings.USER_UPDATE[0].update_contact.list: expected a whole number, got \"one\""]),
        ("mappings: { USER_UPDATE: [ { update_contact: { list: 0 } } ] }",
         ["mappings.USER_UPDATE[0].update_contact.list: must be greater than 0, got 0"]),
        ("attributes: [ { name: optIn, headers: [optIn] } ]\nmappings: { USER_UPDATE: [ { set_property: { list: 1, property: optIn, value: yes } } ] }",
         ["mappings.USER_UPDATE[0].set_property.value: \"yes\" is a YAML 1.1 boolean; write true or false, or quote it (\"yes\") for the text"]),
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
        ("mappings: { USER_BLOCKED: [ { temp_block_contact: { list: 1, for: 300000, unit: years } } ] }",
         ["mappings.USER_BLOCKED[0].temp_block_contact.for: at most 100 years, got 300000"]),
        ("mappings: { USER_BLOCKED: [ { temp_block_contact: { list: 1, for: 52560001, unit: minutes } } ] }",
         ["mappings.USER_BLOCKED[0].temp_block_contact.for: at most 52560000 minutes (100 years), got 52560001"]),
        ("mappings: { USER_BLOCKED: [ { anonymize_contact: { list: 1, find_by: email } } ] }",
         ["mappings.USER_BLOCKED[0].anonymize_contact.find_by: email needs an attribute named \"email\" (define it under attributes)"]),
        ("mappings: { USER_UPDATE: [ { set_property: { list: 1, property: vip } } ] }",
         ["mappings.USER_UPDATE[0].set_property.property: no attribute named \"vip\" (define it under attributes)",
          "mappings.USER_UPDATE[0].set_property.value: required"]),
        ("mappings: { USER_UPDATE: { update_contact: { list: 1 } } }",
         ["mappings.USER_UPDATE: expected a list of actions, got a mapping"]),
        ("colour: red", ["colour: unknown key (expected one of: store, http, sources, attributes, mappings, idempotency, reload, limits)"]),
        ("store: { mysql: {} }", ["store.mysql: unknown key (expected one of: sqlite, postgres)", "store: name a store: sqlite or postgres"]),
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
         ["sources[0]: name the transport: rabbitmq, sqs or http"]),
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

    /// An empty file (or one of comments only) is refused: reloaded, it would have stopped every source.
    @Test(arguments: ["", "# nothing yet\n", "\n\n"]) func anEmptyFileIsRefused(yaml: String) {
        #expect(problems(yaml) == ["the configuration is empty; write at least its sources, or run without --config for the built-in configuration"])
    }

    @Test func aFileWithOnlyOneSectionGivesDefaultsForTheRest() throws {
        let config = try loader.load(yaml: "idempotency: { ledger_retention: 30d }")
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
