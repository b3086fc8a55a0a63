import CRMConfig
import CRMCore
import Foundation
import Testing

@Suite("Configuration: formats and converters")
struct FormatConfigTests {
    let loader = ConfigLoader(environment: [:])

    func problems(_ yaml: String) -> [String] { loader.problems(yaml) }

    static func source(format: String) -> String {
        """
        sources:
          - name: partner
            format:
        \(format.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n"))
            rabbitmq: { url: "amqp://127.0.0.1/", queue: partner }

        """
    }

    static let issueExample = """
        custom:
          type_from: header:event-name
          types:
            signup:  { type: USER_REGISTRATION, contact_id: $.user.id, properties: { email: $.user.email, country: $.user.address.country } }
            payment: { type: DEPOSIT_APPROVED, contact_id: $.uid, amount: $.payment.amount, timestamp: $.at, transaction_id: $.payment.id }
        """

    @Test func theIssuesExampleLoads() throws {
        let config = try loader.load(yaml: Self.source(format: Self.issueExample))
        guard case let .custom(converter) = config.sources[0].format else { Issue.record("not a custom format"); return }
        #expect(converter.typeFrom == .header("event-name"))
        #expect(converter.rules.keys.sorted() == ["payment", "signup"])
        let payment = try #require(converter.rules["payment"])
        #expect(payment.type == .depositApproved)
        #expect(payment.fields.map(\.name) == ["contactId", "amount", "timestamp", "transactionId"])
        #expect(payment.fields.map(\.path.description) == ["$.uid", "$.payment.amount", "$.at", "$.payment.id"])
        #expect(converter.rules["signup"]?.properties.map(\.name) == ["email", "country"])
        // The processor for the source decodes with the converter.
        #expect(config.processor(for: config.sources[0]).readsMessageMetadata)
    }

    @Test(arguments: [
        ("custom:\n  type_from: body\n  types: { a: { type: USER_UPDATE, contact_id: $.id } }",
         ["sources[0].format.custom.type_from: expected header:NAME, attribute:NAME or a body path such as $.event, got \"body\""]),
        ("custom:\n  type_from: $.kind\n  types: { a: { type: USER_UPDATE } }",
         ["sources[0].format.custom.types.a.contact_id: required for USER_UPDATE: a path such as $.user.id"]),
        ("custom:\n  type_from: $.kind\n  types: { a: { type: DEPOSIT_APPROVED, contact_id: $.id } }",
         ["sources[0].format.custom.types.a.amount: required for DEPOSIT_APPROVED: a path such as $.user.id",
          "sources[0].format.custom.types.a.timestamp: required for DEPOSIT_APPROVED: a path such as $.user.id"]),
        ("custom:\n  type_from: $.kind\n  types: { a: { type: USER_UPDATE, contact_id: $.id, amount: $.x } }",
         ["sources[0].format.custom.types.a.amount: USER_UPDATE carries no amount"]),
        ("custom:\n  type_from: $.kind\n  types: { a: { type: SIGNUP, contact_id: $.id } }",
         ["sources[0].format.custom.types.a.type: expected one of the default types (USER_REGISTRATION, USER_UPDATE, USER_BLOCKED, USER_CONSENT_UPDATE, WITHDRAWAL_REQUESTED, WITHDRAWAL_APPROVED, WITHDRAWAL_REJECTED, WITHDRAWAL_CANCELLED, DEPOSIT_REQUESTED, DEPOSIT_APPROVED, DEPOSIT_REJECTED, DEPOSIT_CANCELLED), got \"SIGNUP\""]),
        ("custom:\n  type_from: $.kind\n  types: { a: { type: USER_UPDATE, contact_id: user.id } }",
         ["sources[0].format.custom.types.a.contact_id: invalid JSON path \"user.id\": must start with $"]),
        ("custom:\n  type_from: $.kind\n  types: { a: { type: USER_UPDATE, contact_id: $.id, colour: $.c } }",
         ["sources[0].format.custom.types.a.colour: unknown key (expected one of: type, properties, amount, channel, consented, contact_id, currency, payment_type, timestamp, transaction_id, vendor)"]),
        ("custom:\n  type_from: $.kind", ["sources[0].format.custom.types: required: the message types and how each becomes an event"]),
        ("xml", ["sources[0].format: unknown format \"xml\" (formats: default, flattened, { custom: { type_from, types } }, { proca: { list, keystore } }, { jomablue: { list } } or { altcraft_import: { reply_queue, reply_ttl, account_id } })"]),
    ])
    func problemsAreReportedAtTheirPaths(format: String, expected: [String]) {
        #expect(problems(Self.source(format: format)) == expected)
    }

