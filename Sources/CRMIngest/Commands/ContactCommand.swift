import ArgumentParser
import CRMConfig
import CRMCore
import Logging

/// `crm-ingest contact show CONTACT_ID`.
struct ContactCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contact",
        abstract: "Looks at contacts in the store.",
        subcommands: [Show.self]
    )

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prints one contact as JSON: attributes, subscriptions, consents, purchases, journeys, block."
        )

        @OptionGroup var options: ConfigOption

        @Option(help: "The list; needed when the contact is in several.")
        var list: Int?

        @Argument(help: "The shared contact id.")
        var contactId: String

        func run() async throws {
            let config: DaemonConfig
            do { config = try ConfigLoading.load(options.config) } catch { throw ExitCode(1) }
            let result: ContactLookupResult
            do {
                let (contactId, list) = (contactId, list)
                result = try await StoreFactory.withStore(config.store, logger: Logger(label: "crm-ingest")) { store in
                    try await store.contact(contactId, list: list)
                }
            } catch {
                printError("\(error)")
                throw ExitCode(1)
            }
            switch result {
            case let .found(snapshot):
                print(JSONWriter.prettyString(snapshot.json))
            case .anonymized:
                print(JSONWriter.prettyString(ContactSnapshot.anonymizedJSON(contactId: contactId, list: list)))
            case .notFound:
                printError(list.map { "no contact \(contactId) in list \($0)" } ?? "no contact \(contactId)")
                throw ExitCode(1)
            case let .inSeveralLists(lists):
                printError("contact \(contactId) is in lists \(lists.map(String.init).joined(separator: ", ")): choose one with --list")
                throw ExitCode(1)
            }
        }
    }
}
