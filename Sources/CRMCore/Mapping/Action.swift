/// How an action finds the contact it works on.
public enum ContactLookup: String, Sendable, Hashable, CaseIterable {
    /// By the shared contact id the event carries (Symplify's "Original Id").
    case originalId = "original_id"
    /// By the contact's `email` attribute, matched against the email the event carries.
    case email
}

/// One CRM action, with the parameters the mapping gives it (the seven of the Symplify seed).
public enum Action: Sendable, Hashable {
    /// Creates the contact in `list` if it is new (with the default subscriptions), then applies what the event carries.
    case createContact(list: Int, emailSubscribed: Bool, mobileSubscribed: Bool)
    /// Applies what the event carries to the contact in `list`, if it exists.
    case updateContact(list: Int)
    /// Sets one attribute to a fixed value.
    case setProperty(list: Int, property: String, value: PropertyValue)
    /// Records the deposit or withdrawal in the contact's purchase history.
    case createPurchaseRow(list: Int)
    /// Enrolls the contact in a journey.
    case enterJourney(journey: Int)
    /// Erases every personal value of the contact and keeps a tombstone.
    case anonymizeContact(list: Int, findBy: ContactLookup)
    /// Blocks the contact for a while, counted from the event's time.
    case tempBlockContact(list: Int, findBy: ContactLookup, duration: Int, unit: CalendarUnit)

    /// The name used in the configuration file.
    public var name: String {
        switch self {
        case .createContact: return "create_contact"
        case .updateContact: return "update_contact"
        case .setProperty: return "set_property"
        case .createPurchaseRow: return "create_purchase_row"
        case .enterJourney: return "enter_journey"
        case .anonymizeContact: return "anonymize_contact"
        case .tempBlockContact: return "temp_block_contact"
        }
    }
}

/// A recipient attribute: its name in the CRM and the message keys ("file headers") that fill it.
public struct AttributeDefinition: Sendable, Hashable {
    public var name: String
    public var headers: [String]

    public init(name: String, headers: [String]) {
        self.name = name
        self.headers = headers
    }

    /// Characters the Symplify seed strips from headers; we refuse them instead.
    public static let forbiddenHeaderCharacters: Set<Character> = [" ", "&", "<", ">", "\"", "'"]
}

/// The event-to-action mapping and the attributes: everything that decides what an event does.
/// A value: a reload swaps it whole, and an event in process keeps the one it started with.
public struct Mapping: Sendable {
    public let attributes: [AttributeDefinition]
    public let actions: [EventType: [Action]]
    /// Header (message key) to the attribute it fills, and the header's rank among that attribute's headers.
    private let attributeByHeader: [String: (name: String, rank: Int)]

    public init(attributes: [AttributeDefinition], actions: [EventType: [Action]]) {
        self.attributes = attributes
        self.actions = actions
        var byHeader: [String: (name: String, rank: Int)] = [:]
        for attribute in attributes {
            for header in attribute.headers where byHeader[header] == nil {
                let rank = attributes.first { $0.name == attribute.name }?.headers.firstIndex(of: header) ?? Int.max
                byHeader[header] = (attribute.name, rank)
            }
        }
        self.attributeByHeader = byHeader
    }

    /// The attribute values an event's properties fill, and how many properties matched no attribute.
    /// When several headers of one attribute are present, the one listed first in the configuration wins.
    public func attributeValues(of properties: [Property]) -> (values: [AttributeValue], unmatched: Int) {
        var unmatched = 0
        var values: [AttributeValue] = []
        var ranks: [Int] = []
        // Events fill a few attributes, found by a look along `values`; past 16, a dictionary finds them.
        var indexByName: [String: Int] = [:]
        for property in properties {
            guard let (name, rank) = attributeByHeader[property.key] else {
                unmatched += 1
                continue
            }
            let existing = values.count <= 16 ? values.firstIndex { $0.name == name } : indexByName[name]
            if let existing {
                if rank < ranks[existing] {
                    values[existing].value = property.value
                    ranks[existing] = rank
                }
                continue
            }
            values.append(AttributeValue(name: name, value: property.value))
            ranks.append(rank)
            if values.count == 17 {
                for (index, value) in values.enumerated() { indexByName[value.name] = index }
            } else if values.count > 17 {
                indexByName[name] = values.count - 1
            }
        }
        return (values, unmatched)
    }
}

/// An attribute's value for one contact.
public struct AttributeValue: Sendable, Hashable {
    public var name: String
    public var value: PropertyValue

    public init(name: String, value: PropertyValue) {
        self.name = name
        self.value = value
    }
}