    /// One mistake, one problem: a broken http source's custom type is still known to the mappings, and a broken
    /// dedup header is not also reported as missing.
    @Test func problemsDoNotCascade() {
        #expect(problems("""
            http: { listen: 127.0.0.1:8080 }
            sources:
              - name: shop
                http: { auth: none, event_type: CUSTOM_ORDER, contact_id: email }
            mappings:
              CUSTOM_ORDER: [ { create_contact: { list: 2 } } ]
            """) == ["sources[0].http.contact_id: expected body.<flattened key> or headers.<name>, got \"email\""])
        #expect(problems("""
            http: { listen: 127.0.0.1:8080 }
            sources:
              - name: shop
                http: { auth: none, event_type: CUSTOM_ORDER, deduplication: { header: "X Hash" } }
            """) == ["sources[0].http.deduplication.header: expected a header name such as X-Dedup-Hash, got \"X Hash\""])
    }

    @Test func procaWithAKeystoreLoads() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("crm-proca-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data(#"{"1fB2iKL_QLmQzzCm3G8eVjIsbPPy2Yies9LK-EV4MBc": {"private": "A2CD8TBmAwfTy_mAVn0BIvMWZow6Nvb67Pt-R37ID0w"}}"#.utf8)
            .write(to: folder.appendingPathComponent("keys.json"))
        let config = try loader.load(yaml: Self.source(format: "proca: { list: 3, keystore: keys.json }"), baseDirectory: folder.path)
        guard case let .proca(settings) = config.sources[0].format else { Issue.record("not proca"); return }
        #expect(settings.list == 3)
        #expect(settings.privateKeys.keys.sorted() == ["1fB2iKL_QLmQzzCm3G8eVjIsbPPy2Yies9LK-EV4MBc"])
        #expect(problems(Self.source(format: "proca: { list: 3, keystore: /nonexistent/keys.json }"))
            == ["sources[0].format.proca.keystore: cannot read /nonexistent/keys.json"])
        #expect(problems(Self.source(format: "proca: { keystore: k.json }")) == ["sources[0].format.proca.list: required"])
    }

    @Test func aFormatChosenPerMessage() throws {
        let config = try loader.load(yaml: Self.source(format: """
            by: header:x-format
            formats:
              app: default
              partner: { custom: { type_from: $.kind, types: { s: { type: USER_UPDATE, contact_id: $.id } } } }
              proca: { proca: { list: 2 } }
            otherwise: default
            """))
        guard case let .perMessage(by, formats, otherwise) = config.sources[0].format else { Issue.record("not per message"); return }
        #expect(by == .header("x-format"))
        #expect(formats.keys.sorted() == ["app", "partner", "proca"])
        #expect(formats["proca"] == .proca(ProcaSettings(list: 2)))
        #expect(otherwise == .default)
        #expect(config.processor(for: config.sources[0]).readsMessageMetadata)
        #expect(problems(Self.source(format: "by: $.format\nformats: { a: default }"))
            == ["sources[0].format.by: expected header:NAME or attribute:NAME, got \"$.format\""])
        #expect(problems(Self.source(format: "by: header:x-format"))
            == ["sources[0].format.formats: required: the value of header:x-format and the format it names, such as { proca: { proca: { list: 1 } }, app: default }"])
    }

    @Test func altcraftImportSetsTheSourcesReplyQueue() throws {
        let config = try loader.load(yaml: Self.source(format: "altcraft_import: { reply_queue: import_results, reply_ttl: 2h, account_id: 1 }"))
        #expect(config.sources[0].format == .altcraftImport(AltcraftImportSettings(accountId: 1, replyQueue: "import_results", replyTTLSeconds: 7200)))
        guard case let .rabbitmq(rabbit) = config.sources[0].transport else { Issue.record("not rabbitmq"); return }
        #expect(rabbit.replies == RabbitMQSourceConfig.ReplyTarget(queue: "import_results", ttlSeconds: 7200))
        #expect(config.processor(for: config.sources[0]).repliesToMessages)
        // Defaults: Altcraft's queue name and 24 hours.
        let defaults = try loader.load(yaml: Self.source(format: "altcraft_import: {}"))
        guard case let .rabbitmq(plain) = defaults.sources[0].transport else { return }
        #expect(plain.replies == RabbitMQSourceConfig.ReplyTarget(queue: "database_import_result", ttlSeconds: 86_400))
    }

    @Test func altcraftImportProblems() {
        #expect(problems(Self.source(format: "altcraft_import: { reply_ttl: forever }")) == [
            #"sources[0].format.altcraft_import.reply_ttl: expected a duration such as 30s, 15m, 1h or 7d, got "forever""#,
        ])
        #expect(problems(Self.source(format: "altcraft_import: { reply_queue: partner }")) == [
            "sources[0].format.altcraft_import.reply_queue: replies cannot go to the queue the requests come from (partner)",
        ])
        #expect(problems(Self.source(format: "altcraft_import: { replies: x }")).first?.contains("replies") == true)
        let onSQS = """
            sources:
              - name: partner
                format: { altcraft_import: {} }
                sqs: { queue_url: "http://127.0.0.1:4566/000000000000/q", region: eu-west-1 }
            """
        #expect(problems(onSQS) == ["sources[0].format: altcraft_import replies on a RabbitMQ queue: it is for rabbitmq sources"])
    }

    /// The types of a format's own messages can be mapped when a source uses that format, and only then.
    @Test func mappingsNameTheTypesOfTheFormatsInUse() throws {
        let formats: [(format: String, type: EventType)] = [
            ("altcraft_import: {}", AltcraftImportFormat.importType), ("proca: { list: 1 }", ProcaFormat.actionType),
            ("proca: { list: 1 }", ProcaFormat.emailStatusType), ("jomablue: { list: 1 }", JomablueFormat.personType),
            ("jomablue: { list: 1 }", EventType(rawValue: "JOMABLUE_LEAD")),
        ]
        for (format, type) in formats {
            let mapping = "mappings:\n  \(type.rawValue):\n    - enter_journey: { journey: 7 }\n"
            let config = try loader.load(yaml: Self.source(format: format) + mapping)
            #expect(config.mappings[type] == [.enterJourney(journey: 7)], "\(format) \(type.rawValue)")
            #expect(problems(Self.source(format: "default") + mapping).first?.hasPrefix("mappings.\(type.rawValue): unknown event type") == true)
        }
    }
}
