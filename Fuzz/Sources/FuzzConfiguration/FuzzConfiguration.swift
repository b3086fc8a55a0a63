import CRMConfig
import CRMCore

/// The configuration the event-decoder targets run under, loaded once: one source per message format, with the
/// bad-input corpus's limits, attributes and mappings (Tests/Fixtures/bad-input/crm-ingest.yaml), so a fuzzed
/// message goes through the same decoding, validation and planning as one the daemon receives.
public enum FuzzConfiguration {
    public static let yaml = """
        store:
          sqlite: { path: /nonexistent/crm.sqlite }
        http:
          listen: 127.0.0.1:0
          max_body: 1MiB
        limits:
          max_message_size: 1MiB
          max_depth: 32
          max_object_members: 1000
          max_properties: 500
          max_string_length: 64KiB
        sources:
          - name: app
            rabbitmq: { url: "amqp://guest:guest@127.0.0.1:5672/", queue: fuzz.app }
          - name: petitions
            format: { proca: { list: 3 } }
            rabbitmq: { url: "amqp://guest:guest@127.0.0.1:5672/", queue: fuzz.proca }
          - name: import
            format: { altcraft_import: { reply_queue: fuzz.import.results, account_id: 1 } }
            rabbitmq: { url: "amqp://guest:guest@127.0.0.1:5672/", queue: fuzz.import }
          - name: checkins
            format: { jomablue: { list: 4 } }
            rabbitmq: { url: "amqp://guest:guest@127.0.0.1:5672/", queue: fuzz.checkins }
          - name: partner
            format:
              custom:
                type_from: header:event-name
                types:
                  signup:  { type: USER_REGISTRATION, contact_id: $.user.id, properties: { email: $.user.email, country: $.user.address.country } }
                  payment: { type: DEPOSIT_APPROVED, contact_id: $.uid, amount: $.payment.amount, timestamp: $.at, transaction_id: $.payment.id }
                  consent: { type: USER_CONSENT_UPDATE, contact_id: $.uid, channel: $.channel, consented: $.consented }
            rabbitmq: { url: "amqp://guest:guest@127.0.0.1:5672/", queue: fuzz.partner }
          - name: shop
            http:
              endpoint: shop-orders
              auth: none
              event_type: CUSTOM_ORDER
              contact_id: body.customer_email
              deduplication: { parameters: [body.order_number], window: 7d }
          - name: synerise
            http:
              endpoint: synerise-events
              auth: none
              event_type: { from: body.action }
              contact_id: body.client.customId
              deduplication: { header: X-Request-Id, window: 1d }
        attributes:
          - { name: firstName, headers: [firstName, first_name, _fname] }
          - { name: lastName, headers: [lastName, last_name] }
          - { name: email, headers: [email, customer_email] }
          - { name: country, headers: [country] }
          - { name: bio, headers: [bio] }
        mappings:
          USER_REGISTRATION:
            - create_contact: { list: 1 }
          USER_UPDATE:
            - update_contact: { list: 1 }
          USER_CONSENT_UPDATE:
            - update_contact: { list: 1 }
          DEPOSIT_APPROVED:
            - create_purchase_row: { list: 1 }
          WITHDRAWAL_REQUESTED:
            - create_purchase_row: { list: 1 }
          WITHDRAWAL_CANCELLED:
            - create_purchase_row: { list: 1 }
          CUSTOM_ORDER:
            - create_contact: { list: 2 }
        """

    /// The loaded configuration. A configuration that does not load is a broken fuzz target, not a finding.
    public static let config: DaemonConfig = {
        do {
            return try ConfigLoader(environment: [:]).load(yaml: yaml, baseDirectory: "/nonexistent")
        } catch {
            fatalError("the fuzz configuration does not load: \(error)")
        }
    }()

    /// The configured source of this name.
    public static func source(_ name: String) -> SourceConfig {
        guard let source = config.sources.first(where: { $0.name == name }) else { fatalError("no source \(name) in the fuzz configuration") }
        return source
    }

    /// The processor a broker or SQS source of this name decodes its messages with.
    public static func processor(_ name: String) -> EventProcessor {
        config.processor(for: source(name))
    }

    /// A message as a broker delivers it, with these headers.
    public static func message(_ body: [UInt8], source: String, headers: [String: String] = [:]) -> IncomingMessage {
        IncomingMessage(
            body: body, identity: .content, mayBeRedelivery: true, receivedAt: Timestamp(secondsSinceEpoch: 1_780_000_000),
            source: source, headers: headers
        )
    }
}
